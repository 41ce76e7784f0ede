package solver

import (
	"context"
	"fmt"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/solver/graph"
)

// state is a stage's position while its steps run: the cache key so far and
// the layers so far. Layers are not unpacked until a step needs them.
type state struct {
	// hit is true while every step so far came from the cache: the first
	// miss after it is the one worth explaining.
	hit     bool
	key     digest.Digest
	layers  []ocispec.Descriptor
	diffIDs []digest.Digest
}

// solveStage runs the steps of st, whose ops are ops (by step).
func (b *build) solveStage(ctx context.Context, st *graph.Stage, ops []Op) (state, dockerspec.DockerOCIImage, error) {
	cur, err := b.base(ctx, st)
	if err != nil {
		return state{}, dockerspec.DockerOCIImage{}, err
	}
	cfg := st.Config
	history := append([]ocispec.History(nil), st.Base.History...)
	// Timestamps come from the cache records, and a config-only step takes
	// the time of the entry before it, so a cached rebuild writes the very
	// same config and thus the same image ID, as BuildKit does.
	last := lastCreated(history)
	rd := &reader{store: b.s.Store, remote: b.opt.Remote}
	defer rd.close()
	for i, step := range st.Steps {
		h := step.History
		if step.Op == nil {
			cur.key = cacheKey(cur.key, "config", step.History.CreatedBy, "")
			h.Created, h.EmptyLayer = last, true
			history = append(history, h)
			continue
		}
		next, created, err := b.doStep(ctx, rd, cur, st, i, ops[i])
		if err != nil {
			return state{}, dockerspec.DockerOCIImage{}, err
		}
		cur = next
		last = &created
		h.Created, h.EmptyLayer = last, false
		history = append(history, h)
	}
	cfg.Created = last
	cfg.History = history
	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: append([]digest.Digest{}, cur.diffIDs...)}
	return cur, cfg, nil
}

// lastCreated is the newest creation time among history entries.
func lastCreated(history []ocispec.History) *time.Time {
	var last *time.Time
	for _, h := range history {
		if h.Created != nil && (last == nil || h.Created.After(*last)) {
			last = h.Created
		}
	}
	return last
}

// base returns the starting state of a stage.
func (b *build) base(ctx context.Context, st *graph.Stage) (state, error) {
	switch {
	case st.From.Scratch:
		return state{hit: true, key: cacheKey("", "scratch", nil, "")}, nil
	case st.From.Image != "":
		img, err := b.s.Images.ResolveImage(ctx, st.From.Image)
		if err != nil {
			return state{}, &graph.Error{Location: st.Location, Err: err}
		}
		return state{hit: true, key: cacheKey("", "image", nil, img.Key), layers: img.Layers, diffIDs: img.DiffIDs}, nil
	default:
		f, err := b.await(ctx, st.From.Stage)
		if err != nil {
			return state{}, err
		}
		return f.st, nil
	}
}

// await returns the result of stage i once it is solved.
func (b *build) await(ctx context.Context, i int) (stageFuture, error) {
	f := b.stages[i]
	select {
	case <-f.done:
	case <-ctx.Done():
		return stageFuture{}, ctx.Err()
	}
	if f.err != nil {
		return stageFuture{}, fmt.Errorf("stage %d failed", i)
	}
	return *f, nil
}

func (b *build) stageLabel(st *graph.Stage) string {
	if st.Name != "" {
		return st.Name
	}
	return fmt.Sprintf("stage-%d", st.Index)
}

// chain is the state as ops see it.
func (s state) chain() Chain {
	return Chain{Key: s.key, Layers: s.layers, DiffIDs: s.diffIDs}
}

// chainID is the chain ID of the state's layers ("" for none).
func (s state) chainID() digest.Digest {
	if len(s.diffIDs) == 0 {
		return ""
	}
	return identity.ChainID(s.diffIDs)
}

func (s state) with(key digest.Digest, layer ocispec.Descriptor, diffID digest.Digest) state {
	return state{
		hit:     true,
		key:     key,
		layers:  append(append([]ocispec.Descriptor(nil), s.layers...), layer),
		diffIDs: append(append([]digest.Digest(nil), s.diffIDs...), diffID),
	}
}
