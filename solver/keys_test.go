package solver

import (
	"encoding/json"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/solver/graph"
)

// Cache keys are on users' disks: the same step must keep the same key
// across versions of the builder, or every cache is lost. These are the
// keys of a scratch stage with a RUN, then a COPY --from reading it, as
// this builder has always computed them.
func TestKeyBytesAreStable(t *testing.T) {
	base := cacheKey("", "scratch", nil, "")
	op, err := json.Marshal(&graph.Exec{Args: []string{"/bin/sh", "-c", "true"}, Env: []string{"A=b"}, Cwd: "/", Network: "default"})
	if err != nil {
		t.Fatal(err)
	}
	run := cacheKey(base, "exec", json.RawMessage(op), "")
	cp := cacheKey(run, "copy", json.RawMessage(`{"From":{"Context":false,"Stage":0,"Image":""}}`), run)
	for _, tc := range []struct {
		name      string
		got, want digest.Digest
	}{
		{"scratch", base, "sha256:64416635fce4cb2691e54870bd803b5d664b1b26c8d4c74d18af1dc3bb7046e4"},
		{"exec", run, "sha256:546267c0019bc2d1647eed3e39527ac472b9acdea0d8a72742cbbe530c13a2f6"},
		{"copy", cp, "sha256:efd0fcc10b6848ccc874d151789ae9f5a6ee6dc1ecbb0ab80d6a70695d3c282b"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s key = %s, want %s", tc.name, tc.got, tc.want)
		}
	}
}
