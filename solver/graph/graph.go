package graph

import (
	"fmt"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Definition is a whole build: every stage of the Dockerfile and the one the
// user asked for. Stages the target does not need are still listed; the
// solver skips them.
type Definition struct {
	Stages []*Stage
	Target int // index into Stages
}

// Stage is one FROM block.
type Stage struct {
	Index    int
	Name     string   // the AS name, lowercased; "" when there is none
	Location Location // the FROM line
	From     From
	// Base is the configuration the stage starts from: the base image's, or
	// the final Config of the stage named in FROM; empty for scratch.
	// It is Docker's image type because Healthcheck, OnBuild and Shell, which
	// BuildKit writes and inherits, are not in the OCI config.
	Base  dockerspec.DockerOCIImage
	Steps []*Step
	// Config is the stage's image configuration after its last step, with
	// the history of the base followed by one entry per step. The solver
	// fills in rootfs and corrects EmptyLayer for steps that made no change.
	Config dockerspec.DockerOCIImage
}

// From names what a stage starts from. Exactly one of Scratch, Image (a
// reference to resolve in the store) or Stage >= 0 is set.
type From struct {
	Scratch bool
	Image   string
	Stage   int // -1 unless FROM names an earlier stage
}

// Step is one instruction, fully expanded. Op is nil for config-only
// instructions (ENV, LABEL, CMD, ...), which never make a layer.
type Step struct {
	Location Location
	Text     string // the instruction as written (continuations joined), for progress and errors
	// History is this step's history entry; its EmptyLayer is true for
	// config-only steps and provisional for the others.
	History ocispec.History
	Op      Op
}

// Op is the layer-making part of a step: *Exec, *Copy or *Mkdir.
type Op interface{ isOp() }

// Exec runs a command in a container over the stage's file system (RUN).
type Exec struct {
	Args    []string // already shell-wrapped for the shell form
	Env     []string // the full environment, including build args in scope
	Cwd     string   // absolute
	User    string   // as written in USER ("" = root), resolved at run time
	Network string   // "default", "none" or "host"
}

// Copy copies files into the stage's file system (COPY and ADD).
type Copy struct {
	From    CopySource
	Sources []string // as written after expansion, relative to the source root; may hold wildcards
	Dest    string   // absolute; a trailing "/" is kept because it means "into this directory"
	Chown   string   // --chown as written, resolved against the stage's /etc files; "" = 0:0
	Chmod   string   // --chmod as written (octal); "" = keep modes
	Add     bool     // ADD: local archives are extracted
}

// CopySource says where a Copy reads from. Exactly one is set.
type CopySource struct {
	Context bool   // the build context (after .dockerignore)
	Stage   int    // an earlier stage's result, -1 if not
	Image   string // an image reference, "" if not
}

// Mkdir creates a directory and its missing parents (WORKDIR). Like
// BuildKit it always makes a layer, empty when the directory exists.
type Mkdir struct {
	Path string // absolute
	User string // USER in effect: BuildKit makes the missing directories owned by it
}

func (*Exec) isOp()  {}
func (*Copy) isOp()  {}
func (*Mkdir) isOp() {}

// Location is where an instruction is in a Dockerfile (1-based lines).
type Location struct {
	File      string
	Line, End int
}

func (l Location) String() string {
	if l.Line == 0 {
		return l.File
	}
	return fmt.Sprintf("%s:%d", l.File, l.Line)
}

// Error is a failure the user's Dockerfile caused, carrying where.
type Error struct {
	Location Location
	Err      error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Location, e.Err) }
func (e *Error) Unwrap() error { return e.Err }
