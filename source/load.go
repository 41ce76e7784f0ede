package source

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/ctxio"
	"github.com/builder-dev/builder/internal/diskspace"
	"github.com/builder-dev/builder/store"
)

// mediaTypeDockerManifestList is Docker's multi-platform index, which Load
// follows like an OCI index.
const mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"

// annotationImageName is containerd's (and Docker's) full image name
// annotation, which Load prefers to ref.name (often a bare tag). The
// exporter writes the same key; a constant is not worth a shared package.
const annotationImageName = "io.containerd.image.name"

// Load reads a docker-archive (manifest.json with RepoTags, as `docker save`
// and `skopeo copy ... docker-archive:` write, legacy layer directories and
// symlinked layers included) or an oci-archive (index.json), told apart by
// content, possibly gzip-compressed as a whole. It stores the blobs, each
// layer as it came (a docker archive's tars uncompressed, gzip and zstd
// as they are: nothing is compressed or decompressed into the store) once
// checked against its config diff_id, writes OCI manifests (an OCI
// manifest that needs no change keeps its bytes and digest), tags the
// images and returns the names loaded; an image without a name is
// returned as its ID (the config digest), which is the archive's.
//
// Nothing reaches the store before the whole archive has been read and
// checked: the archive is unpacked into a temporary directory of the
// store, its blobs are staged there, and only then are they committed,
// the manifests listed and the tags set. An archive that fails any check
// leaves the store as it was.
func Load(ctx context.Context, s *store.Store, r io.Reader) ([]string, error) {
	sp, err := newSpool(ctx, s, r)
	if sp != nil {
		defer sp.close()
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	l := &loader{s: s, sp: sp, layers: map[digest.Digest]ocispec.Descriptor{}}
	defer l.discard()
	switch {
	case sp.has("manifest.json"):
		// Docker 25+ archives hold an OCI layout too; manifest.json is
		// preferred for its RepoTags.
		err = l.planDocker(ctx)
	case sp.has(ocispec.ImageIndexFile):
		err = l.planOCI(ctx)
	default:
		err = fmt.Errorf("neither manifest.json nor index.json: not a docker or OCI archive: %w", store.ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	names, err := l.commit(ctx)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return names, nil
}

// loader is one Load: the spooled archive, the blobs staged so far, the
// layers among them by diff ID, and the images to list once all is
// staged.
type loader struct {
	s      *store.Store
	sp     *spool
	staged []*store.StagedBlob
	layers map[digest.Digest]ocispec.Descriptor
	images []plannedImage
}

// plannedImage is an image of the archive, checked and with its blobs
// staged.
type plannedImage struct {
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
	manifest *ocispec.Descriptor // the archive's own manifest, kept as is
	tags     []string            // normalized
}

// stage writes b into the store's temporary area until commit.
func (l *loader) stage(ctx context.Context, mediaType string, r io.Reader) (*store.StagedBlob, error) {
	b, err := l.s.Content().Stage(ctx, mediaType, r)
	if err != nil {
		return nil, err
	}
	l.staged = append(l.staged, b)
	return b, nil
}

// discard drops what commit did not take.
func (l *loader) discard() {
	for _, b := range l.staged {
		b.Discard()
	}
	l.staged = nil
}

// commit puts the staged blobs into the store, then lists and tags the
// planned images. A failure here (a full disk) can leave blobs no image
// names, which garbage collection removes.
func (l *loader) commit(ctx context.Context) ([]string, error) {
	for _, b := range l.staged {
		if err := b.Commit(); err != nil {
			return nil, err
		}
	}
	l.staged = nil
	var names []string
	for _, im := range l.images {
		var m ocispec.Descriptor
		var err error
		if im.manifest != nil {
			m = *im.manifest
			err = l.s.Content().AddManifest(ctx, m)
		} else {
			m, err = l.s.Content().PutManifest(ctx, im.config, im.layers)
		}
		if err != nil {
			return nil, err
		}
		if len(im.tags) == 0 {
			names = appendNew(names, im.config.Digest.String())
		}
		for _, n := range im.tags {
			if err := l.s.Content().Tag(ctx, n, m); err != nil {
				return nil, err
			}
			names = appendNew(names, n)
		}
	}
	return names, nil
}

// dockerManifest is one entry of a docker-archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func (l *loader) planDocker(ctx context.Context) error {
	var entries []dockerManifest
	if err := l.readJSON("manifest.json", &entries); err != nil {
		return err
	}
	if len(entries) == 0 {
		return fmt.Errorf("manifest.json lists no image: %w", store.ErrInvalid)
	}
	for _, e := range entries {
		tags, err := normalizeTags(e.RepoTags)
		if err != nil {
			return err
		}
		rawConfig, err := l.readFile(e.Config)
		if err != nil {
			return err
		}
		diffIDs, err := diffIDsOf(rawConfig, len(e.Layers))
		if err != nil {
			return fmt.Errorf("config %s: %w", e.Config, err)
		}
		cb, err := l.stage(ctx, ocispec.MediaTypeImageConfig, bytes.NewReader(rawConfig))
		if err != nil {
			return err
		}
		im := plannedImage{config: cb.Desc, tags: tags}
		for i, lp := range e.Layers {
			f, err := l.sp.lookup(lp)
			if err != nil {
				return err
			}
			desc, err := l.storeLayer(ctx, f, diffIDs[i])
			if err != nil {
				return fmt.Errorf("layer %s: %w", lp, err)
			}
			im.layers = append(im.layers, desc)
		}
		l.images = append(l.images, im)
	}
	return nil
}

// normalizeTags checks and normalizes an archive's names for its image.
func normalizeTags(refs []string) ([]string, error) {
	var out []string
	for _, ref := range refs {
		n, err := store.NormalizeName(ref)
		if err != nil {
			return nil, err
		}
		if strings.Contains(n, "@") {
			return nil, fmt.Errorf("image name %q: a tag cannot hold a digest: %w", ref, store.ErrInvalid)
		}
		out = append(out, n)
	}
	return out, nil
}

func (l *loader) planOCI(ctx context.Context) error {
	var idx ocispec.Index
	if err := l.readJSON(ocispec.ImageIndexFile, &idx); err != nil {
		return err
	}
	if len(idx.Manifests) == 0 {
		return fmt.Errorf("index.json lists no image: %w", store.ErrInvalid)
	}
	for _, e := range idx.Manifests {
		var refs []string
		if n := e.Annotations[annotationImageName]; n != "" {
			refs = append(refs, n)
		} else if n := e.Annotations[ocispec.AnnotationRefName]; n != "" {
			refs = append(refs, n)
		}
		tags, err := normalizeTags(refs)
		if err != nil {
			return err
		}
		md, err := l.platformManifest(e, 0)
		if err != nil {
			return err
		}
		im, err := l.planOCIImage(ctx, md)
		if err != nil {
			return fmt.Errorf("image %s: %w", md.Digest, err)
		}
		im.tags = tags
		l.images = append(l.images, im)
	}
	return nil
}

// platformManifest follows image indexes down to the image manifest for
// this machine (linux on runtime.GOARCH), or the only one.
func (l *loader) platformManifest(d ocispec.Descriptor, depth int) (ocispec.Descriptor, error) {
	if d.MediaType != ocispec.MediaTypeImageIndex && d.MediaType != mediaTypeDockerManifestList {
		return d, nil
	}
	if depth > 4 {
		return ocispec.Descriptor{}, fmt.Errorf("index %s: nested too deep: %w", d.Digest, store.ErrInvalid)
	}
	b, err := l.readBlob(d)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("index %s: %w", d.Digest, err)
	}
	for _, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
			return l.platformManifest(m, depth+1)
		}
	}
	if len(idx.Manifests) == 1 {
		return l.platformManifest(idx.Manifests[0], depth+1)
	}
	return ocispec.Descriptor{}, fmt.Errorf("index %s: no image for linux/%s: %w", d.Digest, runtime.GOARCH, store.ErrNotFound)
}

// planOCIImage stages the image of manifest md: as it is when it already
// is what the store keeps (OCI media types that say each layer's
// compression), else to be converted to an OCI manifest over the same
// blobs.
func (l *loader) planOCIImage(ctx context.Context, md ocispec.Descriptor) (plannedImage, error) {
	rawManifest, err := l.readBlob(md)
	if err != nil {
		return plannedImage{}, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(rawManifest, &m); err != nil {
		return plannedImage{}, fmt.Errorf("decode manifest: %w", err)
	}
	rawConfig, err := l.readBlob(m.Config)
	if err != nil {
		return plannedImage{}, err
	}
	diffIDs, err := diffIDsOf(rawConfig, len(m.Layers))
	if err != nil {
		return plannedImage{}, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	keep := (m.MediaType == ocispec.MediaTypeImageManifest || m.MediaType == "") &&
		m.Config.MediaType == ocispec.MediaTypeImageConfig
	var im plannedImage
	for i, ld := range m.Layers {
		if err := ld.Digest.Validate(); err != nil {
			return plannedImage{}, fmt.Errorf("layer digest %q: %w", ld.Digest, store.ErrInvalid)
		}
		f, err := l.sp.lookup(blobPath(ld.Digest))
		if err != nil {
			return plannedImage{}, err
		}
		if f.digest != ld.Digest || f.size != ld.Size {
			return plannedImage{}, fmt.Errorf("layer %s: blob does not match its descriptor: %w", ld.Digest, store.ErrInvalid)
		}
		desc, err := l.storeLayer(ctx, f, diffIDs[i])
		if err != nil {
			return plannedImage{}, fmt.Errorf("layer %s: %w", ld.Digest, err)
		}
		// Kept as it came, under the media type its content says.
		keep = keep && desc.Digest == ld.Digest && ld.MediaType == desc.MediaType
		im.layers = append(im.layers, desc)
	}
	cb, err := l.stage(ctx, ocispec.MediaTypeImageConfig, bytes.NewReader(rawConfig))
	if err != nil {
		return plannedImage{}, err
	}
	im.config = cb.Desc
	if keep {
		mb, err := l.stage(ctx, ocispec.MediaTypeImageManifest, bytes.NewReader(rawManifest))
		if err != nil {
			return plannedImage{}, err
		}
		im.manifest = &mb.Desc
	}
	return im, nil
}

// storeLayer stages the spooled layer f as it came (uncompressed, gzip or
// zstd: see store's doc), after checking that its uncompressed digest is
// diffID and counting its LayerInfo. The spooled file itself becomes the
// blob (store.StageFile): a layer is never copied.
func (l *loader) storeLayer(ctx context.Context, f spooled, diffID digest.Digest) (ocispec.Descriptor, error) {
	if d, ok := l.layers[diffID]; ok {
		return d, nil
	}
	file, err := os.Open(f.path)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer file.Close()
	c, br, err := store.DetectCompression(file)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var info store.LayerInfo
	if c == store.Uncompressed {
		// The spool hashed the file: the tar's digest is the blob's.
		if f.digest != diffID {
			return ocispec.Descriptor{}, diffIDMismatch(f.digest, diffID)
		}
		info, err = store.CountTarFile(file)
	} else {
		info, err = checkDiffID(ctx, br, diffID)
	}
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	b, err := l.s.Content().StageFile(f.path, ocispec.Descriptor{MediaType: store.LayerMediaType(c), Digest: f.digest, Size: f.size})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	l.staged = append(l.staged, b)
	b.Layer = &info
	b.DiffID = diffID
	l.layers[diffID] = b.Desc
	return b.Desc, nil
}

// checkDiffID reads the compressed layer stream r through, checks its
// uncompressed digest and counts its LayerInfo.
func checkDiffID(ctx context.Context, r io.Reader, diffID digest.Digest) (store.LayerInfo, error) {
	zr, err := store.Decompress(r)
	if err != nil {
		return store.LayerInfo{}, err
	}
	defer zr.Close()
	dg := digest.Canonical.Digester()
	info, err := store.CountTar(io.TeeReader(ctxio.Reader(ctx, zr), dg.Hash()))
	if err != nil {
		return store.LayerInfo{}, fmt.Errorf("layer: %w", err)
	}
	if dg.Digest() != diffID {
		return store.LayerInfo{}, diffIDMismatch(dg.Digest(), diffID)
	}
	return info, nil
}

func diffIDMismatch(got, want digest.Digest) error {
	return fmt.Errorf("uncompressed digest %s, config says diff_id %s: %w", got, want, store.ErrInvalid)
}

// diffIDsOf reads the diff_ids of an image config that must have n.
func diffIDsOf(rawConfig []byte, n int) ([]digest.Digest, error) {
	var cfg ocispec.Image
	if err := json.Unmarshal(rawConfig, &cfg); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != n {
		return nil, fmt.Errorf("%d diff_ids for %d layers: %w", len(cfg.RootFS.DiffIDs), n, store.ErrInvalid)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("diff_id %q: %w", d, store.ErrInvalid)
		}
	}
	return cfg.RootFS.DiffIDs, nil
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		if !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// readBlob reads a small blob (manifest, index, config) of the archive and
// checks it against its descriptor.
func (l *loader) readBlob(d ocispec.Descriptor) ([]byte, error) {
	if err := d.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("descriptor digest %q: %w", d.Digest, store.ErrInvalid)
	}
	b, err := l.readFile(blobPath(d.Digest))
	if err != nil {
		return nil, err
	}
	if d.Digest.Algorithm().FromBytes(b) != d.Digest {
		return nil, fmt.Errorf("blob %s: content does not match its digest: %w", d.Digest, store.ErrInvalid)
	}
	return b, nil
}

// maxJSONSize bounds the JSON documents of an archive (manifest.json,
// index.json, manifests, configs), which are read whole into memory: an
// archive could otherwise make load take as much memory as it has bytes.
// Real ones are kilobytes; registries refuse manifests over 4 MiB.
const maxJSONSize = 32 << 20

// readFile reads a JSON document of the archive (see maxJSONSize).
func (l *loader) readFile(name string) ([]byte, error) {
	f, err := l.sp.lookup(name)
	if err != nil {
		return nil, err
	}
	if f.size > maxJSONSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d MiB a manifest or config may have: %w", name, f.size, maxJSONSize>>20, store.ErrInvalid)
	}
	return os.ReadFile(f.path)
}

func (l *loader) readJSON(name string, v any) error {
	b, err := l.readFile(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", name, err)
	}
	return nil
}

// spool is an archive unpacked into a temporary directory of the store:
// archives list their files in any order (manifest.json often last), so
// they are read from disk, never from memory. Only regular files are
// written; links are remembered and followed by lookup, so no entry can
// reach outside the directory.
type spool struct {
	dir   string
	files map[string]spooled
	links map[string]string // entry -> target entry
}

// spooled is one regular file of the archive.
type spooled struct {
	path   string
	size   int64
	digest digest.Digest // sha256 of the content
}

func newSpool(ctx context.Context, s *store.Store, r io.Reader) (*spool, error) {
	dir, err := os.MkdirTemp(s.TmpDir(), "load-*")
	if err != nil {
		return nil, err
	}
	sp := &spool{dir: dir, files: map[string]spooled{}, links: map[string]string{}}
	// A gzipped archive (or a lying tar header) may hold far more than
	// the disk: every file is charged its size before it is written, so
	// a bomb fails the load with the filesystem's reserve intact.
	d, err := os.Open(dir)
	if err != nil {
		return sp, err
	}
	defer d.Close()
	space, err := diskspace.New(int(d.Fd()), s.TmpDir())
	if err != nil {
		return sp, err
	}
	// `docker save | gzip` archives load too.
	rc, err := store.Decompress(r)
	if err != nil {
		return sp, err
	}
	defer rc.Close()
	tr := tar.NewReader(ctxio.Reader(ctx, rc))
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sp, fmt.Errorf("read archive: %w", err)
		}
		name := clean(h.Name)
		if name == "" {
			continue
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if err := space.Take(h.Size); err != nil {
				return sp, fmt.Errorf("read archive %s: %w", h.Name, err)
			}
			n++
			p := filepath.Join(dir, fmt.Sprintf("%d", n))
			f, err := os.Create(p)
			if err != nil {
				return sp, err
			}
			dg := digest.Canonical.Digester()
			size, err := io.Copy(io.MultiWriter(f, dg.Hash()), tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return sp, fmt.Errorf("read archive %s: %w", h.Name, err)
			}
			sp.files[name] = spooled{path: p, size: size, digest: dg.Digest()}
			delete(sp.links, name)
		case tar.TypeSymlink:
			target := h.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			sp.links[name] = clean(target)
			delete(sp.files, name)
		case tar.TypeLink:
			sp.links[name] = clean(h.Linkname)
			delete(sp.files, name)
		}
	}
	return sp, nil
}

// clean makes an archive path relative and free of "..".
func clean(p string) string {
	c := path.Clean("/" + p)
	if c == "/" {
		return ""
	}
	return c[1:]
}

func (sp *spool) has(name string) bool {
	_, err := sp.lookup(name)
	return err == nil
}

// lookup finds the regular file an archive path names, following links.
func (sp *spool) lookup(name string) (spooled, error) {
	p := clean(name)
	for range 40 {
		if f, ok := sp.files[p]; ok {
			return f, nil
		}
		t, ok := sp.links[p]
		if !ok {
			return spooled{}, fmt.Errorf("archive has no file %s: %w", name, store.ErrNotFound)
		}
		p = t
	}
	return spooled{}, fmt.Errorf("archive file %s: too many links: %w", name, store.ErrInvalid)
}

// close removes the spool. An error has no one to go to: a leftover under
// tmp/ costs space only.
func (sp *spool) close() { _ = os.RemoveAll(sp.dir) }
