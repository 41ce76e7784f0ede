package main

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
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/exporter"
	"github.com/builder-dev/builder/snapshot/archive"
	"github.com/builder-dev/builder/solver"
)

// output is one -o/--output of build.
type output struct {
	typ  string // oci, docker, local, tar
	dest string // file or directory; "-" is stdout for archives
}

func parseOutputs(list []string) ([]output, error) {
	var outs []output
	for _, s := range list {
		o := output{}
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				// docker's shorthand: -o DIR means a local export.
				if len(strings.Split(s, ",")) == 1 {
					o.typ, o.dest = "local", s
					break
				}
				return nil, usageError{fmt.Errorf("invalid --output %q", s)}
			}
			switch k {
			case "type":
				o.typ = v
			case "dest":
				o.dest = v
			default:
				return nil, usageError{fmt.Errorf("invalid --output %q: unknown key %q", s, k)}
			}
		}
		switch o.typ {
		case "oci", "docker", "local", "tar":
		default:
			return nil, usageError{fmt.Errorf("invalid --output %q: type must be oci, docker, local or tar", s)}
		}
		if o.dest == "" {
			return nil, usageError{fmt.Errorf("invalid --output %q: dest is required", s)}
		}
		outs = append(outs, o)
	}
	return outs, nil
}

func exportOutput(ctx context.Context, e *env, manifest ocispec.Descriptor, res *solver.Result, o output, tags []string) error {
	switch o.typ {
	case "local":
		return exportLocal(ctx, e, res.Layers, o.dest)
	case "tar":
		tmp, err := os.MkdirTemp(e.store.TmpDir(), "export-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := exportLocal(ctx, e, res.Layers, tmp); err != nil {
			return err
		}
		return writeDest(o.dest, func(w io.Writer) error {
			return archive.WriteLayer(ctx, tmp, w, archive.WriteOptions{})
		})
	}
	refs := tags
	if len(refs) == 0 {
		refs = []string{manifest.Digest.String()}
	}
	return writeDest(o.dest, func(w io.Writer) error {
		if o.typ == "docker" {
			return exporter.SaveDocker(ctx, e.store, refs, w)
		}
		return exporter.SaveOCI(ctx, e.store, refs, w)
	})
}

// exportLocal writes the image's root file system into dir by applying its
// layers in order.
func exportLocal(ctx context.Context, e *env, layers []ocispec.Descriptor, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := e.store.OpenLayer(ctx, l.Digest)
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

// writeDest writes an archive to a file atomically (temp + rename), or to
// stdout for "-". A failed write (a corrupt blob found at the end of a
// layer) removes the temporary file and leaves dest as it was.
//
// A dest that is no regular file (/dev/null, /dev/stdout, a FIFO, a
// terminal) is written in place: renaming over it would replace the device
// node or pipe with a regular file holding the archive (for /dev/null,
// for every program on the machine). A directory is an error.
func writeDest(dest string, write func(io.Writer) error) error {
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

// createTemp creates a new file next to dest for writeDest, with mode 0666
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
