package store

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestDecompress(t *testing.T) {
	layer := tarOf(t, "a", "content")
	zw, _ := zstd.NewWriter(nil)
	zst := zw.EncodeAll(layer, nil)
	for _, tc := range []struct {
		name string
		data []byte
		want Compression
	}{
		{"plain", layer, Uncompressed},
		{"gzip", gz(t, layer), Gzip},
		{"zstd", zst, Zstd},
		{"empty", nil, Uncompressed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := DetectCompression(bytes.NewReader(tc.data))
			if err != nil || c != tc.want {
				t.Errorf("DetectCompression = %v, %v; want %v", c, err, tc.want)
			}
			rc, err := Decompress(bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if tc.data != nil && !bytes.Equal(got, layer) {
				t.Errorf("decompressed %d bytes, want the layer", len(got))
			}
		})
	}
}

func TestIngestLayer(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	// Bigger than one pgzip block, so that several run in parallel.
	var layer []byte
	for i := 0; len(layer) < 3<<20; i++ {
		layer = append(layer, tarOf(t, "f", string(rune('a'+i%26))+string(make([]byte, 4096)))...)
	}
	desc, diffID, err := s.Content().IngestLayer(ctx, bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	if diffID != digest.FromBytes(layer) || desc.MediaType != ocispec.MediaTypeImageLayerGzip || !s.Content().HasBlob(desc.Digest) {
		t.Errorf("IngestLayer = %+v, %s", desc, diffID)
	}
	// The same input gives the same blob: layers are reproducible.
	again, _, err := s.Content().IngestLayer(ctx, bytes.NewReader(layer))
	if err != nil || again.Digest != desc.Digest {
		t.Errorf("second IngestLayer = %s, %v; want %s", again.Digest, err, desc.Digest)
	}
	rc, err := s.Content().OpenLayer(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, layer) {
		t.Error("OpenLayer does not give the layer back")
	}
	// A plain tar blob opens as it is.
	plainDesc, err := s.Content().Ingest(ctx, ocispec.MediaTypeImageLayer, bytes.NewReader(layer[:1024]))
	if err != nil {
		t.Fatal(err)
	}
	rc, err = s.Content().OpenLayer(ctx, plainDesc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, layer[:1024]) {
		t.Error("OpenLayer of a plain tar")
	}
	// A failing reader fails the ingest and leaves nothing behind.
	if _, _, err := s.Content().IngestLayer(ctx, io.MultiReader(bytes.NewReader(layer[:100]), errReader{})); err == nil {
		t.Error("IngestLayer of a failing reader succeeded")
	}
	if entries, _ := os.ReadDir(s.TmpDir()); len(entries) != 0 {
		t.Errorf("tmp/ left: %v", entries)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
