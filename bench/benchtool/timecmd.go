package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// timeMain runs a command and writes "WALL_SECONDS MAXRSS_KIB" to -o, as
// /usr/bin/time -f '%e %M' would, but with the wall clock read right around
// the child's fork and reap: GNU time's 10 ms resolution and the ~7 ms of
// starting time itself plus a shell around it are too coarse for the no-op
// rebuild targets (tens of ms). This process's own start-up is outside the
// measured interval.
func timeMain(args []string) error {
	fs := flag.NewFlagSet("time", flag.ExitOnError)
	out := fs.String("o", "", "file for the result line")
	_ = fs.Parse(args)
	if *out == "" || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: benchtool time -o FILE CMD [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr

	// The command gets the signals meant for the whole run (a ^C reaches
	// the process group anyway); we stay to reap it and report.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	wall := time.Since(start)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return err
	}
	// wait4's rusage: ru_maxrss is the largest resident set of the child
	// and of the descendants it reaped, in KiB (what GNU time's %M shows).
	var maxRSS int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxRSS = ru.Maxrss
	}
	if err := os.WriteFile(*out, fmt.Appendf(nil, "%.6f %d\n", wall.Seconds(), maxRSS), 0o644); err != nil {
		return err
	}
	code := cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	os.Exit(code)
	return nil
}
