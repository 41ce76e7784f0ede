package container

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/snapshot/archive"
)

// CommitOptions say what commit writes besides the container's changes.
type CommitOptions struct {
	// Changes are Dockerfile instructions applied to the config
	// (ApplyChanges).
	Changes []string
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
// as Docker commits them) with opts.Changes applied, and a history entry.
// It returns the new image's manifest and ID. The container is left as
// it is, running or not; a running one is not paused, so a file it
// writes meanwhile may be caught half-written.
func (r *Runtime) Commit(ctx context.Context, c *Container, opts CommitOptions) (ocispec.Descriptor, digest.Digest, error) {
	var img dockerspec.DockerOCIImage
	if err := r.Store.ReadJSON(ctx, c.Image.ID, &img); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("commit %s: read image config: %w", c.Name, err)
	}
	img.Config = imageConfig(img.Config, c)
	if err := ApplyChanges(&img.Config, opts.Changes); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("commit %s: %w", c.Name, err)
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
	layer, diffID, err := r.Store.IngestLayer(ctx, pr)
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
	mdesc, cdesc, err := r.Store.PutImage(ctx, img, layers)
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("commit %s: %w", c.Name, err)
	}
	if opts.Ref != "" {
		if err := r.Store.Tag(ctx, opts.Ref, mdesc); err != nil {
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

// ApplyChanges applies Dockerfile instructions (commit's and import's
// --change) to cfg: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER,
// VOLUME, WORKDIR and STOPSIGNAL, as Docker does. Values are taken as
// written: no variable is expanded.
func ApplyChanges(cfg *dockerspec.DockerOCIImageConfig, changes []string) error {
	for _, ch := range changes {
		if err := applyChange(cfg, ch); err != nil {
			return fmt.Errorf("invalid change %q: %w", ch, err)
		}
	}
	return nil
}

func applyChange(cfg *dockerspec.DockerOCIImageConfig, change string) error {
	res, err := parser.Parse(strings.NewReader(change))
	if err != nil {
		return err
	}
	if len(res.AST.Children) != 1 {
		return fmt.Errorf("want one instruction, got %d", len(res.AST.Children))
	}
	node := res.AST.Children[0]
	ins, err := instructions.ParseInstruction(node)
	if err != nil {
		return err
	}
	// Words are expanded against the config's environment as it stands,
	// as Docker's commit does (it runs the instructions through its
	// builder): quotes are removed and $VARS replaced.
	lex := shell.NewLex(res.EscapeToken)
	env := envGetter(cfg.Env)
	expand := func(word string) (string, error) {
		w, _, err := lex.ProcessWord(word, env)
		return w, err
	}
	if ex, ok := ins.(interface {
		Expand(instructions.SingleWordExpander) error
	}); ok {
		if err := ex.Expand(expand); err != nil {
			return err
		}
	}
	shell := func(args []string, prepend bool) []string {
		if !prepend {
			return append([]string(nil), args...)
		}
		sh := cfg.Shell
		if len(sh) == 0 {
			sh = []string{"/bin/sh", "-c"}
		}
		return append(append([]string(nil), sh...), strings.Join(args, " "))
	}
	switch c := ins.(type) {
	case *instructions.CmdCommand:
		cfg.Cmd = shell(c.CmdLine, c.PrependShell)
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = shell(c.CmdLine, c.PrependShell)
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = MergeEnv(cfg.Env, []string{kv.Key + "=" + kv.Value}, nil)
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		var words []string
		for _, p := range c.Ports {
			ws, err := lex.ProcessWords(p, env)
			if err != nil {
				return err
			}
			words = append(words, ws...)
		}
		for _, p := range words {
			ports, err := exposedPorts(p)
			if err != nil {
				return err
			}
			for _, port := range ports {
				cfg.ExposedPorts[port] = struct{}{}
			}
		}
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return fmt.Errorf("VOLUME cannot be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.WorkdirCommand:
		wd := c.Path
		if !path.IsAbs(wd) {
			wd = path.Join("/", cfg.WorkingDir, wd)
		}
		cfg.WorkingDir = path.Clean(wd)
	case *instructions.StopSignalCommand:
		if _, err := ParseSignal(c.Signal); err != nil {
			return err
		}
		cfg.StopSignal = c.Signal
	default:
		return fmt.Errorf("%s is not allowed here (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL)", strings.ToUpper(node.Value))
	}
	return nil
}

// envGetter is a KEY=VALUE list as the shell lexer reads variables.
type envGetter []string

func (e envGetter) Get(key string) (string, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(e[i], "="); k == key {
			return v, true
		}
	}
	return "", false
}

func (e envGetter) Keys() []string {
	keys := make([]string, 0, len(e))
	for _, kv := range e {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	return keys
}

// exposedPorts expands an EXPOSE argument (80, 80/udp, 8000-8002/tcp) to
// the config's "port/proto" keys.
func exposedPorts(spec string) ([]string, error) {
	ports, proto, _ := strings.Cut(spec, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("invalid proto %q in EXPOSE %s", proto, spec)
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	first, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q in EXPOSE %s", lo, spec)
	}
	last := first
	if isRange {
		if last, err = strconv.ParseUint(hi, 10, 16); err != nil || last < first {
			return nil, fmt.Errorf("invalid port range %q in EXPOSE %s", ports, spec)
		}
	}
	var out []string
	for p := first; p <= last; p++ {
		out = append(out, strconv.FormatUint(p, 10)+"/"+proto)
	}
	return out, nil
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
