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
