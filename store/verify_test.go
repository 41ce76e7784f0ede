package store

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/builder-dev/builder/internal/testutil"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// flip changes one byte of the blob d in the middle.
func flip(t *testing.T, s *Store, d digest.Digest) {
	t.Helper()
	b, err := os.ReadFile(s.Content().blobPath(d))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(s.Content().blobPath(d), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Every way of reading a blob finds a changed byte: a small blob read
// whole, a layer read to its end, a layer read only up to its tar's end
// and then drained, and a truncated or grown blob.
func TestReadsVerifyDigest(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, s *Store, d digest.Digest)
	}{
		{"flipped byte", flip},
		{"truncated", func(t *testing.T, s *Store, d digest.Digest) {
			fi, _ := os.Stat(s.Content().blobPath(d))
			os.Truncate(s.Content().blobPath(d), fi.Size()-1)
		}},
		{"grown", func(t *testing.T, s *Store, d digest.Digest) {
			f, _ := os.OpenFile(s.Content().blobPath(d), os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{0})
			f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			cfg, err := s.Content().WriteJSON(ctx, ocispec.MediaTypeImageConfig, map[string]string{"a": strings.Repeat("b", 100)})
			if err != nil {
				t.Fatal(err)
			}
			layer, _, err := s.Content().IngestLayer(ctx, bytes.NewReader(tarOf(t, "f", strings.Repeat("x", 10000))))
			if err != nil {
				t.Fatal(err)
			}
			tc.change(t, s, cfg.Digest)
			tc.change(t, s, layer.Digest)

			var v map[string]string
			if err := s.Content().ReadJSON(ctx, cfg.Digest, &v); !errors.Is(err, ErrDigest) || !strings.Contains(err.Error(), cfg.Digest.String()) {
				t.Errorf("ReadJSON of a changed config: %v", err)
			}
			rc, err := s.Content().OpenLayer(ctx, layer.Digest)
			if err == nil {
				_, err = io.ReadAll(rc)
				rc.Close()
			}
			if !errors.Is(err, ErrDigest) || !strings.Contains(err.Error(), layer.Digest.String()) {
				t.Errorf("reading a changed layer to its end: %v", err)
			}
			// As an unpacker does: the tar, then the rest.
			rc, err = s.Content().OpenLayer(ctx, layer.Digest)
			if err == nil {
				tr := tar.NewReader(rc)
				for err == nil {
					_, err = tr.Next()
				}
				// After the tar's end, or a tar broken by the change.
				if _, derr := io.Copy(io.Discard, rc); derr != nil {
					err = derr
				}
				rc.Close()
			}
			if !errors.Is(err, ErrDigest) {
				t.Errorf("unpacking a changed layer: %v", err)
			}
			bad, err := s.Content().Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(bad) != 2 {
				t.Errorf("Verify = %+v, want both blobs", bad)
			}
		})
	}
}

// Sizes are counted while a layer is written and remembered; a layer
// stored without them (before sizes were kept) is counted once from its
// blob, then remembered.
func TestLayerInfos(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	layer := testutil.Tar(t,
		testutil.TarEntry{Name: "d/", Type: tar.TypeDir},
		testutil.TarEntry{Name: "d/f", Body: string(make([]byte, 1000))},
		testutil.TarEntry{Name: "d/hard", Type: tar.TypeLink, Linkname: "d/f"},
		testutil.TarEntry{Name: "d/sym", Type: tar.TypeSymlink, Linkname: "f"},
		testutil.TarEntry{Name: "d/.wh.gone", Type: tar.TypeChar})
	want := LayerInfo{Size: 1000 + int64(len("f")), TarSize: int64(len(layer))}

	written, _, err := s.Content().IngestLayer(ctx, bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	// Stored as it came, as a store from before sizes were kept has it.
	old, err := s.Content().Ingest(ctx, ocispec.MediaTypeImageLayerGzip, bytes.NewReader(gz(t, append(layer, 0))))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.LayerInfos(ctx, []digest.Digest{written.Digest, old.Digest})
	if err != nil {
		t.Fatal(err)
	}
	if got[written.Digest] != want {
		t.Errorf("written layer: %+v, want %+v", got[written.Digest], want)
	}
	wantOld := want
	wantOld.TarSize++
	if got[old.Digest] != wantOld {
		t.Errorf("old layer: %+v, want %+v", got[old.Digest], wantOld)
	}
	// Remembered: the blobs are not read again.
	os.Remove(s.Content().blobPath(written.Digest))
	os.Remove(s.Content().blobPath(old.Digest))
	again, err := s.LayerInfos(ctx, []digest.Digest{written.Digest, old.Digest})
	if err != nil || again[written.Digest] != want || again[old.Digest] != wantOld {
		t.Errorf("second LayerInfos = %+v, %v", again, err)
	}
}

// A stream that is not a tar is not a layer.
func TestStageLayerRefusesNonTar(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	for _, in := range []string{"", "not a tar archive at all\n", strings.Repeat("x", 2000)} {
		if b, _, err := s.Content().StageLayer(ctx, strings.NewReader(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("StageLayer(%.10q) = %v, want ErrInvalid", in, err)
			if b != nil {
				b.Discard()
			}
		}
	}
	if entries, _ := os.ReadDir(s.TmpDir()); len(entries) != 0 {
		t.Errorf("tmp/ left: %v", entries)
	}
}

// A blob's name holding no regular file (a symlink out of the store, a
// directory, a FIFO) is damage: it is never read through (the symlink's
// target stays unread, the FIFO does not block the open), the blob counts
// as absent, Verify reports it, RemoveBlob removes it, and writing the
// blob again puts the real bytes in its place.
func TestBlobNotRegularFile(t *testing.T) {
	ctx := context.Background()
	outside := filepath.Join(t.TempDir(), "secret")
	secret := []byte(`{"secret":"outside the store"}`)
	if err := os.WriteFile(outside, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		plant func(p string) error
	}{
		// Named by the digest of what it points to: only refusing to
		// follow it keeps the outside file from passing as the blob.
		{"symlink", func(p string) error { return os.Symlink(outside, p) }},
		{"directory", func(p string) error { return os.MkdirAll(filepath.Join(p, "sub"), 0o755) }},
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			d := digest.FromBytes(secret)
			if err := tc.plant(s.Content().blobPath(d)); err != nil {
				t.Fatal(err)
			}
			if s.Content().HasBlob(d) {
				t.Error("HasBlob is true")
			}
			done := make(chan error, 1)
			go func() {
				var v map[string]string
				done <- s.Content().ReadJSON(ctx, d, &v)
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Error("ReadJSON read through it")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ReadJSON blocks") // the FIFO: fails the test rather than hang it
			}
			bad, err := s.Content().Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(bad) != 1 || bad[0].Digest != d || bad[0].Missing {
				t.Errorf("Verify = %+v, want %s bad", bad, d)
			}
			if err := s.Content().RemoveBlob(ctx, d); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(s.Content().blobPath(d)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("RemoveBlob left it: %v", err)
			}
			if err := tc.plant(s.Content().blobPath(d)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Content().WriteJSON(ctx, ocispec.MediaTypeImageConfig, map[string]string{"secret": "outside the store"}); err != nil {
				t.Fatal(err)
			}
			b, err := s.Content().ReadBlob(ctx, d)
			if err != nil || !bytes.Equal(b, secret) {
				t.Errorf("after writing it again: %q %v", b, err)
			}
			if fi, err := os.Lstat(s.Content().blobPath(d)); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("after writing it again: %v %v", fi, err)
			}
			if b, _ := os.ReadFile(outside); !bytes.Equal(b, secret) {
				t.Errorf("the outside file changed: %q", b)
			}
		})
	}
}

// A manifest and config that are each sound but do not make an image
// (a layer that is the config, fewer diff IDs than layers) are found on
// read and by Verify.
func TestVerifyInconsistentImage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(m *ocispec.Manifest, cfg *ocispec.Image)
	}{
		{"layer is config", func(m *ocispec.Manifest, cfg *ocispec.Image) { m.Layers[0] = m.Config }},
		{"diff IDs short", func(m *ocispec.Manifest, cfg *ocispec.Image) { cfg.RootFS.DiffIDs = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			layer, diffID, err := s.Content().IngestLayer(ctx, bytes.NewReader(tarOf(t, "f", "x")))
			if err != nil {
				t.Fatal(err)
			}
			cfg := ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}}}
			m := ocispec.Manifest{Layers: []ocispec.Descriptor{layer}}
			// The config first, for its descriptor; written again
			// after the change (the same blob when unchanged).
			m.Config, err = s.Content().WriteJSON(ctx, ocispec.MediaTypeImageConfig, cfg)
			if err != nil {
				t.Fatal(err)
			}
			tc.change(&m, &cfg)
			if m.Config, err = s.Content().WriteJSON(ctx, ocispec.MediaTypeImageConfig, cfg); err != nil {
				t.Fatal(err)
			}
			m.SchemaVersion = 2
			md, err := s.Content().WriteJSON(ctx, ocispec.MediaTypeImageManifest, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Content().Tag(ctx, "bad:1", md); err != nil {
				t.Fatal(err)
			}
			bad, err := s.Content().Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(bad) != 1 || bad[0].Digest != md.Digest || !slices.Equal(bad[0].Images, []string{"bad:1"}) {
				t.Errorf("Verify = %+v, want the manifest %s bad", bad, md.Digest)
			}
		})
	}
}

// A layer with an entry above its root ("../x", or a hard link to one) can
// never be unpacked: it is refused as it comes in, and counting an old
// one fails too. Absolute names read from the root and stay allowed.
func TestStageLayerRefusesEntriesLeavingRoot(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	hard := func(target string) []byte {
		return testutil.Tar(t, testutil.TarEntry{Name: "hard", Type: tar.TypeLink, Linkname: target})
	}
	for name, layer := range map[string][]byte{
		"dotdot":         tarOf(t, "../../x", "x"),
		"inner dotdot":   tarOf(t, "a/../../x", "x"),
		"hardlink above": hard("../../etc/passwd"),
	} {
		if b, _, err := s.Content().StageLayer(ctx, bytes.NewReader(layer)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "leaves the root") {
			t.Errorf("%s: StageLayer = %v, want refused", name, err)
			if b != nil {
				b.Discard()
			}
		}
		if _, err := CountTar(bytes.NewReader(layer)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: CountTar = %v, want ErrInvalid", name, err)
		}
	}
	for name, layer := range map[string][]byte{
		"absolute":          tarOf(t, "/etc/x", "x"),
		"dotdot inside":     tarOf(t, "a/../x", "x"),
		"absolute hardlink": hard("/etc/passwd"),
	} {
		b, _, err := s.Content().StageLayer(ctx, bytes.NewReader(layer))
		if err != nil {
			t.Errorf("%s: StageLayer = %v", name, err)
			continue
		}
		b.Discard()
	}
}

// endless is a stream that never ends, counting what was read from it.
type endless struct {
	fill byte
	n    int64
}

func (e *endless) Read(p []byte) (int, error) {
	if e.n > 256<<20 {
		return 0, errors.New("read 256 MiB of an endless stream")
	}
	for i := range p {
		p[i] = e.fill
		if e.fill != 0 {
			p[i] = byte(e.n) + byte(i)*e.fill
		}
	}
	e.n += int64(len(p))
	return len(p), nil
}

// An endless stream that is no tar (random bytes), or is an empty tar
// and endless padding (/dev/zero), is refused after a bounded read, not
// taken in until the disk is full.
func TestStageLayerEndlessStream(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	for _, fill := range []byte{0, 7} {
		e := &endless{fill: fill}
		b, _, err := s.Content().StageLayer(ctx, e)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("fill %d: StageLayer = %v, want ErrInvalid", fill, err)
			if b != nil {
				b.Discard()
			}
		}
		if e.n > 64<<20 {
			t.Errorf("fill %d: read %d bytes before refusing", fill, e.n)
		}
	}
}

// An index.json that is no JSON is rebuilt from the manifests among the
// blobs: the images come back untagged; a manifest missing a layer does
// not.
func TestRebuildIndex(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	good := putImage(t, s, "good:1", tarOf(t, "a", "a"))
	broken := putImage(t, s, "broken:1", tarOf(t, "b", "b"))
	m, err := s.Content().readManifest(ctx, broken.Digest)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(s.Content().blobPath(m.Layers[0].Digest))
	os.WriteFile(s.Content().indexPath(), []byte("{garbage"), 0o644)
	if _, err := s.Content().Resolve(ctx, "good:1"); !errors.Is(err, ErrIndexDamaged) {
		t.Fatalf("Resolve over a garbage index: %v", err)
	}
	aside, n, err := s.Content().RebuildIndex(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RebuildIndex = %d, %v", n, err)
	}
	if b, _ := os.ReadFile(aside); string(b) != "{garbage" {
		t.Errorf("the old index is not at %s: %q", aside, b)
	}
	imgs, err := s.Content().Images(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].Manifest.Digest != good.Digest || imgs[0].Name != "" {
		t.Errorf("Images after RebuildIndex = %+v, %v", imgs, err)
	}
}
