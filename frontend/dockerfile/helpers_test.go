package dockerfile

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/builder-dev/builder/solver/graph"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testPlatform is fixed so that results do not depend on the host.
var testPlatform = ocispec.Platform{OS: "linux", Architecture: "amd64"}

// busybox is the config of the conformance suite's base/busybox:1.
func busybox() dockerspec.DockerOCIImage {
	var img dockerspec.DockerOCIImage
	img.OS = "linux"
	img.Architecture = "amd64"
	img.RootFS.Type = "layers"
	img.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	img.Config.Cmd = []string{"sh"}
	img.History = []ocispec.History{{Comment: "Imported from -"}}
	return img
}

// testImages are the images the stub resolver knows.
func testImages() map[string]dockerspec.DockerOCIImage {
	onbuild := busybox()
	onbuild.Config.OnBuild = []string{
		"RUN echo triggered > /triggered",
		"COPY --from=helper /made /from-helper",
		"ENV TRIGGERED=yes",
	}
	onbuild.Config.WorkingDir = "/app"
	onbuild.History = append(onbuild.History, ocispec.History{CreatedBy: "ONBUILD base", EmptyLayer: true})

	healthy := busybox()
	healthy.Config.Healthcheck = &dockerspec.HealthcheckConfig{Test: []string{"CMD-SHELL", "true"}, Retries: 3}
	healthy.Config.User = "nobody"
	healthy.Config.Entrypoint = []string{"/entry"}

	nopath := busybox()
	nopath.Config.Env = []string{"HOME=/root"}

	badTrigger := busybox()
	badTrigger.Config.OnBuild = []string{"NOSUCH instruction"}

	return map[string]dockerspec.DockerOCIImage{
		"base/busybox:1":  busybox(),
		"busybox":         busybox(),
		"onbuild/base":    onbuild,
		"healthy/base":    healthy,
		"nopath/base":     nopath,
		"badtrigger/base": badTrigger,
	}
}

// stubResolver resolves testImages and records what it was asked.
type stubResolver struct{ asked []string }

func (r *stubResolver) resolve(_ context.Context, ref string) (dockerspec.DockerOCIImage, error) {
	r.asked = append(r.asked, ref)
	img, ok := testImages()[ref]
	if !ok {
		return img, fmt.Errorf("image %s: not found", ref)
	}
	return img, nil
}

func testOptions(r *stubResolver) Options {
	return Options{File: "Dockerfile", Platform: testPlatform, ResolveImage: r.resolve}
}

// readArgs reads a case's args file: lines of docker build flags.
func readArgs(t *testing.T, dir string, opts *Options) {
	t.Helper()
	dt, err := os.ReadFile(filepath.Join(dir, "args"))
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(dt)), "\n") {
		flag, value, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch flag {
		case "--build-arg":
			if opts.BuildArgs == nil {
				opts.BuildArgs = map[string]string{}
			}
			k, v, _ := strings.Cut(value, "=")
			opts.BuildArgs[k] = v
		case "--target":
			opts.Target = value
		case "--network":
			opts.Network = value
		default:
			t.Fatalf("args: unknown flag %q", flag)
		}
	}
}

// dump renders a conversion as readable text for the golden files.
func dump(r *result, warnings []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "target: %d\n", r.def.Target)
	for i, st := range r.def.Stages {
		fmt.Fprintf(&b, "\nstage %d", st.Index)
		if st.Name != "" {
			fmt.Fprintf(&b, " %q", st.Name)
		}
		switch {
		case st.From.Scratch:
			b.WriteString(" FROM scratch")
		case st.From.Image != "":
			fmt.Fprintf(&b, " FROM image %s", st.From.Image)
		default:
			fmt.Fprintf(&b, " FROM stage %d", st.From.Stage)
		}
		if r.configs[i] == nil {
			b.WriteString(" (not needed)\n")
			continue
		}
		fmt.Fprintf(&b, "\n  base: %s/%s, %d history entries\n", st.Base.OS, st.Base.Architecture, len(st.Base.History))
		for _, step := range st.Steps {
			fmt.Fprintf(&b, "  %s %s\n", step.Location, step.Text)
			layer := "layer"
			if step.History.EmptyLayer {
				layer = "empty"
			}
			fmt.Fprintf(&b, "    history: %s %q\n", layer, step.History.CreatedBy)
			switch op := step.Op.(type) {
			case *graph.Exec:
				fmt.Fprintf(&b, "    exec: %s\n", js(op.Args))
				fmt.Fprintf(&b, "      env: %s\n", js(op.Env))
				fmt.Fprintf(&b, "      cwd: %s  user: %q  network: %s\n", op.Cwd, op.User, op.Network)
			case *graph.Copy:
				from := "context"
				switch {
				case op.From.Stage >= 0:
					from = fmt.Sprintf("stage %d", op.From.Stage)
				case op.From.Image != "":
					from = "image " + op.From.Image
				}
				fmt.Fprintf(&b, "    copy from %s: %s -> %s", from, js(op.Sources), op.Dest)
				if op.Chown != "" {
					fmt.Fprintf(&b, "  chown=%s", op.Chown)
				}
				if op.Chmod != "" {
					fmt.Fprintf(&b, "  chmod=%s", op.Chmod)
				}
				if op.Add {
					b.WriteString("  add")
				}
				b.WriteString("\n")
			case *graph.Mkdir:
				fmt.Fprintf(&b, "    mkdir: %s  user: %q\n", op.Path, op.User)
			}
		}
		img := *r.configs[i]
		fmt.Fprintf(&b, "  config (%d history entries):\n", len(img.History))
		img.History = nil
		var out strings.Builder
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("    ", "  ")
		_ = enc.Encode(img)
		b.WriteString("    " + out.String())
	}
	if len(warnings) > 0 {
		b.WriteString("\nwarnings:\n")
		for _, w := range warnings {
			b.WriteString("  " + w + "\n")
		}
	}
	return b.String()
}

// js renders v as compact JSON without HTML escaping, for reading.
func js(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}

// canonicalConfig is the conformance suite's canonical config
// (normalize.py canonical_config) of an image.
func canonicalConfig(t *testing.T, img dockerspec.DockerOCIImage) map[string]any {
	t.Helper()
	dt, err := json.Marshal(img)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(dt, &m); err != nil {
		t.Fatal(err)
	}
	c, _ := m["config"].(map[string]any)
	if c == nil {
		c = map[string]any{}
	}
	nullify := func(v any) any {
		switch v := v.(type) {
		case nil:
			return nil
		case string:
			if v == "" {
				return nil
			}
		case []any:
			if len(v) == 0 {
				return nil
			}
		case map[string]any:
			if len(v) == 0 {
				return nil
			}
		}
		return v
	}
	sortedKeys := func(v any) any {
		mm, _ := v.(map[string]any)
		var keys []any
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range mm {
				if !yield(k) {
					return
				}
			}
		}) {
			keys = append(keys, k)
		}
		return nullify(keys)
	}
	var hc any
	if h, ok := c["Healthcheck"].(map[string]any); ok && len(h) > 0 {
		f := map[string]any{}
		for k, v := range h {
			if n, ok := v.(float64); ok && n == 0 {
				continue
			}
			if nullify(v) != nil {
				f[k] = v
			}
		}
		hc = nullify(f)
	}
	return map[string]any{
		"Env":          nullify(c["Env"]),
		"Cmd":          nullify(c["Cmd"]),
		"Entrypoint":   nullify(c["Entrypoint"]),
		"WorkingDir":   nullify(c["WorkingDir"]),
		"User":         nullify(c["User"]),
		"ExposedPorts": sortedKeys(c["ExposedPorts"]),
		"Labels":       nullify(c["Labels"]),
		"Volumes":      sortedKeys(c["Volumes"]),
		"StopSignal":   nullify(c["StopSignal"]),
		"Healthcheck":  hc,
		"Shell":        nullify(c["Shell"]),
		"OnBuild":      nullify(c["OnBuild"]),
		"author":       nullify(m["author"]),
		"os":           m["os"],
		"architecture": m["architecture"],
	}
}

var historyKeywords = map[string]bool{
	"ADD": true, "ARG": true, "CMD": true, "COPY": true, "ENTRYPOINT": true, "ENV": true,
	"EXPOSE": true, "FROM": true, "HEALTHCHECK": true, "LABEL": true, "MAINTAINER": true,
	"ONBUILD": true, "RUN": true, "SHELL": true, "STOPSIGNAL": true, "USER": true,
	"VOLUME": true, "WORKDIR": true,
}

// normalizeCreatedBy is normalize.py's normalize_created_by: the
// instruction keyword and the text the suite compares softly.
func normalizeCreatedBy(cb string) (string, string) {
	s := strings.TrimSpace(cb)
	if s == "" {
		return "(none)", ""
	}
	s = strings.TrimRight(strings.TrimSuffix(s, "# buildkit"), " \t\n")
	s = strings.TrimPrefix(s, "/bin/sh -c #(nop) ")
	if rest, ok := strings.CutPrefix(s, "RUN "); ok {
		s = strings.TrimLeft(rest, " \t")
	}
	if strings.HasPrefix(s, "|") {
		var n int
		if _, err := fmt.Sscanf(s, "|%d ", &n); err == nil {
			words := strings.Split(s, " ")
			if 1+n <= len(words) {
				return "RUN", strings.Join(words[1+n:], " ")
			}
			return "RUN", ""
		}
	}
	first, rest, _ := strings.Cut(s, " ")
	if historyKeywords[first] {
		return first, strings.TrimSpace(rest)
	}
	return "RUN", s
}

func escHistory(s string) string {
	return strings.NewReplacer("\\", "\\\\", "\t", "\\t", "\n", "\\n", "\r", "\\r").Replace(s)
}

// historyLines renders history as the suite's history.txt and
// history-full.txt do.
func historyLines(h []ocispec.History) (strict, full string) {
	var s, f strings.Builder
	for _, e := range h {
		kw, text := normalizeCreatedBy(e.CreatedBy)
		layer := "layer"
		if e.EmptyLayer {
			layer = "empty"
		}
		fmt.Fprintf(&s, "%s %s\n", kw, layer)
		fmt.Fprintf(&f, "%s %s\t%s\n", kw, layer, escHistory(text))
	}
	return s.String(), f.String()
}
