package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
)

// TestWriteLayerPinned pins WriteLayer's bytes for a tree with every kind
// of entry: layer digests already in stores and caches depend on them, so
// a change that moves them must be deliberate.
func TestWriteLayerPinned(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	tree := append([]node{}, overlayTree...)
	tree = append(tree,
		node{Path: "big", Body: strings.Repeat("0123456789abcdef", 40000)}, // several reads
		node{Path: "empty"},
		node{Path: "run/late", ModTime: t0.Add(48 * time.Hour)},
	)
	build(t, dir, tree...)
	for _, tc := range []struct {
		opts WriteOptions
		want string
	}{
		{WriteOptions{}, pinnedLayer},
		{WriteOptions{SourceDateEpoch: &t0}, pinnedLayerEpoch},
	} {
		sum := sha256.Sum256(writeLayer(t, dir, tc.opts))
		if got := hex.EncodeToString(sum[:]); got != tc.want {
			t.Errorf("layer sha256 %s, want %s", got, tc.want)
		}
	}
}

const (
	pinnedLayer      = "e8e89291e834e06c403b3e47f7326816cec316910a6f38c83e3210c2fad0ee48"
	pinnedLayerEpoch = "26ee65125dce567360ec9e83754dd4bfe078199f98e4165f0a94ce5ec0bb854d"
)

// TestCopyFileSizeChanged: a file that grew or shrank since its header was
// written never makes a silently wrong layer.
func TestCopyFileSizeChanged(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name         string
		size, actual int
		wantErr      bool
	}{
		{"same", 5, 5, false},
		{"same, several reads", 300000, 300000, false},
		{"grew", 5, 6, true},
		{"grew past a read", 131072, 131073, true},
		{"shrank", 5, 4, true},
		{"empty grew", 0, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, bytes.Repeat([]byte("x"), tc.actual), 0o644); err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Open(p, unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			var out bytes.Buffer
			lw := &layerWriter{tw: tar.NewWriter(&out), buf: make([]byte, 128<<10)}
			if err := lw.tw.WriteHeader(&tar.Header{Name: "f", Size: int64(tc.size), Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			err = lw.copyFile(fd, "f", int64(tc.size))
			if err == nil {
				err = lw.tw.Close()
			}
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want one: %v", err, tc.wantErr)
			}
		})
	}
}

// TestWriteLayerLargeDirectory: a directory whose listing takes several
// getdents calls comes out whole and in order.
func TestWriteLayerLargeDirectory(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	nodes := []node{{Path: "d", Kind: "dir"}}
	var want []string
	want = append(want, "d/ 0755 0:0 dir")
	for i := range 700 {
		name := "d/" + strings.Repeat("n", 200) + string(rune('a'+i%26)) + strings.Repeat("z", i/26)
		nodes = append(nodes, node{Path: name, Body: "x"})
	}
	build(t, dir, nodes...)
	names := make([]string, 0, 700)
	for _, n := range nodes[1:] {
		names = append(names, n.Path+" 0644 0:0 \"x\"")
	}
	slices.Sort(names)
	want = append(want, names...)
	assertLines(t, listTar(t, writeLayer(t, dir, WriteOptions{})), want)
}
