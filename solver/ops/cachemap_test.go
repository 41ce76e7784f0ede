package ops_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/graph"
	"github.com/builder-dev/builder/solver/ops"
	"github.com/builder-dev/builder/store"
	digest "github.com/opencontainers/go-digest"
)

// What each op's cache key covers, without root: the kind, the graph op's
// JSON, and what it reads. These are the inputs of keys already on users'
// disks (see solver's TestKeyBytesAreStable), so they must not drift.
func TestCacheMaps(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"a.txt": "a", "skip.txt": "s"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := ops.New(ops.Config{Store: st, ContextDir: dir, Ignore: []string{"skip.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
	stage := solver.Chain{Key: digest.Digest("sha256:" + strings.Repeat("5", 64))}
	for _, tc := range []struct {
		op     graph.Op
		inputs []solver.Chain
		kind   string
		input  string // "" none, "chain" the input's key, "digest" any
		files  string // the listed files, joined by ","
	}{
		{op: &graph.Exec{Args: []string{"sh", "-c", "true"}, Env: []string{"A=b"}, Cwd: "/", Network: "default"}, kind: "exec"},
		{op: &graph.Mkdir{Path: "/w", User: "1000"}, kind: "mkdir"},
		{op: &graph.Copy{From: graph.CopySource{Stage: 0}, Sources: []string{"/f"}, Dest: "/"}, inputs: []solver.Chain{stage}, kind: "copy", input: "chain"},
		{op: &graph.Copy{From: graph.CopySource{Stage: -1, Image: "img"}, Sources: []string{"/f"}, Dest: "/"}, inputs: []solver.Chain{stage}, kind: "copy", input: "chain"},
		{op: &graph.Copy{From: graph.CopySource{Context: true, Stage: -1}, Sources: []string{"."}, Dest: "/src/"}, kind: "copy", input: "digest", files: ".,a.txt"},
	} {
		op, err := r.ResolveOp(ctx, tc.op)
		if err != nil {
			t.Fatal(err)
		}
		cm, err := op.CacheMap(ctx, tc.inputs)
		if err != nil {
			t.Fatalf("%T: %v", tc.op, err)
		}
		want, _ := json.Marshal(tc.op)
		if cm.Kind != tc.kind || string(cm.Op) != string(want) {
			t.Errorf("%T: kind %q op %s, want %q %s", tc.op, cm.Kind, cm.Op, tc.kind, want)
		}
		switch {
		case tc.input == "" && cm.Input != "",
			tc.input == "chain" && cm.Input != stage.Key,
			tc.input == "digest" && cm.Input.Validate() != nil:
			t.Errorf("%T: input %q, want %s", tc.op, cm.Input, tc.input)
		}
		var files []string
		if cm.Files != nil {
			for _, f := range cm.Files() {
				files = append(files, f.Path)
			}
		}
		if got := strings.Join(files, ","); got != tc.files {
			t.Errorf("%T: files %q, want %q", tc.op, got, tc.files)
		}
	}
}

func TestContextCopyWithoutContext(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := ops.New(ops.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	op, err := r.ResolveOp(ctx, &graph.Copy{From: graph.CopySource{Context: true, Stage: -1}, Sources: []string{"."}, Dest: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.CacheMap(ctx, nil); err == nil || err.Error() != "no build context" {
		t.Errorf("err = %v", err)
	}
	if _, err := r.ResolveImage(ctx, "missing:1"); err == nil || !strings.HasPrefix(err.Error(), `image "missing:1": `) {
		t.Errorf("missing image: %v", err)
	}
	if _, err := ops.New(ops.Config{Store: st, ContextDir: "rel/dir"}); err == nil {
		t.Error("a relative context directory was accepted")
	}
}
