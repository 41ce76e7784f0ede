// Command builder-init is the container init of builder's RUN steps and
// containers, installed next to the builder binary: a program of its own so
// that each container starts a small binary rather than the whole builder
// (see runner.InitBinaryName).
package main

import (
	"fmt"
	"os"

	"github.com/builder-dev/builder/runner"
)

func main() {
	// Started by the builder, this never returns.
	runner.Init()
	fmt.Fprintln(os.Stderr, "builder-init: the builder starts this as a container's init; it is not run by hand")
	os.Exit(2)
}
