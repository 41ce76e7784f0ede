package gc

import (
	"slices"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/store/cache"
)

// node is one record in the tree that Step.Parent links make.
type node struct {
	rec      cache.Record
	used     bool   // a listed image or a root holds its layer
	dead     bool   // its layer blob is gone: it can never be a hit again
	items    []item // what it holds on disk
	children []*node

	// Over the node and all its descendants, filled by walk:
	eff     time.Time // the newest LastUsed
	anyUsed bool      // whether any is used
}

// plan decides which records go. It knows nothing of the disk: scan
// fills it, tests build it by hand.
type plan struct {
	nodes map[digest.Digest]*node
	order []*node // by key, for determinism
	size  func(item) int64
	// pinned tells the items that stay whatever records go: those of
	// listed images and roots. Removing a record frees none of them.
	pinned func(item) bool
}

func newPlan(nodes []*node, size func(item) int64, pinned func(item) bool) *plan {
	p := &plan{nodes: map[digest.Digest]*node{}, size: size, pinned: pinned}
	for _, n := range nodes {
		p.nodes[n.rec.Key] = n
		p.order = append(p.order, n)
	}
	slices.SortFunc(p.order, func(a, b *node) int { return compareDigest(a.rec.Key, b.rec.Key) })
	for _, n := range p.order {
		if par := p.nodes[n.rec.Step.Parent]; par != nil && par != n {
			par.children = append(par.children, n)
		}
	}
	done := map[*node]bool{}
	for _, n := range p.order {
		walk(n, done)
	}
	return p
}

func compareDigest(a, b digest.Digest) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// walk fills eff and anyUsed of n's subtree.
func walk(n *node, done map[*node]bool) {
	if done[n] {
		return
	}
	done[n] = true // before the children: a cycle (impossible with hashes) ends here
	n.eff, n.anyUsed = n.rec.LastUsed, n.used
	for _, c := range n.children {
		walk(c, done)
		if c.eff.After(n.eff) {
			n.eff = c.eff
		}
		n.anyUsed = n.anyUsed || c.anyUsed
	}
}

// policy is what a prune asks for, as plan needs it.
type policy struct {
	all    bool      // every record is a candidate, used or not
	before time.Time // if set, only records last used (with all their descendants) before it
	keep   int64     // if > 0, stop once the cache holds at most this much
}

// choose returns the records to remove, each with its descendants, in the
// order it picked them.
//
// Dead records always go. Candidates are, with all, every record, else
// those whose subtree no image or root uses; with before, only those whose
// subtree was last used before it. Both rules hold for a node's
// descendants when they hold for the node, so removing a candidate's
// subtree removes only candidates.
//
// Without keep every candidate goes: --all empties the cache even of
// records whose layers images keep, as docker builder prune -a does.
//
// With keep, the cache is measured as BuildKit does for --keep-storage:
// only what records alone hold counts (Reclaimable in cache du), not the
// layers images or roots keep anyway. While that is over keep, candidates
// go least recently used first (a subtree's newest use counts, so children
// go before their parents; ties go newest-created first), one record at a
// time and only those whose removal frees bytes then: a record whose
// layers an image, a root or another kept record holds stays, since
// removing it would only lose cache, and so do its ancestors. NOTE: so two
// records holding only the same blob never go under keep, though removing
// both would free it.
func (p *plan) choose(pol policy) []*node {
	var out []*node
	removed := map[*node]bool{}
	refs := map[item]int{}
	for _, n := range p.order {
		for _, it := range n.items {
			refs[it]++
		}
	}
	// total is what the remaining records alone hold; it is only needed
	// against keep, and sizes cost a walk of each unpacked layer.
	counting := pol.keep > 0
	var total int64
	if counting {
		for it := range refs {
			if !p.pinned(it) {
				total += p.size(it)
			}
		}
	}
	var remove func(n *node)
	remove = func(n *node) {
		if removed[n] {
			return
		}
		removed[n] = true
		for _, c := range n.children {
			remove(c)
		}
		out = append(out, n)
		for _, it := range n.items {
			if refs[it]--; refs[it] == 0 && counting && !p.pinned(it) {
				total -= p.size(it)
			}
		}
	}
	for _, n := range p.order {
		if n.dead {
			remove(n)
		}
	}
	var cands []*node
	for _, n := range p.order {
		if (pol.all || !n.anyUsed) && (pol.before.IsZero() || n.eff.Before(pol.before)) {
			cands = append(cands, n)
		}
	}
	if !counting {
		for _, n := range cands {
			remove(n)
		}
		return out
	}
	slices.SortStableFunc(cands, func(a, b *node) int {
		if c := a.eff.Compare(b.eff); c != 0 {
			return c
		}
		return b.rec.Created.Compare(a.rec.Created)
	})
	// Only leaves go (a record whose children are all gone), so that what
	// a removal frees is the record's own: removing a subtree for what
	// one of its records frees would lose the others for nothing. Children
	// sort before their parents, and a removal can make another record's
	// shared layer its own alone, so go round again while something goes.
	for progress := true; progress && total > pol.keep; {
		progress = false
		for _, n := range cands {
			if total <= pol.keep {
				break
			}
			if removed[n] || slices.ContainsFunc(n.children, func(c *node) bool { return !removed[c] }) || p.frees(n, refs) == 0 {
				continue
			}
			remove(n)
			progress = true
		}
	}
	return out
}

// frees is what removing the record n alone frees now: its unpinned items
// no other remaining record holds.
func (p *plan) frees(n *node, refs map[item]int) int64 {
	var sum int64
	for _, it := range n.items {
		if refs[it] == 1 && !p.pinned(it) {
			sum += p.size(it)
		}
	}
	return sum
}
