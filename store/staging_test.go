package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A staged blob has no name anywhere until it is committed, so a process
// killed before that leaves nothing; committed, it is in place and tmp/
// is empty. Where the file system has no O_TMPFILE the test skips.
func TestStagedBlobHasNoName(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	b, err := s.Content().Stage(ctx, "application/octet-stream", strings.NewReader("staged"))
	if err != nil {
		t.Fatal(err)
	}
	if b.named {
		b.Discard()
		t.Skip("no O_TMPFILE on this file system")
	}
	if got := tmpEntries(t, s); len(got) != 0 {
		t.Errorf("tmp/ holds %v while a blob is staged", got)
	}
	if s.Content().HasBlob(b.Desc.Digest) {
		t.Error("the blob is in the store before its commit")
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(s.Content().blobPath(b.Desc.Digest)); err != nil || string(got) != "staged" {
		t.Errorf("committed blob: %q, %v", got, err)
	}
	fi, err := os.Stat(s.Content().blobPath(b.Desc.Digest))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("committed blob mode: %v, %v", fi.Mode(), err)
	}
	// The same content committed again (as another process would) is fine.
	again, err := s.Content().Stage(ctx, "application/octet-stream", strings.NewReader("staged"))
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := tmpEntries(t, s); len(got) != 0 {
		t.Errorf("tmp/ holds %v after the commits", got)
	}
}

// index.json's temporary file is replaced by the next writer, so one that
// a killed writer left does not stay.
func TestIndexTempReplaced(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	left := s.TmpDir() + "/index.json" + replaceSuffix
	if err := os.WriteFile(left, []byte("half a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !lockFreeTemp("index.json" + replaceSuffix) {
		t.Error("index.json's temporary file is not known as written without the build lock")
	}
	d, err := s.Content().WriteJSON(ctx, "application/vnd.oci.image.manifest.v1+json", map[string]any{"config": map[string]any{"digest": "sha256:" + strings.Repeat("0", 64)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Content().AddManifest(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := tmpEntries(t, s); len(got) != 0 {
		t.Errorf("tmp/ holds %v after an index write", got)
	}
	if _, err := s.Content().readIndex(); err != nil {
		t.Error(err)
	}
}

func tmpEntries(t *testing.T, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(s.TmpDir())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// SweepTmp removes what killed processes left in tmp/, counted first by
// TmpUsage, and keeps index.json's temporary file, which its writer holds
// the index lock for, not the build lock.
func TestSweepTmp(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	for _, name := range []string{"ingest-1", "index.json" + replaceSuffix} {
		if err := os.WriteFile(filepath.Join(s.TmpDir(), name), make([]byte, 8192), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(s.TmpDir(), "mnt-1", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	usage, err := s.TmpUsage(ctx)
	if err != nil || usage < 8192 {
		t.Fatalf("TmpUsage = %d, %v", usage, err)
	}
	n, freed, err := s.SweepTmp(ctx)
	if err != nil || n != 2 || freed != usage {
		t.Errorf("SweepTmp = %d, %d, %v; want 2, %d", n, freed, err, usage)
	}
	if got := tmpEntries(t, s); !slices.Equal(got, []string{"index.json" + replaceSuffix}) {
		t.Errorf("tmp/ after a sweep: %v", got)
	}
}
