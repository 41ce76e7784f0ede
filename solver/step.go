package solver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/solver/graph"
	"github.com/builder-dev/builder/store/cache"
)

// call is one step execution other stages with the same key wait for.
type call struct {
	done chan struct{}
	st   state
	at   time.Time
	err  error
}

// doStep runs step i of st, whose op is op, with its progress events. Its
// time is its work, not the wait for the stages it reads or for a free
// slot: it starts once it has both. The slot is kept until the step's last
// event, so that with one slot no two steps overlap, in the progress
// either.
func (b *build) doStep(ctx context.Context, rd *reader, cur state, st *graph.Stage, i int, op Op) (state, time.Time, error) {
	step := st.Steps[i]
	name := fmt.Sprintf("[%s %d/%d] %s", b.stageLabel(st), i+1, len(st.Steps), step.Text)
	if err := b.awaitInputs(ctx, rd, step.Op); err != nil {
		return state{}, time.Time{}, err
	}
	release, err := b.slot(ctx, rd)
	if err != nil {
		return state{}, time.Time{}, err
	}
	defer release()
	v := b.nextVertex()
	start := time.Now()
	b.prog.send(Event{Vertex: v, Name: name, Status: StatusStart, Time: start})
	next, created, cached, err := b.runStep(ctx, rd, cur, st, i, op, func() io.Writer {
		return &logWriter{p: b.prog, vertex: v, name: name}
	})
	if err != nil {
		b.prog.send(Event{Vertex: v, Name: name, Status: StatusError, Error: err.Error(), Duration: time.Since(start)})
		var ge *graph.Error
		if errors.As(err, &ge) || errors.Is(err, context.Canceled) {
			return state{}, time.Time{}, err
		}
		return state{}, time.Time{}, &graph.Error{Location: step.Location, Err: fmt.Errorf("%s: %w", step.Text, err)}
	}
	status := StatusDone
	if cached {
		status = StatusCached
	}
	b.prog.send(Event{Vertex: v, Name: name, Status: status, Duration: time.Since(start)})
	return next, created, nil
}

func (b *build) nextVertex() int {
	b.vmu.Lock()
	defer b.vmu.Unlock()
	b.vertexN++
	return b.vertexN
}

// awaitInputs waits for the stages op copies from. The stage's read
// session is given up first: it is never held while waiting for another
// stage (see reader).
func (b *build) awaitInputs(ctx context.Context, rd *reader, op graph.Op) error {
	c, ok := op.(*graph.Copy)
	if !ok || c.From.Context || c.From.Image != "" {
		return nil
	}
	rd.close()
	_, err := b.await(ctx, c.From.Stage)
	return err
}

// inputs resolves what op reads besides its parent: the stage or image a
// COPY --from names.
func (b *build) inputs(ctx context.Context, op graph.Op) ([]Chain, error) {
	c, ok := op.(*graph.Copy)
	switch {
	case !ok || c.From.Context:
		return nil, nil
	case c.From.Image != "":
		img, err := b.s.Images.ResolveImage(ctx, c.From.Image)
		if err != nil {
			return nil, err
		}
		return []Chain{img}, nil
	default:
		f, err := b.await(ctx, c.From.Stage)
		if err != nil {
			return nil, err
		}
		return []Chain{f.st.chain()}, nil
	}
}

// slot waits for one of the MaxParallelism slots, giving the stage's read
// session up first if it must wait; release frees the slot.
func (b *build) slot(ctx context.Context, rd *reader) (release func(), err error) {
	if b.sem == nil {
		return func() {}, nil
	}
	select {
	case b.sem <- struct{}{}:
		return func() { <-b.sem }, nil
	default:
	}
	rd.close()
	select {
	case b.sem <- struct{}{}:
		return func() { <-b.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runStep executes one layer-making step, or reuses its recorded layer;
// log makes the writer for what the op prints, on a miss.
func (b *build) runStep(ctx context.Context, rd *reader, cur state, st *graph.Stage, index int, op Op, log func() io.Writer) (state, time.Time, bool, error) {
	step := st.Steps[index]
	inputs, err := b.inputs(ctx, step.Op)
	if err != nil {
		return state{}, time.Time{}, false, err
	}
	cm, err := op.CacheMap(ctx, inputs)
	if err != nil {
		return state{}, time.Time{}, false, err
	}
	info := cache.Step{Dockerfile: b.opt.Dockerfile, Stage: b.stageLabel(st), Index: index, Line: step.Location.Line, Text: step.Text,
		Parent: cur.key, Kind: cm.Kind, Op: cm.Op, Input: cm.Input}
	key := cacheKey(cur.key, info.Kind, info.Op, info.Input)
	// After a step of this stage ran, its new layers make a later hit all
	// but impossible (a record is only reused on the layers it was made
	// on), and a lookup would wait for the background record writes.
	if !b.opt.NoCache && cur.hit {
		rec, err := rd.lookup(ctx, key)
		if err != nil {
			return state{}, time.Time{}, false, err
		}
		if rec != nil && rec.ParentChain != cur.chainID() {
			rec = nil // made on other layers than these: see Record.ParentChain
		}
		if rec != nil {
			b.mu.Lock()
			b.hits = append(b.hits, key)
			b.mu.Unlock()
			b.use(*rec)
			return cur.with(key, rec.Layer, rec.DiffID), rec.Created, true, nil
		}
		// A miss means work: give the read lock up first (see reader).
		rd.close()
	}
	if cm.Files != nil {
		info.Files = cm.Files()
	}
	if !b.opt.NoCache && cur.hit {
		b.explainMiss(ctx, info)
	}
	// Two stages running the very same step (same key) share one run.
	b.mu.Lock()
	if c, ok := b.inflight[key]; ok {
		b.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return state{}, time.Time{}, false, ctx.Err()
		}
		return c.st, c.at, true, c.err
	}
	c := &call{done: make(chan struct{})}
	b.inflight[key] = c
	b.mu.Unlock()
	defer close(c.done)
	c.st, c.at, c.err = b.execute(ctx, op, cur, inputs, key, info, log())
	return c.st, c.at, false, c.err
}

// execute makes op's layer on cur and records it.
func (b *build) execute(ctx context.Context, op Op, cur state, inputs []Chain, key digest.Digest, info cache.Step, log io.Writer) (state, time.Time, error) {
	layer, err := op.Exec(ctx, cur.chain(), inputs, log)
	if err != nil {
		return state{}, time.Time{}, err
	}
	now := time.Now().UTC()
	rec := cache.Record{Key: key, ParentChain: cur.chainID(), Layer: layer.Blob.Desc, DiffID: layer.DiffID, Created: now, LastUsed: now, Step: info}
	b.records.add(ctx, layer.Blob, rec)
	b.use(rec)
	next := cur.with(key, layer.Blob.Desc, layer.DiffID)
	next.hit = false
	return next, now, nil
}
