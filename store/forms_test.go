package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/crashpoint"
	"github.com/builder-dev/builder/internal/testutil"
)

// bigTar is a layer tar of several pgzip blocks (1 MiB each), so that a
// compression runs blocks in parallel.
func bigTar(t *testing.T) []byte {
	t.Helper()
	var entries []testutil.TarEntry
	for i := range 6 {
		body := strings.Repeat(string(rune('a'+i))+" some text that compresses\n", 20000)
		entries = append(entries, testutil.TarEntry{Name: "f" + string(rune('0'+i)), Body: body})
	}
	return testutil.Tar(t, entries...)
}

// ingestPlain stores the tar l as an uncompressed layer blob, as a load of
// a docker archive does.
func ingestPlain(t *testing.T, s *Store, l []byte) ocispec.Descriptor {
	t.Helper()
	d, err := s.Content().Ingest(context.Background(), ocispec.MediaTypeImageLayer, bytes.NewReader(l))
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest != digest.FromBytes(l) {
		t.Fatalf("uncompressed blob %s is not its tar's digest", d.Digest)
	}
	return d
}

func blobCount(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.Content().Walk(context.Background(), func(digest.Digest, int64) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// An uncompressed layer is gzipped once: the gzip blob is the one
// IngestLayer writes for the same tar, its LayerInfo is the tar's, and it
// is remembered, so the next call neither reads the layer (here removed)
// nor writes a blob.
func TestCompressedLayerMadeOnce(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	l := bigTar(t)
	plain := ingestPlain(t, s, l)
	diffID := plain.Digest
	plain.Annotations = map[string]string{"a": "b"}

	gz, err := s.Content().CompressedLayer(ctx, plain, diffID)
	if err != nil {
		t.Fatal(err)
	}
	if gz.MediaType != ocispec.MediaTypeImageLayerGzip || gz.Digest == diffID || gz.Annotations["a"] != "b" {
		t.Errorf("compressed = %+v", gz)
	}
	other := openStore(t)
	want, _, err := other.Content().IngestLayer(ctx, bytes.NewReader(l))
	if err != nil {
		t.Fatal(err)
	}
	if gz.Digest != want.Digest || gz.Size != want.Size {
		t.Errorf("compressed %s (%d bytes), IngestLayer writes %s (%d)", gz.Digest, gz.Size, want.Digest, want.Size)
	}
	rc, err := s.Content().OpenLayer(ctx, gz.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, l) {
		t.Errorf("gzip blob reads back %d bytes, %v", len(got), err)
	}
	infos, err := s.LayerInfos(ctx, []digest.Digest{gz.Digest})
	if wantInfo, _ := CountTar(bytes.NewReader(l)); err != nil || infos[gz.Digest] != wantInfo {
		t.Errorf("LayerInfo of the gzip form = %+v, %v; want %+v", infos[gz.Digest], err, wantInfo)
	}
	forms, err := s.Content().GzipForms(ctx)
	if err != nil || len(forms) != 1 || forms[diffID] != gz.Digest {
		t.Errorf("GzipForms = %v, %v", forms, err)
	}

	n := blobCount(t, s)
	if err := s.Content().RemoveBlob(ctx, diffID); err != nil {
		t.Fatal(err)
	}
	again, err := s.Content().CompressedLayer(ctx, plain, diffID)
	if err != nil || again.Digest != gz.Digest {
		t.Errorf("second CompressedLayer = %+v, %v; want the remembered %s", again, err, gz.Digest)
	}
	if got := blobCount(t, s); got != n-1 {
		t.Errorf("%d blobs after the second call, want %d", got, n-1)
	}
	if entries := tmpEntries(t, s); len(entries) != 0 {
		t.Errorf("tmp/ left: %v", entries)
	}
}

// A remembered gzip form that is gone (pruned, removed by store verify)
// or damaged in size is made again, and the memory follows the new blob.
func TestCompressedLayerRemadeWhenGone(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	plain := ingestPlain(t, s, bigTar(t))
	gz, err := s.Content().CompressedLayer(ctx, plain, plain.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for _, damage := range []func(){
		func() {
			if err := s.Content().RemoveBlob(ctx, gz.Digest); err != nil {
				t.Fatal(err)
			}
		},
		func() {
			if err := os.Truncate(s.Content().blobPath(gz.Digest), gz.Size/2); err != nil {
				t.Fatal(err)
			}
		},
	} {
		damage()
		if _, ok, err := s.Content().gzipForm(ctx, plain.Digest); ok || err != nil {
			t.Errorf("a damaged gzip form is offered: %v", err)
		}
		// Truncated, the name holds the wrong bytes: remove it as
		// store verify --remove would, so the new one can take it.
		_ = s.Content().RemoveBlob(ctx, gz.Digest)
		again, err := s.Content().CompressedLayer(ctx, plain, plain.Digest)
		if err != nil || again.Digest != gz.Digest {
			t.Fatalf("CompressedLayer after damage = %+v, %v", again, err)
		}
		if err := s.Content().checkBlob(ctx, gz.Digest); err != nil {
			t.Errorf("remade blob: %v", err)
		}
	}
}

// A compressed layer is its own compressed form; an uncompressed one
// whose digest is not the diff ID given is refused; a damaged layer is
// never compressed into the store.
func TestCompressedLayerEdges(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	l := tarOf(t, "a", "a")
	gzDesc, diffID, err := s.Content().IngestLayer(ctx, bytes.NewReader(l))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []ocispec.Descriptor{gzDesc, {MediaType: ocispec.MediaTypeImageLayerZstd, Digest: gzDesc.Digest, Size: 1}} {
		if got, err := s.Content().CompressedLayer(ctx, d, diffID); err != nil || got.Digest != d.Digest || got.MediaType != d.MediaType {
			t.Errorf("CompressedLayer(%s) = %+v, %v; want itself", d.MediaType, got, err)
		}
	}

	plain := ingestPlain(t, s, bigTar(t))
	if _, err := s.Content().CompressedLayer(ctx, plain, diffID); !errors.Is(err, ErrInvalid) {
		t.Errorf("CompressedLayer with another diff ID = %v, want ErrInvalid", err)
	}
	n := blobCount(t, s)
	flip(t, s, plain.Digest)
	if _, err := s.Content().CompressedLayer(ctx, plain, plain.Digest); !errors.Is(err, ErrDigest) {
		t.Errorf("CompressedLayer of a damaged blob = %v, want ErrDigest", err)
	}
	if got := blobCount(t, s); got != n {
		t.Errorf("%d blobs after compressing a damaged layer, want %d", got, n)
	}
	if forms, _ := s.Content().GzipForms(ctx); forms[plain.Digest] != "" {
		t.Error("a gzip form of a damaged layer is remembered")
	}
}

// Callers at once get one compression.
func TestCompressedLayerConcurrent(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	plain := ingestPlain(t, s, bigTar(t))
	n := blobCount(t, s)
	var wg sync.WaitGroup
	got := make([]digest.Digest, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := s.Content().CompressedLayer(ctx, plain, plain.Digest)
			if err != nil {
				t.Error(err)
			}
			got[i] = d.Digest
		}()
	}
	wg.Wait()
	for _, d := range got {
		if d != got[0] {
			t.Errorf("digests %v", got)
		}
	}
	if c := blobCount(t, s); c != n+1 {
		t.Errorf("%d blobs, want %d", c, n+1)
	}
}

// A gzip form is in the store only once it is whole: a process killed
// after writing it but before naming it leaves no blob and no memory of
// it, and the next call makes it.
func TestCompressedLayerKilled(t *testing.T) {
	if dir := os.Getenv("LAYERFORM_CRASH_ROOT"); dir != "" {
		// The child: compress until the crash point kills us.
		s, err := Open(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		plain := ingestPlain(t, s, bigTar(t))
		s.Content().CompressedLayer(context.Background(), plain, plain.Digest)
		t.Fatal("not killed")
	}
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCompressedLayerKilled$", "-test.count=1")
	// The uncompressed blob is committed first: the second commit is the
	// gzip form's.
	cmd.Env = append(os.Environ(), "LAYERFORM_CRASH_ROOT="+root, crashpoint.EnvVar+"=store.blob.staged@2")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("child: %v\n%s", err, out)
	}
	ctx := context.Background()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	plainDigest := digest.FromBytes(bigTar(t))
	if n := blobCount(t, s); n != 1 || !s.Content().HasBlob(plainDigest) {
		t.Errorf("%d blobs after the kill, want only the uncompressed layer", n)
	}
	if forms, err := s.Content().GzipForms(ctx); err != nil || len(forms) != 0 {
		t.Errorf("GzipForms after the kill = %v, %v", forms, err)
	}
	plain := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: plainDigest, Size: int64(len(bigTar(t)))}
	gz, err := s.Content().CompressedLayer(ctx, plain, plainDigest)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Content().checkBlob(ctx, gz.Digest); err != nil {
		t.Error(err)
	}
}

// CompressedImage keeps an image whose layers are compressed as it is, and
// gives one with uncompressed layers a manifest over their gzip forms and
// the same config (the same image ID), without storing it.
func TestCompressedImage(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	gzImage := putImage(t, s, "gz", tarOf(t, "a", "a"))
	md, raw, err := s.Content().CompressedImage(ctx, gzImage)
	stored, _ := s.Content().ReadBlob(ctx, gzImage.Digest)
	if err != nil || md.Digest != gzImage.Digest || !bytes.Equal(raw, stored) {
		t.Errorf("CompressedImage of a gzip image = %+v, %v", md, err)
	}

	layers := [][]byte{bigTar(t), tarOf(t, "b", "b")}
	var descs []ocispec.Descriptor
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	cfg.RootFS.Type = "layers"
	for _, l := range layers {
		descs = append(descs, ingestPlain(t, s, l))
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
	}
	m, cdesc, err := s.Content().PutImage(ctx, cfg, descs)
	if err != nil {
		t.Fatal(err)
	}
	n := blobCount(t, s)
	md, raw, err = s.Content().CompressedImage(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if md.Digest == m.Digest || md.Digest != digest.FromBytes(raw) || md.Size != int64(len(raw)) || md.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("descriptor %+v of %d bytes", md, len(raw))
	}
	var out ocispec.Manifest
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out.Config.Digest != cdesc.Digest || len(out.Layers) != 2 {
		t.Fatalf("manifest %s", raw)
	}
	for i, l := range out.Layers {
		if l.MediaType != ocispec.MediaTypeImageLayerGzip || !s.Content().HasBlob(l.Digest) {
			t.Errorf("layer %d: %+v", i, l)
		}
	}
	if got := blobCount(t, s); got != n+2 {
		t.Errorf("%d blobs, want %d: the two gzip forms and no manifest", got, n+2)
	}
	again, raw2, err := s.Content().CompressedImage(ctx, m)
	if err != nil || again.Digest != md.Digest || !bytes.Equal(raw, raw2) || blobCount(t, s) != n+2 {
		t.Errorf("second CompressedImage = %+v, %v", again, err)
	}
}

// OpenUncompressed reads a compressed layer from an uncompressed blob of
// its diff ID when there is one (here the gzip blob is damaged, so
// reading it would fail), else decompresses it.
func TestOpenUncompressed(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	l := bigTar(t)
	gzDesc, diffID, err := s.Content().IngestLayer(ctx, bytes.NewReader(l))
	if err != nil {
		t.Fatal(err)
	}
	read := func() ([]byte, error) {
		rc, err := s.Content().OpenUncompressed(ctx, gzDesc, diffID)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	if got, err := read(); err != nil || !bytes.Equal(got, l) {
		t.Errorf("decompressed: %d bytes, %v", len(got), err)
	}
	ingestPlain(t, s, l)
	flip(t, s, gzDesc.Digest)
	if got, err := read(); err != nil || !bytes.Equal(got, l) {
		t.Errorf("from the uncompressed blob: %d bytes, %v", len(got), err)
	}
}

// StageFile takes a file of tmp/ as the blob, renaming it into place; it
// refuses a file elsewhere or of another size.
func TestStageFile(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	write := func(dir, body string) string {
		t.Helper()
		p := filepath.Join(dir, "spooled")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString("spooled"), Size: 7}
	if _, err := s.Content().StageFile(write(t.TempDir(), "spooled"), desc); !errors.Is(err, ErrInvalid) {
		t.Errorf("StageFile outside tmp/ = %v, want ErrInvalid", err)
	}
	spool, err := os.MkdirTemp(s.TmpDir(), "load-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Content().StageFile(write(spool, "spooled!"), desc); !errors.Is(err, ErrInvalid) {
		t.Errorf("StageFile of another size = %v, want ErrInvalid", err)
	}
	p := write(spool, "spooled")
	b, err := s.Content().StageFile(p, desc)
	if err != nil {
		t.Fatal(err)
	}
	if s.Content().HasBlob(desc.Digest) {
		t.Error("blob present before its commit")
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("the spooled file is still there: %v", err)
	}
	fi, err := os.Stat(s.Content().blobPath(desc.Digest))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("blob: %v, %v", fi, err)
	}
	if got, err := s.Content().ReadBlob(ctx, desc.Digest); err != nil || string(got) != "spooled" {
		t.Errorf("blob = %q, %v", got, err)
	}
	// Discarded, the file goes.
	p = write(spool, "spooled")
	if b, err = s.Content().StageFile(p, desc); err != nil {
		t.Fatal(err)
	}
	b.Discard()
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("a discarded file is still there: %v", err)
	}
}

// CountTarFile counts as CountTar does, seeking over the contents, and
// refuses what is no tar.
func TestCountTarFile(t *testing.T) {
	l := bigTar(t)
	padded := append(append([]byte{}, l...), make([]byte, maxTrailing+1)...)
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"tar", l, true},
		{"empty", nil, false},
		{"no tar", []byte(strings.Repeat("x", 2048)), false},
		{"truncated", l[:len(l)/2], false},
		{"endless padding", padded, false},
		{"escaping", testutil.Tar(t, testutil.TarEntry{Name: "../x", Body: "x"}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "l")
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := CountTarFile(f)
			if !tc.ok {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("CountTarFile = %+v, %v; want ErrInvalid", got, err)
				}
				return
			}
			want, werr := CountTar(bytes.NewReader(tc.data))
			if err != nil || werr != nil || got != want {
				t.Errorf("CountTarFile = %+v, %v; CountTar %+v, %v", got, err, want, werr)
			}
		})
	}
}
