package stopsignal

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for s, want := range map[string]unix.Signal{
		"": unix.SIGTERM, "SIGUSR1": unix.SIGUSR1, "usr2": unix.SIGUSR2, "9": unix.SIGKILL,
		"SIGRTMIN": 34, "RTMIN+3": 37, "SIGRTMAX-1": 63,
	} {
		if got, err := Parse(s); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, bad := range []string{"NOPE", "0", "-1", "65", "RTMIN+99"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
