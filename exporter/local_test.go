package exporter

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/storetest"
)

func TestExportLocalAndTar(t *testing.T) {
	testutil.RequiresRoot(t) // applying a layer chowns its entries
	t.Parallel()
	ctx := context.Background()
	s := storetest.NewStore(t)
	base := testutil.Tar(t, testutil.TarEntry{Name: "etc/hello", Body: "hi\n"}, testutil.TarEntry{Name: "etc/gone", Body: "x"})
	top := testutil.Tar(t, testutil.TarEntry{Name: "etc/.wh.gone"}, testutil.TarEntry{Name: "bin/sh", Type: tar.TypeSymlink, Mode: 0o777, Linkname: "busybox"})
	m := storetest.PutImage(t, s, [][]byte{base, top}, "app:1")
	_, mf, _ := storetest.LoadImage(t, s, "app:1")
	b := Built{Manifest: m, Layers: mf.Layers, Tags: []string{"app:1"}}

	dir := filepath.Join(t.TempDir(), "out")
	if err := Export(ctx, s, b, Output{Type: "local", Dest: dir}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "etc/hello")); err != nil || string(got) != "hi\n" {
		t.Errorf("etc/hello = %q, %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc/gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("etc/gone, whited out above: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || l != "busybox" {
		t.Errorf("bin/sh -> %q, %v", l, err)
	}

	tarPath := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := Export(ctx, s, b, Output{Type: "tar", Dest: tarPath}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	files, links := testutil.ReadTar(t, data)
	if string(files["etc/hello"]) != "hi\n" || links["bin/sh"] != "busybox" {
		t.Errorf("tar files %v, links %v", files, links)
	}
	if _, ok := files["etc/gone"]; ok {
		t.Error("tar holds the whited-out etc/gone")
	}
	if entries, _ := os.ReadDir(s.TmpDir()); len(entries) != 0 {
		t.Errorf("tar export left %v in the store's tmp", entries)
	}

	if err := Export(ctx, s, b, Output{Type: "zip", Dest: tarPath}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("unknown type: %v, want ErrInvalid", err)
	}
}

func TestWriteDest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dest := filepath.Join(dir, "x.tar")
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if err := WriteDest(dest, write("one")); err != nil {
		t.Fatal(err)
	}
	// A failed write leaves dest as it was, and no temporary file.
	boom := errors.New("boom")
	if err := WriteDest(dest, func(w io.Writer) error { _, _ = io.WriteString(w, "two"); return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, []byte("one")) {
		t.Errorf("dest = %q after a failed write", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("dir holds %v", entries)
	}
	// A device is written in place, never replaced.
	if err := WriteDest(os.DevNull, write("x")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(os.DevNull); err != nil || fi.Mode()&os.ModeDevice == 0 {
		t.Fatalf("%s after WriteDest: %v, %v", os.DevNull, fi, err)
	}
	if err := WriteDest(dir, write("x")); err == nil {
		t.Error("a directory as dest: no error")
	}
}
