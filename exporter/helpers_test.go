package exporter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/internal/testutil"
)

// skopeoConfig returns the config skopeo reads from ref.
func skopeoConfig(t *testing.T, ref string) ocispec.Image {
	t.Helper()
	out := testutil.Run(t, testutil.LookTool(t, "skopeo"), "inspect", "--config", ref)
	var cfg ocispec.Image
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("skopeo inspect --config %s: %v\n%s", ref, err, out)
	}
	return cfg
}

func mkdirWrite(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

// blobPath is where an OCI layout keeps the blob d.
func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}
