package gc

import (
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-dev/builder/store/cache"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// spec is one record of a hand-made plan.
type spec struct {
	key, parent string
	created     int // minutes after t0
	lastUsed    int // minutes after t0
	used, dead  bool
	blob        string // item name; "" for the record's own
	size        int64
}

func key(s string) digest.Digest { return digest.FromString("key " + s) }

func buildPlan(specs []spec) *plan {
	sizes := map[item]int64{}
	pinned := map[item]bool{} // an image holds the layers of used records
	var nodes []*node
	for _, s := range specs {
		blob := s.blob
		if blob == "" {
			blob = s.key
		}
		it := item{blob: digest.FromString("blob " + blob)}
		sizes[it] = s.size
		if s.used {
			pinned[it] = true
		}
		parent := digest.FromString("not a record")
		if s.parent != "" {
			parent = key(s.parent)
		}
		nodes = append(nodes, &node{
			rec: cache.Record{
				Key: key(s.key), Layer: ocispec.Descriptor{Digest: it.blob},
				Created: t0.Add(time.Duration(s.created) * time.Minute), LastUsed: t0.Add(time.Duration(s.lastUsed) * time.Minute),
				Step: cache.Step{Parent: parent},
			},
			used: s.used, dead: s.dead, items: []item{it},
		})
	}
	return newPlan(nodes, func(it item) int64 { return sizes[it] }, func(it item) bool { return pinned[it] })
}

// names returns the keys chosen, as spec names, in order.
func names(specs []spec, chosen []*node) []string {
	byKey := map[digest.Digest]string{}
	for _, s := range specs {
		byKey[key(s.key)] = s.key
	}
	var out []string
	for _, n := range chosen {
		out = append(out, byKey[n.rec.Key])
	}
	return out
}

func TestChoose(t *testing.T) {
	// a <- b <- c, a used by an image through c; d <- e unused; f dead
	// with a used child g; h alone and old.
	tree := []spec{
		{key: "a", created: 0, lastUsed: 100},
		{key: "b", parent: "a", created: 1, lastUsed: 100},
		{key: "c", parent: "b", created: 2, lastUsed: 100, used: true},
		{key: "d", created: 0, lastUsed: 50},
		{key: "e", parent: "d", created: 1, lastUsed: 90},
		{key: "f", created: 0, lastUsed: 100, dead: true},
		{key: "g", parent: "f", created: 1, lastUsed: 100, used: true},
		{key: "h", created: 0, lastUsed: 10},
	}
	for _, tc := range []struct {
		name string
		pol  policy
		want []string // as a set, except that children precede parents
	}{
		{"default keeps used subtrees", policy{}, []string{"d", "e", "f", "g", "h"}},
		{"all", policy{all: true}, []string{"a", "b", "c", "d", "e", "f", "g", "h"}},
		// d was last used at 50 but its child e at 90: d stays with e.
		{"until", policy{before: t0.Add(60 * time.Minute)}, []string{"f", "g", "h"}},
		{"until keeps subtrees used since", policy{before: t0.Add(95 * time.Minute)}, []string{"d", "e", "f", "g", "h"}},
		{"all until", policy{all: true, before: t0.Add(95 * time.Minute)}, []string{"d", "e", "f", "g", "h"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := names(tree, buildPlan(tree).choose(tc.pol))
			if !sameSet(got, tc.want) {
				t.Errorf("removed %v, want %v", got, tc.want)
			}
			checkChildrenFirst(t, tree, got)
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// checkChildrenFirst fails if a record was removed before one of its
// children.
func checkChildrenFirst(t *testing.T, specs []spec, removed []string) {
	t.Helper()
	pos := map[string]int{}
	for i, n := range removed {
		pos[n] = i
	}
	for _, s := range specs {
		pi, pok := pos[s.parent]
		ci, cok := pos[s.key]
		if cok && pok && ci > pi {
			t.Errorf("%s removed before its child %s: %v", s.parent, s.key, removed)
		}
		if pok && !cok {
			t.Errorf("%s removed but its child %s kept", s.parent, s.key)
		}
	}
}

func TestChooseKeepStorage(t *testing.T) {
	// u is used by an image and the oldest; w was used next; p made q in
	// one build (q created later, used later); r was used in between; s
	// shares r's blob.
	specs := []spec{
		{key: "u", created: 0, lastUsed: 5, used: true, size: 1000},
		{key: "w", created: 0, lastUsed: 15, size: 50},
		{key: "p", created: 10, lastUsed: 10, size: 100},
		{key: "q", parent: "p", created: 11, lastUsed: 30, size: 200},
		{key: "r", created: 0, lastUsed: 20, size: 400},
		{key: "s", created: 0, lastUsed: 25, blob: "r", size: 400},
	}
	// What records alone hold: 50 + 100 + 200 + 400 (shared once) = 750;
	// u's 1000 is the image's and never counts.
	for _, tc := range []struct {
		keep int64
		all  bool
		want []string
	}{
		{keep: 2000},
		{keep: 750},
		{keep: 749, want: []string{"w"}},
		{keep: 700, want: []string{"w"}},
		// r and s free nothing one at a time (each other's blob), u
		// nothing at all (the image's): q goes although used later.
		{keep: 699, want: []string{"w", "q"}},
		{keep: 500, want: []string{"w", "q"}},
		// p's subtree was last used at 30 (q), so q went before p.
		{keep: 499, want: []string{"w", "q", "p"}},
		{keep: 1, want: []string{"w", "q", "p"}},
		// --all makes u a candidate, but removing it would free nothing.
		{keep: 1, all: true, want: []string{"w", "q", "p"}},
	} {
		got := names(specs, buildPlan(specs).choose(policy{keep: tc.keep, all: tc.all}))
		if !slices.Equal(got, tc.want) {
			t.Errorf("keep %d all %v: removed %v, want %v", tc.keep, tc.all, got, tc.want)
		}
	}
	// Until narrows the candidates; keep then still stops early.
	got := names(specs, buildPlan(specs).choose(policy{keep: 1, before: t0.Add(22 * time.Minute)}))
	if !slices.Equal(got, []string{"w"}) {
		t.Errorf("keep with until: removed %v", got)
	}
	// Without keep, --all empties the cache, used records too, as docker
	// builder prune -a does.
	got = names(specs, buildPlan(specs).choose(policy{all: true}))
	if !sameSet(got, []string{"u", "w", "p", "q", "r", "s"}) {
		t.Errorf("all: removed %v", got)
	}
}

// TestChooseKeepStorageAllUsed is the case of bug 8: every record's layer
// is an image's, so a prune to any size frees nothing and must remove
// nothing.
func TestChooseKeepStorageAllUsed(t *testing.T) {
	specs := []spec{
		{key: "a", created: 0, lastUsed: 1, used: true, size: 3000},
		{key: "b", parent: "a", created: 1, lastUsed: 1, used: true, size: 2000},
		{key: "c", parent: "b", created: 2, lastUsed: 1, used: true, size: 1000},
	}
	for _, all := range []bool{false, true} {
		if got := names(specs, buildPlan(specs).choose(policy{keep: 1, all: all})); len(got) != 0 {
			t.Errorf("all %v: removed %v, want nothing", all, got)
		}
	}
	// With --all, a used record with a child no image uses is a
	// candidate, but only the child frees anything: the used records
	// stay.
	specs = append(specs, spec{key: "d", parent: "a", created: 3, lastUsed: 0, size: 500})
	for _, all := range []bool{false, true} {
		if got := names(specs, buildPlan(specs).choose(policy{keep: 1, all: all})); !slices.Equal(got, []string{"d"}) {
			t.Errorf("all %v: removed %v, want [d]", all, got)
		}
	}
}

func TestChooseTiesGoNewestFirst(t *testing.T) {
	// A build that made x then y (y on x) touched both at the end.
	specs := []spec{
		{key: "x", created: 1, lastUsed: 9, size: 10},
		{key: "y", parent: "x", created: 2, lastUsed: 9, size: 10},
		{key: "z", created: 3, lastUsed: 9, size: 10},
	}
	got := names(specs, buildPlan(specs).choose(policy{keep: 15}))
	if !slices.Equal(got, []string{"z", "y"}) {
		t.Errorf("removed %v, want [z y]", got)
	}
}
