package gc

import (
	"slices"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-dev/builder/solver/cache"
)

// node is one record in the tree that Step.Parent links make.
type node struct {
	rec      cache.Record
	used     bool   // a listed image holds its layer
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
}

func newPlan(nodes []*node, size func(item) int64) *plan {
	p := &plan{nodes: map[digest.Digest]*node{}, size: size}
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
// those whose subtree no image uses; with before, only those whose subtree
// was last used before it. Both rules hold for a node's descendants when
// they hold for the node, so removing a candidate's subtree removes only
// candidates. Without keep every candidate goes; with keep, candidates go
// least recently used first (a subtree's newest use counts, so children go
// before their parents; ties go newest-created first) until the total size
// of what the remaining records hold is at most keep.
func (p *plan) choose(pol policy) []*node {
	var out []*node
	removed := map[*node]bool{}
	// Sizes are only needed against keep; they cost a walk of each
	// unpacked layer.
	counting := pol.keep > 0
	refs := map[item]int{}
	var total int64
	for _, n := range p.order {
		for _, it := range n.items {
			if refs[it] == 0 && counting {
				total += p.size(it)
			}
			refs[it]++
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
			if refs[it]--; refs[it] == 0 && counting {
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
		if (pol.all || pol.keep > 0 || !n.anyUsed) && (pol.before.IsZero() || n.eff.Before(pol.before)) {
			cands = append(cands, n)
		}
	}
	if pol.keep <= 0 {
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
	for _, n := range cands {
		if total <= pol.keep {
			break
		}
		remove(n)
	}
	return out
}
