package container

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/snapshot/archive"
)

// CommitOptions say what commit writes besides the container's changes.
type CommitOptions struct {
	// Change, if set, edits the new image's config after it was made of
	// the container's (cmd/builder applies --change through the
	// Dockerfile frontend, which this package must not import).
	Change func(*dockerspec.DockerOCIImageConfig) error
	// Comment and Author go into the history entry (-m, -a).
	Comment string
	Author  string
	// Ref tags the new image; "" leaves it untagged.
	Ref string
}

// emptyLayerDiffID is the diff ID of a layer with no entries (a tar of
// only its end marker): a commit of an unchanged container adds no layer,
// only a history entry marked empty, as Docker does.
var emptyLayerDiffID = digest.FromBytes(make([]byte, 1024))

// Commit makes an image of c: its image's layers plus one layer of its
// changes (its writable layer as an OCI layer, whiteouts included), a
// config made of the container's (its command, env, working dir, user,
// as Docker commits them) edited by opts.Change, and a history entry.
// It returns the new image's manifest and ID. The container is left as
// it is, running or not; a running one is not paused, so a file it
// writes meanwhile may be caught half-written.
func (r *Runtime) Commit(ctx context.Context, c *Container, opts CommitOptions) (ocispec.Descriptor, digest.Digest, error) {
	var img dockerspec.DockerOCIImage
	if err := r.Store.Content().ReadJSON(ctx, c.Image.ID, &img); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("commit %s: read image config: %w", c.Name, err)
	}
	img.Config = imageConfig(img.Config, c)
	if opts.Change != nil {
		if err := opts.Change(&img.Config); err != nil {
			return ocispec.Descriptor{}, "", fmt.Errorf("commit %s: %w", c.Name, err)
		}
	}
	a, err := r.active(c)
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("commit %s: %w", c.Name, err)
	}
	// The runner's mount points in a running container's upper dir are
	// no change of the container's.
	var skip map[string]bool
	if Live(c) {
		if _, skip, err = r.diff(ctx, c); err != nil {
			return ocispec.Descriptor{}, "", fmt.Errorf("commit %s: %w", c.Name, err)
		}
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeLayer(ctx, a.UpperDir(), pw, skip))
	}()
	layer, diffID, err := r.Store.Content().IngestLayer(ctx, pr)
	pr.CloseWithError(io.ErrClosedPipe) // unblocks the writer if Ingest stopped early
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("commit %s: %w", c.Name, err)
	}
	now := r.now().UTC()
	img.Created = &now
	if opts.Author != "" {
		img.Author = opts.Author
	}
	layers := append([]ocispec.Descriptor(nil), c.Image.Layers...)
	img.RootFS.Type = "layers"
	img.RootFS.DiffIDs = append([]digest.Digest(nil), c.Image.DiffIDs...)
	h := ocispec.History{Created: &now, CreatedBy: strings.Join(c.Config.Cmd, " "), Comment: opts.Comment, Author: opts.Author}
	if diffID == emptyLayerDiffID {
		h.EmptyLayer = true
	} else {
		layers = append(layers, layer)
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, diffID)
	}
	img.History = append(img.History, h)
	mdesc, cdesc, err := r.Store.Content().PutImage(ctx, img, layers)
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("commit %s: %w", c.Name, err)
	}
	if opts.Ref != "" {
		if err := r.Store.Content().Tag(ctx, opts.Ref, mdesc); err != nil {
			return ocispec.Descriptor{}, "", fmt.Errorf("commit %s: %w", c.Name, err)
		}
	}
	return mdesc, cdesc.Digest, nil
}

// writeLayer writes upper as a layer tar to w, leaving out the paths
// (relative, slash-separated) in skip.
func writeLayer(ctx context.Context, upper string, w io.Writer, skip map[string]bool) error {
	if len(skip) == 0 {
		return archive.WriteLayer(ctx, upper, w, archive.WriteOptions{})
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(archive.WriteLayer(ctx, upper, pw, archive.WriteOptions{}))
	}()
	defer pr.Close()
	tr := tar.NewReader(pr)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if skip[strings.Trim(path.Clean("/"+hdr.Name), "/")] {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}

// imageConfig is the config a commit of c starts from: the image's, with
// what the container runs (Docker commits the container's config, so -e,
// -w, -u, --entrypoint and arguments carry over).
func imageConfig(base dockerspec.DockerOCIImageConfig, c *Container) dockerspec.DockerOCIImageConfig {
	// A deep copy: the new image's maps and slices are its own.
	var cfg dockerspec.DockerOCIImageConfig
	b, _ := json.Marshal(base)
	_ = json.Unmarshal(b, &cfg)
	cfg.Entrypoint = append([]string(nil), c.Config.Entrypoint...)
	cfg.Cmd = append([]string(nil), c.Config.Cmd...)
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = nil
	}
	if len(cfg.Cmd) == 0 {
		cfg.Cmd = nil
	}
	cfg.Env = append([]string(nil), c.Config.Env...)
	cfg.WorkingDir = c.Config.WorkingDir
	cfg.User = c.Config.User
	cfg.StopSignal = c.Config.StopSignal
	return cfg
}
