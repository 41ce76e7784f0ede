package archive_test

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/builder-dev/builder/snapshot"
	"github.com/builder-dev/builder/snapshot/archive"
)

// TestUnpackBombLeavesNoLayer unpacks a tampered image layer that is a gzip
// bomb (as load or a pull would hand it over) into a snapshotter on a
// 64 MiB filesystem: Unpack fails with ErrNoSpace, and neither the layer
// nor its half-written temporary directory remains.
func TestUnpackBombLeavesNoLayer(t *testing.T) {
	testutil.RequiresRoot(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=64m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", root, err)
		}
	})
	sn, err := snapshot.New(root)
	if err != nil {
		t.Fatal(err)
	}
	// 1,024 files of 1 MiB of zeros: each fits, all of them do not.
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		zw := gzip.NewWriter(pw)
		tw := testutil.NewTarWriter(zw)
		err := func() error {
			for i := range 1024 {
				if err := tw.Add(testutil.TarEntry{Name: fmt.Sprintf("bomb/%04d", i), Size: 1 << 20, Content: testutil.Zeros}); err != nil {
					return err
				}
			}
			if err := tw.Close(); err != nil {
				return err
			}
			return zw.Close()
		}()
		pw.CloseWithError(err)
	}()
	zr, err := gzip.NewReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	chainID := digest.FromString("bomb")
	_, err = sn.Unpack(t.Context(), snapshot.Committed{}, chainID, zr)
	if !errors.Is(err, archive.ErrNoSpace) {
		t.Fatalf("Unpack: %v, want %v", err, archive.ErrNoSpace)
	}
	if sn.Has(chainID) {
		t.Error("the bomb's layer is committed")
	}
	left, err := os.ReadDir(filepath.Join(root, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left in the snapshotter's tmp: %v", left)
	}
}
