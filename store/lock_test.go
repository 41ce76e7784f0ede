package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TryLockGC gets the lock only when no build and no other collector holds
// it, and never waits.
func TestTryLockGC(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	build, err := s.LockBuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := s.TryLockGC(); err != nil || l != nil {
		t.Fatalf("with a build running: %v, %v", l, err)
	}
	build.Release()
	gc, err := s.TryLockGC()
	if err != nil || gc == nil {
		t.Fatalf("with nothing running: %v, %v", gc, err)
	}
	if l, err := s.TryLockGC(); err != nil || l != nil {
		t.Fatalf("with a collector running: %v, %v", l, err)
	}
	gc.Release()
}

// Builds share the lock; a collector waits for every running build (and
// says so once), and takes the lock when the last one ends. A store opened
// twice on one root (two processes) shares the one lock.
func TestLockGCWaitsForBuilds(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	other, err := Open(ctx, s.Root())
	if err != nil {
		t.Fatal(err)
	}
	b1, err := s.LockBuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := other.LockBuild(ctx)
	if err != nil {
		t.Fatalf("a second build waits for the first: %v", err)
	}
	waited := make(chan struct{}, 2)
	got := make(chan error, 1)
	go func() {
		l, err := other.LockGC(ctx, func() { waited <- struct{}{} })
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the collector did not wait for the builds")
	}
	b1.Release()
	select {
	case err := <-got:
		t.Fatalf("the collector took the lock while a build runs: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	b2.Release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the collector did not take the lock after the builds ended")
	}
	if len(waited) != 0 {
		t.Error("waiting was called more than once")
	}
}

// A wait for the lock ends with its context.
func TestLockBuildCancelled(t *testing.T) {
	s := openStore(t)
	gc, err := s.LockGC(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if l, err := s.LockBuild(ctx); !errors.Is(err, context.DeadlineExceeded) {
		l.Release()
		t.Fatalf("LockBuild during a collection: %v, want the context's error", err)
	}
}
