// Command benchtool is the Go half of bench/run.sh: it generates the
// scenarios' deterministic contexts, times commands (wall clock and peak
// RSS), reads builder's --progress json logs and turns run.sh's raw.tsv into
// the table of medians.
//
//	benchtool gen -out DIR -files 20000 -bytes 300000000 -seed 1
//	benchtool progress [-steps] LOG
//	benchtool summarize -targets targets.tsv RAW.tsv
//	benchtool time -o FILE CMD [ARG...]
//
// It is a tool of the benchmark harness, not part of builder: it imports
// nothing from the rest of the module.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = genMain(os.Args[2:])
	case "progress":
		err = progressMain(os.Args[2:])
	case "summarize":
		err = summarizeMain(os.Args[2:])
	case "time":
		err = timeMain(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchtool gen|time|progress|summarize [flags] (see -h of each)")
	os.Exit(2)
}
