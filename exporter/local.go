package exporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/snapshot/archive"
	"github.com/builder-dev/builder/store"
)

// Output is one output of a build (`build -o type=...,dest=...`).
type Output struct {
	// Type is oci or docker (an archive of the image), local (its root
	// file system as a directory), tar (that directory as a tar), image
	// (the store, under Names) or registry (image, pushed).
	Type string
	// Dest is the file or directory written; "-" is stdout for an archive
	// or a tar.
	Dest string
	// Names are the names of an image or registry output (the build's
	// tags if none).
	Names []string
	// Push, for an image output, pushes it to each name's registry.
	Push bool
}

// Built is a build's image as its outputs need it: already in the store.
type Built struct {
	Manifest ocispec.Descriptor
	// Layers are the image's layers, bottom first; local and tar outputs
	// apply them, and so need no snapshot of the result.
	Layers []ocispec.Descriptor
	// Tags name the image in archives; without any, the archive names it
	// by its manifest digest.
	Tags []string
}

// Export writes the built image b to the output o.
func Export(ctx context.Context, s *store.Store, b Built, o Output) error {
	switch o.Type {
	case "local":
		return Local(ctx, s, b.Layers, o.Dest)
	case "tar":
		tmp, err := os.MkdirTemp(s.TmpDir(), "export-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := Local(ctx, s, b.Layers, tmp); err != nil {
			return err
		}
		return WriteDest(o.Dest, func(w io.Writer) error {
			return archive.WriteLayer(ctx, tmp, w, archive.WriteOptions{})
		})
	case "docker", "oci":
	case "image", "registry":
		return fmt.Errorf("export: output type %q needs a registry: %w", o.Type, store.ErrInvalid)
	default:
		return fmt.Errorf("export: output type %q: %w", o.Type, store.ErrInvalid)
	}
	refs := b.Tags
	if len(refs) == 0 {
		refs = []string{b.Manifest.Digest.String()}
	}
	return WriteDest(o.Dest, func(w io.Writer) error {
		if o.Type == "docker" {
			return SaveDocker(ctx, s, refs, w)
		}
		return SaveOCI(ctx, s, refs, w)
	})
}

// Local writes an image's root file system into dir by applying its
// layers (bottom first) in order.
func Local(ctx context.Context, s *store.Store, layers []ocispec.Descriptor, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := s.Content().OpenLayer(ctx, l.Digest)
		if err != nil {
			return err
		}
		_, err = archive.Apply(ctx, dir, rc, archive.ApplyOptions{})
		// Read past the tar's end so the blob's digest is checked; after a
		// broken tar, a changed blob is the likelier cause to report.
		if _, derr := io.Copy(io.Discard, rc); derr != nil && ctx.Err() == nil {
			if err != nil {
				derr = fmt.Errorf("%w (%v)", derr, err)
			}
			err = derr
		}
		rc.Close()
		if err != nil {
			return fmt.Errorf("export layer %s: %w", l.Digest, err)
		}
	}
	return nil
}

// WriteDest writes an archive to a file atomically (temp + rename), or to
// stdout for "-". A failed write (a corrupt blob found at the end of a
// layer) removes the temporary file and leaves dest as it was.
//
// A dest that is no regular file (/dev/null, /dev/stdout, a FIFO, a
// terminal) is written in place: renaming over it would replace the device
// node or pipe with a regular file holding the archive (for /dev/null,
// for every program on the machine). A directory is an error.
func WriteDest(dest string, write func(io.Writer) error) error {
	if dest == "-" {
		return write(os.Stdout)
	}
	if fi, err := os.Stat(dest); err == nil && !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return fmt.Errorf("write %s: is a directory", dest)
		}
		f, err := os.OpenFile(dest, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if err := write(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	f, err := createTemp(dest)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dest)
}

// createTemp creates a new file next to dest for WriteDest, with mode 0666
// less the umask as docker's archives get (os.CreateTemp makes 0600).
func createTemp(dest string) (*os.File, error) {
	dir, base := filepath.Dir(dest), filepath.Base(dest)
	for {
		name := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
}
