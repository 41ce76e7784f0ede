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
