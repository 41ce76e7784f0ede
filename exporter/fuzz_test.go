package exporter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-dev/builder/store"
)

// storeListing is every file under root with its mode, size and content
// digest; directories by name and mode only.
func storeListing(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if fi.IsDir() {
			fmt.Fprintf(&b, "%s %v\n", rel, fi.Mode())
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s %v %d %s\n", rel, fi.Mode(), fi.Size(), hex.EncodeToString(sum[:]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

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
		before := storeListing(t, s.Root())
		_, err := Load(ctx, s, bytes.NewReader(archive))
		if err != nil {
			if after := storeListing(t, s.Root()); after != before {
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
	s := newStore(t)
	layers := [][]byte{
		makeTar(t, tarEntry{name: "etc/hello", body: "hi\n"}, tarEntry{name: "bin/sh", linkname: "busybox"}),
		makeTar(t, tarEntry{name: "etc/.wh.hello"}, tarEntry{name: "../escape", body: "x"}),
	}
	putImage(t, s, layers, "fuzz/app:1")
	var docker, oci bytes.Buffer
	if err := SaveDocker(ctx, s, []string{"fuzz/app:1"}, &docker); err != nil {
		t.Fatal(err)
	}
	if err := SaveOCI(ctx, s, []string{"fuzz/app:1"}, &oci); err != nil {
		t.Fatal(err)
	}
	legacy, _ := legacyDockerArchive(t, legacyImage{tags: []string{"fuzz/legacy:1"}, layers: layers[:1]})
	seeds := map[string][]byte{
		"docker":           docker.Bytes(),
		"oci":              oci.Bytes(),
		"legacy":           legacy,
		"docker-gz":        gzipped(t, docker.Bytes()),
		"docker-truncated": docker.Bytes()[:docker.Len()/2],
		"oci-truncated":    oci.Bytes()[:oci.Len()*3/4],
		"not-json":         makeTar(t, tarEntry{name: "manifest.json", body: "[{not json"}),
		"empty-index":      makeTar(t, tarEntry{name: "index.json", body: `{"schemaVersion":2,"manifests":[]}`}),
		"link-loop":        makeTar(t, tarEntry{name: "manifest.json", linkname: "a"}, tarEntry{name: "a", linkname: "manifest.json"}),
		"escape": makeTar(t, tarEntry{name: "manifest.json", body: `[{"Config":"../../etc/passwd","RepoTags":["x:1"],"Layers":["/etc/shadow"]}]`},
			tarEntry{name: "../../outside", body: "x"}),
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
