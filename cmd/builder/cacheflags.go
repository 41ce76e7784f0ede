package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"

	"github.com/builder-dev/builder/internal/registry"
	"github.com/builder-dev/builder/remotecache"
	"github.com/builder-dev/builder/solver"
	"github.com/builder-dev/builder/solver/ops"
	"github.com/builder-dev/builder/store"
)

// cacheSpec is one --cache-to or --cache-from, as buildx spells them:
// type=registry,ref=R[,mode=min|max], type=local,dest=DIR / src=DIR, or a
// bare R for type=registry,ref=R.
type cacheSpec struct {
	raw  string
	typ  string // "registry" or "local"
	ref  string
	dir  string
	mode remotecache.Mode
}

// parseCacheSpecs parses the values of flag (--cache-to when export).
func parseCacheSpecs(list []string, flag string, export bool) ([]cacheSpec, error) {
	var out []cacheSpec
	for _, s := range list {
		c := cacheSpec{raw: s, mode: remotecache.ModeMin}
		if !strings.Contains(s, "=") {
			c.typ, c.ref = "registry", s
			out = append(out, c)
			continue
		}
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, usageError{fmt.Errorf("invalid %s %q: %q is not key=value", flag, s, kv)}
			}
			switch {
			case k == "type":
				c.typ = v
			case k == "ref":
				c.ref = v
			case k == "dest" && export, k == "src" && !export:
				c.dir = v
			case k == "mode" && export:
				if v != string(remotecache.ModeMin) && v != string(remotecache.ModeMax) {
					return nil, usageError{fmt.Errorf("invalid %s %q: mode must be min or max", flag, s)}
				}
				c.mode = remotecache.Mode(v)
			case k == "image-manifest", k == "oci-mediatypes":
				// buildx's switches for what this cache always is: one
				// OCI image manifest.
			default:
				return nil, usageError{fmt.Errorf("invalid %s %q: unknown key %q", flag, s, k)}
			}
		}
		switch {
		case c.typ == "registry" && c.ref == "":
			return nil, usageError{fmt.Errorf("invalid %s %q: type=registry needs ref=", flag, s)}
		case c.typ == "local" && c.dir == "" && export:
			return nil, usageError{fmt.Errorf("invalid %s %q: type=local needs dest=", flag, s)}
		case c.typ == "local" && c.dir == "":
			return nil, usageError{fmt.Errorf("invalid %s %q: type=local needs src=", flag, s)}
		case c.typ != "registry" && c.typ != "local":
			return nil, usageError{fmt.Errorf("invalid %s %q: type must be registry or local", flag, s)}
		}
		out = append(out, c)
	}
	return out, nil
}

// target opens the cache c names; opts reach a registry.
func (c cacheSpec) target(opts *registry.Options) (remotecache.Target, error) {
	if c.typ == "local" {
		return remotecache.NewLocal(c.dir), nil
	}
	t, err := remotecache.NewRegistry(c.ref, opts)
	if err != nil {
		return nil, usageError{err}
	}
	return t, nil
}

// buildCache is a build's --cache-from and --cache-to.
type buildCache struct {
	from, to []cacheSpec
	imported *remotecache.Importer // nil without --cache-from
	sources  []remotecache.Target
	dests    []remotecache.Target // by bc.to
}

func parseBuildCache(from, to []string, opts *registry.Options) (*buildCache, error) {
	bc := &buildCache{}
	var err error
	if bc.from, err = parseCacheSpecs(from, "--cache-from", false); err != nil {
		return nil, err
	}
	if bc.to, err = parseCacheSpecs(to, "--cache-to", true); err != nil {
		return nil, err
	}
	for _, c := range bc.from {
		t, err := c.target(opts)
		if err != nil {
			return nil, err
		}
		bc.sources = append(bc.sources, t)
	}
	// Opened now so that a bad reference fails before the build.
	for _, c := range bc.to {
		t, err := c.target(opts)
		if err != nil {
			return nil, err
		}
		bc.dests = append(bc.dests, t)
	}
	return bc, nil
}

// open reads the imported caches' records (no layer) before the build.
func (bc *buildCache) open(ctx context.Context, st *store.Store, warn func(string)) error {
	if len(bc.sources) == 0 {
		return nil
	}
	im, err := remotecache.Open(ctx, st.Content(), bc.sources, warn)
	if err != nil {
		return err
	}
	bc.imported = im
	return nil
}

// remote is the imported cache as the solver takes it; nil without one.
func (bc *buildCache) remote() solver.RemoteCache {
	if bc.imported == nil {
		return nil
	}
	return bc.imported
}

// fetcher is the imported cache as the ops take it; nil without one.
func (bc *buildCache) fetcher() ops.BlobFetcher {
	if bc.imported == nil {
		return nil
	}
	return bc.imported
}

// fetchResult fetches the result's layers that came from the imported
// cache: the image is written into the store next, which must hold all
// its blobs. The imported records used are kept in the local cache, and
// what the import downloaded, in all, is reported.
func (bc *buildCache) fetchResult(ctx context.Context, st *store.Store, res *solver.Result, rep *vertexReporter) error {
	if bc.imported == nil {
		return nil
	}
	if err := bc.imported.EnsureBlobs(ctx, res.Layers); err != nil {
		return err
	}
	if err := bc.imported.Keep(ctx, st.Meta()); err != nil {
		return err
	}
	f := bc.imported.Fetched()
	rep.note(fmt.Sprintf("imported cache: %d records, fetched %d layers (%s)", bc.imported.Len(), f.Blobs, units.HumanSize(float64(f.Bytes))))
	return nil
}

// export writes the caches of --cache-to, each reported as a vertex after
// the build's; pushed are the references the image was just pushed to,
// whence a registry cache in another repository mounts shared layers.
func (bc *buildCache) export(ctx context.Context, st *store.Store, res *solver.Result, pushed []string, rep *vertexReporter) error {
	var src remotecache.Source
	if bc.imported != nil {
		src = bc.imported
	}
	for i, c := range bc.to {
		t := bc.dests[i]
		if r, ok := t.(*remotecache.Registry); ok {
			r.MountFrom(pushed...)
		}
		recs := remotecache.Select(res.Records, res.DiffIDs, c.mode)
		err := rep.step(fmt.Sprintf("exporting cache to %s (mode=%s)", t, c.mode), func() (string, error) {
			s, err := remotecache.Export(ctx, st, t, recs, src)
			return fmt.Sprintf("%d records, uploaded %d blobs (%s)", len(recs), s.Blobs, units.HumanSize(float64(s.Bytes))), err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// vertexReporter passes the solver's events on and numbers the command's
// own vertices (the cache import and exports) after the build's.
type vertexReporter struct {
	rep solver.Reporter
	mu  sync.Mutex
	max int
}

func (v *vertexReporter) event(e solver.Event) {
	v.mu.Lock()
	if e.Vertex > v.max {
		v.max = e.Vertex
	}
	v.mu.Unlock()
	v.rep(e)
}

func (v *vertexReporter) next() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.max++
	return v.max
}

// note reports a vertex with one line and no work.
func (v *vertexReporter) note(msg string) {
	n, now := v.next(), time.Now()
	v.rep(solver.Event{Vertex: n, Name: msg, Status: solver.StatusStart, Time: now})
	v.rep(solver.Event{Vertex: n, Name: msg, Status: solver.StatusDone, Time: now})
}

// step reports fn as a vertex named name; what fn returns is its log.
func (v *vertexReporter) step(name string, fn func() (string, error)) error {
	n, start := v.next(), time.Now()
	v.rep(solver.Event{Vertex: n, Name: name, Status: solver.StatusStart, Time: start})
	msg, err := fn()
	if err != nil {
		v.rep(solver.Event{Vertex: n, Name: name, Status: solver.StatusError, Error: err.Error(), Duration: time.Since(start)})
		return err
	}
	v.rep(solver.Event{Vertex: n, Name: name, Status: solver.StatusLog, Data: []byte(msg + "\n"), Time: time.Now()})
	v.rep(solver.Event{Vertex: n, Name: name, Status: solver.StatusDone, Duration: time.Since(start)})
	return nil
}
