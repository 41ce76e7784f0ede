package runner

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
)

// Pool runs containers as Run and Start do, keeping an init started ahead
// (two with resource limits, see depth) so that the next container skips
// the init's process start-up (clone with new namespaces, exec, Go runtime
// start: about 8 ms on a small VM, most of a trivial RUN step's cost). The spare starts when one is taken, while
// the container that took it sets up and runs, and waits, doing nothing,
// for its spec. Only containers whose init needs nothing fixed at start can
// take it: no terminal, no stdin, and output streams that are writers other
// than files (see prestartable). Resource limits do not disqualify
// it: the spare joins the container's cgroup when it gets its spec, before
// it does anything, and opens the files it writes at exec itself. A
// container's cgroup outlives it in the pool, empty, for a later spare (see
// reusable). Close kills the spares and removes those cgroups. A spare
// waits in the builder's mount namespace: it makes its own only when its
// container comes, so it holds no copy of what the builder mounts and
// unmounts meanwhile.
type Pool struct {
	// Resources are the limits of every container the pool runs whose
	// Spec has none: a build's limits for each of its RUN steps.
	Resources *Resources

	mu           sync.Mutex
	spares       []*initProc   // oldest first
	spareFlavour flavour       // what the spares were started with
	filling      bool          // a fill runs
	fillFlavour  flavour       // what it starts spares with
	filled       chan struct{} // closed when its next spare is ready (or failed)
	closed       bool
	fills        sync.WaitGroup
	// free are empty cgroups with Resources' limits whose containers
	// ended, for the next spares.
	free []*cgroup
}

// Run is Run with the pool's spare init.
func (p *Pool) Run(ctx context.Context, spec Spec, stdio Stdio) error {
	proc, err := p.Start(ctx, spec, stdio)
	if err != nil {
		return err
	}
	return proc.Wait()
}

// Start is Start with the pool's spare init.
func (p *Pool) Start(ctx context.Context, spec Spec, stdio Stdio) (*Process, error) {
	if spec.Resources == nil {
		spec.Resources = p.Resources
	}
	return start(ctx, spec, stdio, p)
}

// Close kills the spare, if any, and removes the pool's empty cgroups; the
// pool then starts no more. The cgroup of a container still running is
// removed when the container ends.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	spares := p.spares
	p.spares = nil
	p.mu.Unlock()
	p.fills.Wait() // a fill in flight sees closed and discards its init
	for _, ip := range spares {
		ip.discard()
	}
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.mu.Unlock()
	for _, cg := range free {
		_ = cg.remove()
	}
}

// depth is how many spares the pool keeps started ahead. With limits,
// two: a spare's move into its cgroup may wait, on cgroup v1, for an RCU
// grace period (about 10ms), longer than a trivial RUN step runs, and the
// next step would wait for it. Each spare is ready a step earlier then;
// it costs no more starts, one more waiting process.
func (p *Pool) depth() int {
	if p.Resources.limited() {
		return 2
	}
	return 1
}

// reusable reports whether a cgroup with r's limits may serve one
// container after another. Making and removing a cgroup for each RUN step
// costs more than the step's own setup: both wait, on cgroup v1, for the
// kernel's cgroup lock, which a process's move into a cgroup holds for an
// RCU grace period (milliseconds), and a build moves a spare init into a
// cgroup for each step. A pids or cpu cgroup keeps nothing of a container
// that ended but counters; a memory cgroup keeps the page cache it was
// charged and its OOM kill count, which would count against the next
// container.
func reusable(r Resources) bool {
	return r.Memory == 0
}

// takeCgroup returns an empty cgroup with r's limits that a container of
// the pool left, nil if there is none. Its limits written at exec are
// lifted again (see atExecWrite): the next init joins it before it has a
// container.
func (p *Pool) takeCgroup(r Resources) *cgroup {
	for {
		p.mu.Lock()
		if len(p.free) == 0 || p.Resources == nil || *p.Resources != r {
			p.mu.Unlock()
			return nil
		}
		cg := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		p.mu.Unlock()
		if err := cg.unlimitAtExec(); err != nil {
			_ = cg.remove()
			continue
		}
		return cg
	}
}

// putCgroup keeps cg, whose container ended, for a later container;
// false when the pool is closed.
func (p *Pool) putCgroup(cg *cgroup) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.free = append(p.free, cg)
	return true
}

// newPoolCgroup is a cgroup with r's limits for a container of the pool:
// one an ended container left, else a new one, which goes back to the pool
// when its container ends if it is reusable. The files the init writes at
// exec are closed: the init opens them itself.
func (p *Pool) newPoolCgroup(r Resources) (*cgroup, error) {
	if cg := p.takeCgroup(r); cg != nil {
		return cg, nil
	}
	cg, err := newCgroup(newCgroupName(), r)
	if err != nil {
		return nil, err
	}
	cg.closeAtExec()
	if reusable(r) {
		cg.pool = p
	}
	return cg, nil
}

// flavour is what of a container its init fixes when it starts: its network
// namespace, and whether its output is one pipe for both streams.
type flavour struct {
	network string // "none" or "host"
	// merged: stdout and stderr are one writer, which os/exec gives one
	// pipe, so that what the command writes to both stays in its order.
	merged bool
}

func flavourOf(spec Spec, stdio Stdio) flavour {
	f := flavour{network: "host", merged: sameWriter(stdio.Stdout, stdio.Stderr)}
	if spec.Network == "none" {
		f.network = "none"
	}
	return f
}

// sameWriter reports whether a and b are one writer, as os/exec decides it
// (a type that cannot be compared is never the same).
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// prestartable reports whether a container can take an init started before
// it was known: its output goes to writers of the caller (not files, which
// the command gets itself; not nil, which is /dev/null).
func prestartable(spec Spec, stdio Stdio) bool {
	if spec.Tty || stdio.Stdin != nil {
		return false
	}
	if stdio.Stdout == nil || stdio.Stderr == nil {
		return false
	}
	return !isFile(stdio.Stdout) && !isFile(stdio.Stderr)
}

// joinCgroup moves the init into a cgroup of the pool with r's limits
// (newPoolCgroup). It opens the files it writes at exec itself once it
// has its container.
func (p *Pool) joinCgroup(ip *initProc, r Resources) error {
	cg, err := p.newPoolCgroup(r)
	if err != nil {
		return err
	}
	if err := cg.add(ip.cmd.Process.Pid); err != nil {
		return errors.Join(err, cg.remove())
	}
	ip.cg, ip.res = cg, r
	return nil
}

func isFile(w io.Writer) bool {
	_, ok := w.(*os.File)
	return ok
}

// take returns the spare when it is of flavour f (nil otherwise) and starts
// the next one.
func (p *Pool) take(f flavour) *initProc {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A spare of flavour f on its way is waited for: it started before
	// this container was asked for, so it is ready sooner than an init
	// started now, which would also pay again what it still waits for
	// (its move into a cgroup).
	for len(p.spares) == 0 && p.filling && p.fillFlavour == f && !p.closed {
		filled := p.filled
		p.mu.Unlock()
		<-filled
		p.mu.Lock()
	}
	if p.closed {
		return nil
	}
	if len(p.spares) > 0 && p.spareFlavour != f {
		stale := p.spares
		p.spares = nil
		p.fills.Add(1)
		go func() {
			defer p.fills.Done()
			for _, ip := range stale {
				ip.discard()
			}
		}()
	}
	var got *initProc
	if len(p.spares) > 0 {
		got = p.spares[0]
		p.spares = p.spares[1:]
	}
	if !p.filling && len(p.spares) < p.depth() {
		p.filling, p.fillFlavour, p.filled = true, f, make(chan struct{})
		p.fills.Add(1)
		go p.fill(f)
	}
	return got
}

// fill starts spare inits, one after the other, until the pool has
// depth of them. A failure is left for the next Start, which then starts
// its own init and reports it.
func (p *Pool) fill(f flavour) {
	defer p.fills.Done()
	for {
		ip, err := p.startSpare(f)
		p.mu.Lock()
		keep := err == nil && !p.closed && len(p.spares) < p.depth() && (len(p.spares) == 0 || p.spareFlavour == f)
		if keep {
			p.spares = append(p.spares, ip)
			p.spareFlavour = f
		}
		more := keep && len(p.spares) < p.depth()
		close(p.filled)
		if more {
			p.filled = make(chan struct{})
		} else {
			p.filling = false
		}
		p.mu.Unlock()
		if err == nil && !keep {
			ip.discard()
		}
		if !more {
			return
		}
	}
}

// startSpare starts an init of flavour f that waits for its container, in
// a cgroup of the pool if it has limits.
func (p *Pool) startSpare(f flavour) (*initProc, error) {
	ip, err := spawn(spawnOptions{network: f.network, late: true, merged: f.merged})
	if err != nil || !p.Resources.limited() {
		return ip, err
	}
	// Into its container's cgroup now, while it waits (see start).
	if err := p.joinCgroup(ip, *p.Resources); err != nil {
		ip.discard()
		return nil, err
	}
	return ip, nil
}
