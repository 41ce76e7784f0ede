package runner

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
)

// Pool runs containers as Run and Start do, keeping one init started ahead
// so that the next container skips the init's process start-up (clone with
// new namespaces, exec, Go runtime start: about 8 ms on a small VM, most of
// a trivial RUN step's cost). The spare starts when one is taken, while
// the container that took it sets up and runs, and waits, doing nothing,
// for its spec. Only containers whose init needs nothing fixed at start can
// take it: no terminal, no stdin, and output streams that are writers other
// than files (see prestartable). Resource limits do not disqualify
// it: the spare joins the container's cgroup when it gets its spec, before
// it does anything, and opens the files it writes at exec itself. Close kills
// the spare. A spare waits in the builder's mount namespace: it makes its
// own only when its container comes, so it holds no copy of what the
// builder mounts and unmounts meanwhile.
type Pool struct {
	// Resources are the limits of every container the pool runs whose
	// Spec has none: a build's limits for each of its RUN steps.
	Resources *Resources

	mu           sync.Mutex
	spare        *initProc
	spareFlavour flavour // what the spare was started with
	filling      bool
	closed       bool
	fills        sync.WaitGroup
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

// Close kills the spare, if any; the pool then starts no more.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	spare := p.spare
	p.spare = nil
	p.mu.Unlock()
	p.fills.Wait() // a fill in flight sees closed and discards its init
	if spare != nil {
		spare.discard()
	}
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

// joinNewCgroup makes a cgroup with r's limits and moves the init into
// it. The files the init writes at exec are closed here: it opens them
// itself once it has its container.
func (ip *initProc) joinNewCgroup(r Resources) error {
	cg, err := newCgroup(newCgroupName(), r)
	if err != nil {
		return err
	}
	cg.closeAtExec()
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
	if p.closed {
		return nil
	}
	got := p.spare
	p.spare = nil
	if got != nil && p.spareFlavour != f {
		p.fills.Add(1)
		go func(ip *initProc) {
			defer p.fills.Done()
			ip.discard()
		}(got)
		got = nil
	}
	if !p.filling {
		p.filling = true
		p.fills.Add(1)
		go p.fill(f)
	}
	return got
}

// fill starts a spare init. A failure is left for the next Start, which
// then starts its own init and reports it.
func (p *Pool) fill(f flavour) {
	defer p.fills.Done()
	ip, err := spawn(spawnOptions{network: f.network, late: true, merged: f.merged})
	if err == nil && p.Resources.limited() {
		// Into its container's cgroup now, while it waits (see start).
		if err = ip.joinNewCgroup(*p.Resources); err != nil {
			ip.discard()
		}
	}
	p.mu.Lock()
	p.filling = false
	keep := err == nil && !p.closed && p.spare == nil
	if keep {
		p.spare, p.spareFlavour = ip, f
	}
	p.mu.Unlock()
	if err == nil && !keep {
		ip.discard()
	}
}
