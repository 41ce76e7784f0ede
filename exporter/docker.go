package exporter

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/ctxio"
	"github.com/builder-dev/builder/store"
)

// SaveDocker writes a docker-archive of the images refs name to w, as
// `docker save` does: manifest.json (RepoTags), repositories, <config>.json
// and uncompressed <diffid>.tar layers. go-containerregistry's tarball
// writer lays out the archive; the images it is given present the store's
// layers uncompressed, since that is what docker-archive holds.
func SaveDocker(ctx context.Context, s *store.Store, refs []string, w io.Writer) error {
	targets, err := resolveRefs(ctx, s, refs)
	if err != nil {
		return fmt.Errorf("save docker archive: %w", err)
	}
	// One v1.Image per manifest: the tarball writer groups tags by image
	// identity, and writes each layer once.
	images := map[digest.Digest]v1.Image{}
	refToImage := map[name.Reference]v1.Image{}
	repos := map[string]map[string]string{}
	for i, t := range targets {
		img, ok := images[t.manifest.Digest]
		var top string
		if !ok {
			img, top, err = dockerImage(ctx, s, t.manifest, t.shownAs())
			if err != nil {
				return fmt.Errorf("save docker archive: image %s: %w", t.shownAs(), err)
			}
			images[t.manifest.Digest] = img
		}
		var ref name.Reference
		if t.name != "" {
			ref, err = name.NewTag(t.name)
			if err != nil {
				return fmt.Errorf("save docker archive: %s: %w", t.name, err)
			}
			if top == "" {
				top = topLayer(img)
			}
			repo, tag := splitTag(t.name)
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			repos[repo][tag] = top
		} else {
			// Untagged: the key only has to be a distinct reference; the
			// archive gets no RepoTags for it.
			ref, err = name.NewDigest(fmt.Sprintf("untagged-%d@%s", i, t.manifest.Digest))
			if err != nil {
				return fmt.Errorf("save docker archive: %w", err)
			}
		}
		refToImage[ref] = img
	}

	if err := writeDockerArchive(ctx, refToImage, repos, w); err != nil {
		return fmt.Errorf("save docker archive: %w", err)
	}
	return nil
}

// writeDockerArchive runs go-containerregistry's tarball writer and passes
// its stream through, entry by entry, to lay it out as docker save does:
// the legacy repositories file first, and the config as <hex>.json where
// the writer names it sha256:<hex>.
func writeDockerArchive(ctx context.Context, refToImage map[name.Reference]v1.Image, repos map[string]map[string]string, w io.Writer) error {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	var werr error
	go func() {
		defer close(done)
		werr = tarball.MultiRefWrite(refToImage, pw)
		pw.CloseWithError(werr)
	}()
	err := rewriteDockerArchive(ctx, tar.NewReader(pr), repos, w)
	pr.CloseWithError(io.ErrClosedPipe) // stops the writer on our error
	<-done
	if err == nil {
		// The tarball writer closes its archive (end blocks and all) even
		// when a layer fails on its last read, where the digest is checked:
		// a complete-looking stream does not mean it wrote everything.
		err = werr
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func rewriteDockerArchive(ctx context.Context, tr *tar.Reader, repos map[string]map[string]string, w io.Writer) error {
	tw := tar.NewWriter(w)
	b, err := json.Marshal(repos)
	if err != nil {
		return err
	}
	if err := writeFile(tw, "repositories", b); err != nil {
		return err
	}
	const prefix = "sha256:"
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		h.ModTime = epoch
		if h.Name == "manifest.json" {
			var m tarball.Manifest
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				return fmt.Errorf("read manifest.json: %w", err)
			}
			for i := range m {
				if hex, ok := strings.CutPrefix(m[i].Config, prefix); ok {
					m[i].Config = hex + ".json"
				}
			}
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := writeFile(tw, h.Name, b); err != nil {
				return err
			}
			continue
		}
		if hex, ok := strings.CutPrefix(h.Name, prefix); ok {
			h.Name = hex + ".json"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, ctxio.Reader(ctx, tr)); err != nil {
			return fmt.Errorf("write %s: %w", h.Name, err)
		}
	}
	return tw.Close()
}

// splitTag splits "reg:5000/x/y:t" into "reg:5000/x/y" and "t".
func splitTag(n string) (string, string) {
	i := strings.LastIndexByte(n, ':')
	if i < 0 || strings.LastIndexByte(n, '/') > i {
		return n, "latest"
	}
	return n[:i], n[i+1:]
}

// topLayer is the hex of img's last layer file, which the repositories
// file names.
func topLayer(img v1.Image) string {
	m, err := img.Manifest()
	if err != nil || len(m.Layers) == 0 {
		return ""
	}
	return m.Layers[len(m.Layers)-1].Digest.Hex
}

// dockerImage presents the store's image as a docker schema2 image whose
// layers are the uncompressed tars, named by diff ID. It also returns its
// top layer's hex.
func dockerImage(ctx context.Context, s *store.Store, manifest ocispec.Descriptor, shownAs string) (v1.Image, string, error) {
	m, _, err := s.Content().LoadImage(ctx, manifest)
	if err != nil {
		return nil, "", err
	}
	rawConfig, err := s.Content().ReadBlob(ctx, m.Config.Digest)
	if err != nil {
		return nil, "", err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, "", fmt.Errorf("parse config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, "", fmt.Errorf("image %s: %d layers but %d diff_ids: %w", manifest.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs), store.ErrInvalid)
	}
	img := &dockerImg{rawConfig: rawConfig, layers: map[v1.Hash]*dockerLayer{}}
	dm := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config: v1.Descriptor{
			MediaType: types.DockerConfigJSON,
			Size:      int64(len(rawConfig)),
			Digest:    v1.Hash{Algorithm: "sha256", Hex: digest.FromBytes(rawConfig).Encoded()},
		},
	}
	blobs := make([]digest.Digest, len(m.Layers))
	for i, l := range m.Layers {
		blobs[i] = l.Digest
	}
	// The tar entries' sizes come first: remembered, not counted by
	// reading each layer an extra time.
	infos, err := s.LayerInfos(ctx, blobs)
	if err != nil {
		return nil, "", err
	}
	for i, l := range m.Layers {
		diffID := cfg.RootFS.DiffIDs[i]
		size := infos[l.Digest].TarSize
		img.layers[diffID] = &dockerLayer{ctx: ctx, s: s, layer: l, diffID: diffID, size: size, image: shownAs}
		dm.Layers = append(dm.Layers, v1.Descriptor{MediaType: types.DockerUncompressedLayer, Size: size, Digest: diffID})
	}
	img.rawManifest, err = json.Marshal(dm)
	if err != nil {
		return nil, "", err
	}
	v1img, err := partial.CompressedToImage(img)
	if err != nil {
		return nil, "", err
	}
	top := ""
	if n := len(dm.Layers); n > 0 {
		top = dm.Layers[n-1].Digest.Hex
	}
	return v1img, top, nil
}

// dockerImg is the partial.CompressedImageCore of a saved image, whose
// "compressed" layers are in fact the uncompressed tars.
type dockerImg struct {
	rawConfig, rawManifest []byte
	layers                 map[v1.Hash]*dockerLayer
}

var _ partial.CompressedImageCore = (*dockerImg)(nil)

func (i *dockerImg) RawConfigFile() ([]byte, error)      { return i.rawConfig, nil }
func (i *dockerImg) RawManifest() ([]byte, error)        { return i.rawManifest, nil }
func (i *dockerImg) MediaType() (types.MediaType, error) { return types.DockerManifestSchema2, nil }

func (i *dockerImg) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("layer %s: %w", h, store.ErrNotFound)
}

// dockerLayer is a store layer read uncompressed: a layer loaded from a
// docker archive is copied as it is, a compressed one decompressed on the
// way (see store.Content.OpenUncompressed).
type dockerLayer struct {
	ctx    context.Context
	s      *store.Store
	layer  ocispec.Descriptor
	diffID v1.Hash
	size   int64
	image  string // for errors
}

var _ partial.CompressedLayer = (*dockerLayer)(nil)

func (l *dockerLayer) Digest() (v1.Hash, error)            { return l.diffID, nil }
func (l *dockerLayer) Size() (int64, error)                { return l.size, nil }
func (l *dockerLayer) MediaType() (types.MediaType, error) { return types.DockerUncompressedLayer, nil }

func (l *dockerLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.s.Content().OpenUncompressed(l.ctx, l.layer, digest.Digest(l.diffID.String()))
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{errReader{ctxio.Reader(l.ctx, rc), l}, rc}, nil
}

// errReader names the layer and its image in a read error: the tarball
// writer passes it on bare.
type errReader struct {
	r io.Reader
	l *dockerLayer
}

func (e errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("layer %s of image %s: %w", e.l.layer.Digest, e.l.image, err)
	}
	return n, err
}
