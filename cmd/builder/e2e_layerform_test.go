package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
)

// A docker archive's layers are kept as they came: loaded into a fresh
// root, the image saves back to a docker archive with the same layer
// bytes, builds and runs; an OCI archive gzips each layer once (the second
// save writes the same archive and no blob); the gzip forms survive a
// prune while the image lives, store verify finds nothing, and they go
// with the image.
func TestLoadKeepsLayersAsTheyCame(t *testing.T) {
	h := newHarness(t)
	h.build(h.context("FROM base/busybox:1\nRUN echo kept > /kept\n", map[string]string{}), "lf:1")
	work := t.TempDir()
	h.mustRunIn(work, "save", "-o", "lf.tar", "lf:1")

	l := &harness{t: t, root: t.TempDir()}
	l.mustRunIn(work, "load", "-i", "lf.tar")
	blobs := func() int {
		entries, err := os.ReadDir(filepath.Join(l.root, "content", "blobs", "sha256"))
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	// manifest, config, the two uncompressed layers
	if n := blobs(); n != 4 {
		t.Errorf("%d blobs after the load, want 4", n)
	}
	l.mustRunIn(work, "save", "-o", "again.tar", "lf:1")
	layerFiles := func(name string) map[string][]byte {
		b, err := os.ReadFile(filepath.Join(work, name))
		if err != nil {
			t.Fatal(err)
		}
		files, _ := testutil.ReadTar(t, b)
		out := map[string][]byte{}
		for n, body := range files {
			if strings.HasSuffix(n, ".tar") {
				out[n] = body
			}
		}
		return out
	}
	orig, again := layerFiles("lf.tar"), layerFiles("again.tar")
	if len(orig) != 2 || len(again) != len(orig) {
		t.Fatalf("layers: %d saved first, %d after the load", len(orig), len(again))
	}
	for n, b := range orig {
		if !bytes.Equal(again[n], b) {
			t.Errorf("layer %s differs after load and save", n)
		}
	}

	l.mustRunIn(work, "save", "--format", "oci", "-o", "a.oci.tar", "lf:1")
	if n := blobs(); n != 6 {
		t.Errorf("%d blobs after an OCI save, want 6 (a gzip form per layer)", n)
	}
	l.mustRunIn(work, "save", "--format", "oci", "-o", "b.oci.tar", "lf:1")
	a, _ := os.ReadFile(filepath.Join(work, "a.oci.tar"))
	b, _ := os.ReadFile(filepath.Join(work, "b.oci.tar"))
	if !bytes.Equal(a, b) || blobs() != 6 {
		t.Errorf("the second OCI save differs or wrote blobs (%d)", blobs())
	}
	// The OCI archive loads into another root and runs.
	o := &harness{t: t, root: t.TempDir()}
	o.mustRunIn(work, "load", "-i", "a.oci.tar")
	if got := o.runImage("lf:1", "cat", "/kept"); got != "kept\n" {
		t.Errorf("/kept from the OCI archive: %q", got)
	}

	l.mustRun("cache", "prune", "--all")
	if n := blobs(); n != 6 {
		t.Errorf("%d blobs after a prune, want 6", n)
	}
	l.mustRun("store", "verify")
	if got := l.runImage("lf:1", "cat", "/kept"); got != "kept\n" {
		t.Errorf("/kept: %q", got)
	}
	l.build(l.context("FROM lf:1\nRUN cat /kept > /again\n", map[string]string{}), "on:1")
	if got := l.runImage("on:1", "cat", "/again"); got != "kept\n" {
		t.Errorf("/again: %q", got)
	}
	checkStoreConsistent(t, l.root)

	l.mustRun("rmi", "on:1", "lf:1")
	l.mustRun("cache", "prune", "--all")
	if n := blobs(); n != 0 {
		t.Errorf("%d blobs after the images went, want 0", n)
	}
	checkStoreConsistent(t, l.root)
}
