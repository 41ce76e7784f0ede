package source

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/builder-dev/builder/exporter"
	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/storetest"
)

// FuzzLoad feeds archives to Load: whatever the bytes, it must not panic,
// must write nothing outside the store's root, must leave no temporary
// files, and must change nothing in the store when it fails. One store
// serves every input, so an iteration costs a Load and two listings.
func FuzzLoad(f *testing.F) {
	ctx := context.Background()
	parent := f.TempDir()
	s, err := store.Open(ctx, filepath.Join(parent, "root"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, archive []byte) {
		before := testutil.Listing(t, s.Root())
		_, err := Load(ctx, s, bytes.NewReader(archive))
		if err != nil {
			if after := testutil.Listing(t, s.Root()); after != before {
				t.Errorf("a failed load (%v) changed the store:\nbefore:\n%s\nafter:\n%s", err, before, after)
			}
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 1 {
			t.Errorf("load wrote outside the root: %v", entries)
		}
		if entries, _ := os.ReadDir(s.TmpDir()); len(entries) != 0 {
			t.Errorf("load left temporary files: %v", entries)
		}
	})
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzLoad")

// TestFuzzLoadCorpus writes FuzzLoad's seed corpus with -update-corpus:
// real small archives (docker, legacy docker, OCI, gzipped) and malformed
// ones made from them.
func TestFuzzLoadCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite the seed corpus")
	}
	ctx := context.Background()
	s := storetest.NewStore(t)
	layers := [][]byte{
		testutil.Tar(t, testutil.TarEntry{Name: "etc/hello", Body: "hi\n"}, testutil.TarEntry{Name: "bin/sh", Type: tar.TypeSymlink, Mode: 0o777, Linkname: "busybox"}),
		testutil.Tar(t, testutil.TarEntry{Name: "etc/.wh.hello"}, testutil.TarEntry{Name: "../escape", Body: "x"}),
	}
	storetest.PutImage(t, s, layers, "fuzz/app:1")
	var docker, oci bytes.Buffer
	if err := exporter.SaveDocker(ctx, s, []string{"fuzz/app:1"}, &docker); err != nil {
		t.Fatal(err)
	}
	if err := exporter.SaveOCI(ctx, s, []string{"fuzz/app:1"}, &oci); err != nil {
		t.Fatal(err)
	}
	legacy, _ := legacyDockerArchive(t, legacyImage{tags: []string{"fuzz/legacy:1"}, layers: layers[:1]})
	seeds := map[string][]byte{
		"docker":           docker.Bytes(),
		"oci":              oci.Bytes(),
		"legacy":           legacy,
		"docker-gz":        testutil.Gzip(t, docker.Bytes()),
		"docker-truncated": docker.Bytes()[:docker.Len()/2],
		"oci-truncated":    oci.Bytes()[:oci.Len()*3/4],
		"not-json":         testutil.Tar(t, testutil.TarEntry{Name: "manifest.json", Body: "[{not json"}),
		"empty-index":      testutil.Tar(t, testutil.TarEntry{Name: "index.json", Body: `{"schemaVersion":2,"manifests":[]}`}),
		"link-loop":        testutil.Tar(t, testutil.TarEntry{Name: "manifest.json", Type: tar.TypeSymlink, Mode: 0o777, Linkname: "a"}, testutil.TarEntry{Name: "a", Type: tar.TypeSymlink, Mode: 0o777, Linkname: "manifest.json"}),
		"escape": testutil.Tar(t, testutil.TarEntry{Name: "manifest.json", Body: `[{"Config":"../../etc/passwd","RepoTags":["x:1"],"Layers":["/etc/shadow"]}]`},
			testutil.TarEntry{Name: "../../outside", Body: "x"}),
		"not-tar": []byte("this is not an archive\n"),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzLoad")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
