package solver

import (
	"context"
	"encoding/json"
	"io"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/solver/graph"
	"github.com/builder-dev/builder/store"
	"github.com/builder-dev/builder/store/cache"
)

// Op is a step's layer-making operation as the solver schedules it: what
// its cache key covers, and how to make its layer on a miss. The solver
// knows no concrete op; solver/ops binds the graph's ops to the runner,
// the snapshotter and the build context.
type Op interface {
	// CacheMap says what the step's cache key covers beyond its parent's
	// key, given the resolved inputs (a COPY --from's stage or image). It
	// must not touch any snapshot: a cached step costs only this.
	CacheMap(ctx context.Context, inputs []Chain) (CacheMap, error)
	// Exec makes the op's layer on top of parent, reading inputs and
	// writing what the work prints to log.
	Exec(ctx context.Context, parent Chain, inputs []Chain, log io.Writer) (Layer, error)
}

// Chain is a state an op builds on or reads: a stage so far or an image.
// Its layers need not be unpacked; an op that needs them asks the
// snapshotter.
type Chain struct {
	// Key names the chain in cache keys: a stage's cache key, an image's
	// ID (its config's digest: the same image pulled, loaded from a docker
	// archive or from an OCI one has one ID, whatever form its layers
	// came in, so runners that got their base differently share a cache).
	Key     digest.Digest
	Layers  []ocispec.Descriptor
	DiffIDs []digest.Digest // one per layer, bottom first
}

// CacheMap is what a step's cache key covers beyond its parent's key. The
// key's bytes are fixed (see cacheKey): Kind, Op and Input must stay what
// they were for the same step, or every user's cache is lost.
type CacheMap struct {
	Kind  string          // "exec", "copy" or "mkdir"
	Op    json.RawMessage // the graph op as JSON, its expanded parameters
	Input digest.Digest   // what the op reads: a context digest, a stage key, an image ID; "" for nothing
	// Files lists what a context copy read, file by file, for explaining
	// a later miss; it is called only on a miss. Nil for other ops.
	Files func() []cache.File
}

// Layer is the layer an op made.
type Layer struct {
	// Blob is the compressed layer, staged: the solver commits it into the
	// store (in the background) before writing the record that names it.
	Blob   *store.StagedBlob
	DiffID digest.Digest
}

// OpResolver binds a step's graph op to the Op that runs it: solver/ops in
// production, fakes in tests. The solver binds every step of the stages
// it needs, under the build's context, before any stage starts.
type OpResolver interface {
	ResolveOp(ctx context.Context, op graph.Op) (Op, error)
}

// ImageResolver finds an image a stage starts from or copies from; its
// Chain's Key is the image ID.
type ImageResolver interface {
	ResolveImage(ctx context.Context, ref string) (Chain, error)
}
