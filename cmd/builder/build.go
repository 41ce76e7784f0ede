package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	units "github.com/docker/go-units"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/builder-dev/builder/exporter"
	"github.com/builder-dev/builder/frontend/dockerfile"
	"github.com/builder-dev/builder/fsutil"
	"github.com/builder-dev/builder/progress"
	"github.com/builder-dev/builder/runner"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/ops"
	"github.com/builder-dev/builder/source"
)

type buildOptions struct {
	file      string
	tags      []string
	buildArgs []string
	target    string
	noCache   bool
	network   string
	progress  string
	outputs   []string
	iidfile   string
	explain   bool
	quiet     bool
	pidsLimit int64
	limitsSet bool // --pids-limit or --memory given
	memory    string
	// maxParallelism bounds the steps that run at once; 0: no bound.
	maxParallelism int
	pull           bool
	push           bool
	metadataFile   string
}

func newBuildCmd(g *globalOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH",
		Short: "Build an image from a Dockerfile",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.quiet {
				if cmd.Flags().Changed("progress") && o.progress != "quiet" {
					return usageError{fmt.Errorf("--quiet and --progress %s do not go together", o.progress)}
				}
				o.progress = "quiet"
			}
			o.limitsSet = cmd.Flags().Changed("pids-limit") || o.memory != ""
			return runBuild(cmd.Context(), g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", "Dockerfile (default PATH/Dockerfile)")
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "name:tag of the image (repeatable)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "build-time variable KEY=VALUE (repeatable)")
	f.StringVar(&o.target, "target", "", "stage to build")
	f.BoolVar(&o.noCache, "no-cache", false, "do not use the layer cache")
	f.StringVar(&o.network, "network", "default", "network for RUN: default, none or host")
	f.StringVar(&o.progress, "progress", "auto", "progress output: auto, plain, tty, json or quiet")
	f.StringArrayVarP(&o.outputs, "output", "o", nil, "output: type=oci|docker|local|tar,dest=PATH or type=image,name=REF[,push=true] or type=registry,name=REF")
	f.StringVar(&o.iidfile, "iidfile", "", "write the image ID to this file")
	f.BoolVar(&o.explain, "explain", false, "say why steps missed the cache")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the image ID (--progress quiet)")
	f.Int64Var(&o.pidsLimit, "pids-limit", runner.DefaultBuildPidsLimit, "limit the processes of each RUN step (0 or -1: unlimited)")
	f.StringVarP(&o.memory, "memory", "m", "", "memory limit of each RUN step (e.g. 512m, 2g)")
	f.BoolVar(&o.pull, "pull", false, "always fetch the FROM images from their registries (only manifests if unchanged)")
	f.BoolVar(&o.push, "push", false, "push the image to the registry of each -t name")
	f.StringVar(&o.metadataFile, "metadata-file", "", "write the build's result as JSON to this file (as buildx)")
	f.IntVar(&o.maxParallelism, "max-parallelism", 0, "run at most N steps at once (0: no limit)")
	return cmd
}

func parseBuildArgs(list []string) (map[string]string, error) {
	args := map[string]string{}
	for _, a := range list {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, usageError{fmt.Errorf("invalid --build-arg %q", a)}
		}
		if !ok {
			// As docker: KEY alone takes the value from the environment.
			var set bool
			if v, set = os.LookupEnv(k); !set {
				continue
			}
		}
		args[k] = v
	}
	return args, nil
}

// parseBuildLimits reads --memory and --pids-limit into the limits of
// each RUN step; nil when there are none.
func parseBuildLimits(memory string, pids int64) (*runner.Resources, error) {
	var r runner.Resources
	if memory != "" {
		n, err := units.RAMInBytes(memory)
		if err != nil || n < 0 {
			return nil, usageError{fmt.Errorf("invalid --memory %q", memory)}
		}
		if n > 0 && n < 6<<20 {
			return nil, usageError{fmt.Errorf("invalid --memory %q: the minimum memory limit allowed is 6MB", memory)}
		}
		r.Memory = n
	}
	if pids > 0 { // 0 and -1 (Docker's word) are unlimited
		r.Pids = pids
	}
	if r == (runner.Resources{}) {
		return nil, nil
	}
	return &r, nil
}

// readIgnore reads Dockerfile-specific ignore rules (<Dockerfile>.dockerignore)
// first, then the context's .dockerignore, as BuildKit does.
// A Dockerfile from stdin ("" here) has only the context's.
func readIgnore(dockerfile, contextDir string) ([]string, error) {
	paths := []string{filepath.Join(contextDir, ".dockerignore")}
	if dockerfile != "" {
		paths = append([]string{dockerfile + ".dockerignore"}, paths...)
	}
	for _, p := range paths {
		f, err := openRegular(p, ".dockerignore")
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		pats, err := fsutil.ReadIgnoreFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err) // "read .dockerignore: ..."
		}
		return pats, nil
	}
	return nil, nil
}

// resolveContext returns the real directory the context path the user typed
// names: absolute, clean, with symlinks resolved as docker build does. Done
// once here, so that ".", "./", an absolute path and a symlink to the
// directory are one context to everything below (one stat-cache).
func resolveContext(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", usageError{fmt.Errorf("context %q is not a directory: %w", p, err)}
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return "", usageError{fmt.Errorf("context %q is not a directory", p)}
	}
	return abs, nil
}

func runBuild(ctx context.Context, g *globalOptions, o *buildOptions, contextDir string) error {
	// A build's heap is mostly short-lived walk and copy buffers over a
	// small live set: collecting at 5x rather than 2x the live heap saves
	// a no-op rebuild of a large context most of its collections (~10%
	// of its time) and keeps a large cold build's peak well within bounds.
	//
	// The heap is not advised onto transparent huge pages: that halved a
	// no-op rebuild's page faults (20,000-file context: 1,883 -> 1,212)
	// but cost 2 ms of its 37 ms (bench/gobench's BenchmarkHugeheapNoopDigest
	// and the real command, 2026-12-07), so internal/hugeheap was removed.
	debug.SetGCPercent(400)
	switch o.network {
	case "default", "none", "host":
	default:
		return usageError{fmt.Errorf("invalid --network %q: want default, none or host", o.network)}
	}
	limits, err := parseBuildLimits(o.memory, o.pidsLimit)
	if err != nil {
		return err
	}
	pr, err := progress.New(os.Stderr, os.Stdout, o.progress)
	if err != nil {
		return usageError{err}
	}
	// Close draws the final frame (and a failed step's log) before main
	// prints the error.
	defer pr.Close()
	if limits != nil && !o.limitsSet {
		// The default pids limit is a safety net, not something the user
		// asked for: where cgroups cannot be had (a read-only cgroupfs in
		// a container), the build runs without it and says so.
		if err := runner.CheckLimits(*limits); err != nil {
			pr.Warn(fmt.Sprintf("RUN steps run without the default pids limit: %v", err))
			limits = nil
		}
	}
	outputs, err := parseOutputs(o.outputs)
	if err != nil {
		return err
	}
	if o.push {
		if len(o.tags) == 0 {
			return usageError{errors.New("--push needs a -t name to push to")}
		}
		outputs = append(outputs, exporter.Output{Type: "image", Push: true})
	}
	buildArgs, err := parseBuildArgs(o.buildArgs)
	if err != nil {
		return err
	}
	if o.maxParallelism < 0 {
		return usageError{fmt.Errorf("invalid --max-parallelism %d: want 0 (no limit) or more", o.maxParallelism)}
	}
	// Errors name the Dockerfile as the user typed it (Dockerfile,
	// sub/Dockerfile), so it is found from the context path as typed.
	typedContext := contextDir
	contextDir, err = resolveContext(contextDir)
	if err != nil {
		return err
	}
	if err := validateTags(o.tags); err != nil {
		return err
	}
	df, err := readDockerfile(o.file, typedContext, os.Stdin)
	if err != nil {
		return err
	}
	ignore, err := readIgnore(df.path, contextDir)
	if err != nil {
		return err
	}
	e, err := g.open(ctx)
	if err != nil {
		return err
	}
	lock, err := e.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer lock.Release()
	// Quiet: the progress display owns the terminal.
	puller, err := g.puller("", true)
	if err != nil {
		return err
	}
	images := &source.Resolver{Store: e.store, Puller: puller, Pull: o.pull}
	var warnings []string
	def, err := dockerfile.Convert(ctx, df.data, dockerfile.Options{
		File:      df.name,
		BuildArgs: buildArgs,
		Target:    o.target,
		Network:   o.network,
		Platform:  ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Warnings:  &warnings,
		ResolveImage: func(ctx context.Context, ref string) (dockerspec.DockerOCIImage, error) {
			img, err := images.Lookup(ctx, ref)
			return img.Config, err
		},
	})
	// Warnings first: with # check=error=true they explain the error.
	for _, w := range warnings {
		pr.Warn(w)
	}
	if err != nil {
		return err
	}
	start := time.Now()
	absFile, err := df.absPath(contextDir)
	if err != nil {
		return err
	}
	// RUN steps start their containers' inits one ahead.
	pool := &runner.Pool{Resources: limits}
	defer pool.Close()
	res, err := e.solve(ctx, def, ops.Config{Runner: pool, ContextDir: contextDir, Ignore: ignore, Images: images}, pr.Event,
		solver.Options{Dockerfile: absFile, NoCache: o.noCache, Explain: o.explain, MaxParallelism: o.maxParallelism})
	if err != nil {
		return err
	}
	manifest, config, err := exporter.StoreImage(ctx, e.store, res.Config, res.Layers, o.tags)
	if err != nil {
		return err
	}
	id := config.Digest.String()
	if o.iidfile != "" {
		if err := os.WriteFile(o.iidfile, []byte(id), 0o644); err != nil {
			return fmt.Errorf("write iidfile: %w", err)
		}
	}
	meta := map[string]any{
		"containerimage.digest":        manifest.Digest,
		"containerimage.config.digest": config.Digest,
		"containerimage.descriptor":    manifest,
	}
	if len(o.tags) > 0 {
		meta["image.name"] = strings.Join(o.tags, ",")
	}
	for _, out := range outputs {
		if out.Type == "image" || out.Type == "registry" {
			pushed, err := exportImage(ctx, g, e, manifest, out, o.tags)
			if err != nil {
				return err
			}
			if pushed != nil {
				meta = pushed
			}
			continue
		}
		if err := exporter.Export(ctx, e.store, exporter.Built{Manifest: manifest, Layers: res.Layers, Tags: o.tags}, out); err != nil {
			return err
		}
	}
	if err := writeMetadata(o.metadataFile, meta); err != nil {
		return err
	}
	pr.Done(id, o.tags, time.Since(start))
	if o.explain {
		pr.Close() // the explanation goes under the final frame
		printExplanations(os.Stderr, res.Explanations)
	}
	return nil
}

func printExplanations(w io.Writer, list []solver.Explanation) {
	if len(list) == 0 {
		fmt.Fprintln(w, "explain: every step came from the cache")
		return
	}
	for _, e := range list {
		fmt.Fprintf(w, "explain: [%s] line %d %s missed the cache:\n", e.Stage, e.Line, e.Step)
		for _, r := range e.Reasons {
			fmt.Fprintf(w, "  - %s\n", r)
		}
	}
}

// exportImage writes an image output: the built image tagged in the store
// under its names (the build's tags if none) and, with push, pushed to
// each. It returns the metadata of the last push, nil if none.
func exportImage(ctx context.Context, g *globalOptions, e *env, manifest ocispec.Descriptor, out exporter.Output, tags []string) (map[string]any, error) {
	names := out.Names
	if len(names) == 0 {
		names = tags
	}
	if len(names) == 0 {
		return nil, usageError{fmt.Errorf("output type=%s needs a name (name=REF or -t)", out.Type)}
	}
	for _, n := range names {
		if err := e.store.Content().Tag(ctx, n, manifest); err != nil {
			return nil, err
		}
	}
	if !out.Push {
		return nil, nil
	}
	opts, err := g.registry.options()
	if err != nil {
		return nil, err
	}
	var meta map[string]any
	for _, n := range names {
		p, err := pushImage(ctx, e.store, manifest, n, opts)
		if err != nil {
			return nil, err
		}
		meta = exporter.Metadata(p, names)
	}
	return meta, nil
}
