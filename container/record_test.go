package container

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store/meta"
)

func openDB(t *testing.T) *meta.File {
	t.Helper()
	s, err := meta.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newRecord(id, name string, created time.Time) *Container {
	diff := digest.FromString("layer of " + id)
	return &Container{
		ID: id, Name: name, Created: created,
		Image: Image{
			Ref:      "img",
			ID:       digest.FromString("config"),
			Manifest: ocispec.Descriptor{Digest: digest.FromString("manifest")},
			Layers:   []ocispec.Descriptor{{Digest: digest.FromString("blob of " + id)}},
			DiffIDs:  []digest.Digest{diff},
		},
		Config: Config{Cmd: []string{"sh"}},
		State:  State{Status: Created},
	}
}

func TestRecords(t *testing.T) {
	ctx := context.Background()
	s := openDB(t)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	a := newRecord("aaaa1111"+NewID()[8:], "first", t0)
	b := newRecord("aaaa2222"+NewID()[8:], "", t0.Add(time.Second))
	for _, c := range []*Container{a, b} {
		if err := insert(ctx, s, c); err != nil {
			t.Fatal(err)
		}
	}
	if b.Name == "" || !ValidName(b.Name) {
		t.Errorf("generated name %q", b.Name)
	}
	dup := newRecord(NewID(), "first", t0)
	if err := insert(ctx, s, dup); !errors.Is(err, ErrNameInUse) {
		t.Errorf("duplicate name: %v", err)
	}
	if err := insert(ctx, s, newRecord(NewID(), "x", t0)); err == nil {
		t.Error("a one-letter name was accepted (Docker needs two)")
	}
	for ref, want := range map[string]string{
		a.ID:      a.ID,
		"first":   a.ID,
		"/first":  a.ID,
		b.Name:    b.ID,
		a.ID[:12]: a.ID,
		"aaaa2":   b.ID,
		b.ID[:9]:  b.ID,
		"aaaa1":   a.ID,
	} {
		c, err := Get(ctx, s, ref)
		if err != nil || c.ID != want {
			t.Errorf("Get(%q) = %v, %v; want %s", ref, c, err, want)
		}
	}
	if _, err := Get(ctx, s, "aaaa"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if _, err := Get(ctx, s, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	list, err := List(ctx, s)
	if err != nil || len(list) != 2 || list[0].ID != b.ID {
		t.Errorf("List (newest first) = %v, %v", list, err)
	}
	got, err := update(ctx, s, a.ID, func(c *Container) error {
		c.State.Status = Exited
		c.State.ExitCode = 3
		return nil
	})
	if err != nil || got.State.ExitCode != 3 {
		t.Fatalf("update = %+v, %v", got, err)
	}
	boom := errors.New("boom")
	if _, err := update(ctx, s, a.ID, func(c *Container) error { c.State.ExitCode = 9; return boom }); !errors.Is(err, boom) {
		t.Errorf("failing update: %v", err)
	}
	if c, _ := Get(ctx, s, a.ID); c.State.ExitCode != 3 {
		t.Errorf("a failed update was kept: %+v", c.State)
	}

	blobs, chains, err := Held(ctx, s)
	if err != nil || len(blobs) != 6 || len(chains) != 2 {
		t.Errorf("Held = %v, %v, %v", blobs, chains, err)
	}
	users, err := Using(ctx, s, digest.FromString("manifest"), "")
	if err != nil || len(users) != 2 {
		t.Errorf("Using = %v, %v", users, err)
	}
	if users, _ := Using(ctx, s, digest.FromString("other"), digest.FromString("other")); len(users) != 0 {
		t.Errorf("Using(other) = %v", users)
	}

	// Removing frees the name.
	if err := remove(ctx, s, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := Get(ctx, s, "first"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after remove: %v", err)
	}
	if err := insert(ctx, s, newRecord(NewID(), "first", t0)); err != nil {
		t.Errorf("name not freed: %v", err)
	}
	if err := remove(ctx, s, a.ID); err != nil {
		t.Errorf("second remove: %v", err)
	}
}

func TestValidName(t *testing.T) {
	for n, want := range map[string]bool{
		"ab": true, "a_b.c-d": true, "A1": true, "web-1": true,
		"": false, "a": false, "_ab": false, "-ab": false, "a b": false, "a/b": false, "a:b": false,
	} {
		if ValidName(n) != want {
			t.Errorf("ValidName(%q) = %v", n, !want)
		}
	}
}

func TestGenerateName(t *testing.T) {
	taken := map[string]bool{}
	for range 50 {
		n := generateName(func(s string) bool { return taken[s] })
		if taken[n] || !ValidName(n) {
			t.Fatalf("generateName gave %q", n)
		}
		taken[n] = true
	}
}

func TestStatusText(t *testing.T) {
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		st   State
		want string
	}{
		{State{Status: Created}, "Created"},
		{State{Status: Running, StartedAt: now.Add(-3 * time.Second)}, "Up 3 seconds"},
		{State{Status: Running, StartedAt: now.Add(-90 * time.Minute)}, "Up 2 hours"},
		{State{Status: Exited, ExitCode: 137, FinishedAt: now.Add(-time.Minute)}, "Exited (137) About a minute ago"},
		{State{Status: Removing}, "Removal In Progress"},
	} {
		if got := StatusText(&Container{State: tc.st}, now); got != tc.want {
			t.Errorf("StatusText(%+v) = %q, want %q", tc.st, got, tc.want)
		}
	}
}
