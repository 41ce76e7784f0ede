package meta

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func openFile(t *testing.T) *File {
	t.Helper()
	f, err := Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func put(ctx context.Context, db DB, k, v string) error {
	return db.Update(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("test"))
		if err != nil {
			return err
		}
		return b.Put([]byte(k), []byte(v))
	})
}

func get(ctx context.Context, db Viewer, k string) (string, error) {
	var v string
	err := db.View(ctx, func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte("test")); b != nil {
			v = string(b.Get([]byte(k)))
		}
		return nil
	})
	return v, err
}

// A read session sees what was written before it opened, and reads
// through the one Viewer interface the readers take; it is no DB, so it
// cannot be handed to a function that writes (the compiler refuses it:
// only this check can show it in a test).
func TestReadSession(t *testing.T) {
	ctx := context.Background()
	f := openFile(t)
	if err := put(ctx, f, "k", "v"); err != nil {
		t.Fatal(err)
	}
	sess, err := f.OpenReadSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := get(ctx, sess, "k"); err != nil || v != "v" {
		t.Errorf("read in a session: %q, %v", v, err)
	}
	if _, ok := any(sess).(DB); ok {
		t.Error("a read session is a DB")
	}
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sess.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Closed, it no longer holds the lock: a write goes through.
	if err := put(ctx, f, "k", "w"); err != nil {
		t.Fatal(err)
	}
}

// A session's shared lock keeps writers waiting until it closes; a wait
// ends with its context.
func TestReadSessionHoldsWriters(t *testing.T) {
	f := openFile(t)
	sess, err := f.OpenReadSession(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := put(ctx, f, "k", "v"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("write during a session: %v, want the context's error", err)
	}
}

// Lazy writes land like others (only their fsync is skipped) and read
// back through the same file.
func TestLazy(t *testing.T) {
	ctx := context.Background()
	f := openFile(t)
	if err := put(ctx, f.Lazy(), "k", "lazy"); err != nil {
		t.Fatal(err)
	}
	for _, db := range []Viewer{f, f.Lazy()} {
		if v, err := get(ctx, db, "k"); err != nil || v != "lazy" {
			t.Errorf("read back: %q, %v", v, err)
		}
	}
}
