package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/builder-dev/builder/solver/graph"
)

// TestLimits checks that Dockerfiles that grow values without bound fail
// at the line that passes a limit, with little memory, instead of
// exhausting it.
func TestLimits(t *testing.T) {
	seed := strings.Repeat("a", 64)
	doubling := func(head, instr, name string, n int) string {
		var b strings.Builder
		b.WriteString(head)
		fmt.Fprintf(&b, "%s %s=%s\n", instr, name, seed)
		for range n {
			fmt.Fprintf(&b, "%s %s=$%s$%s\n", instr, name, name, name)
		}
		return b.String()
	}
	// 64 bytes doubled 14 times is 1 MiB, the most one word may expand
	// to; the 15th doubling fails.
	tests := []struct {
		name string
		df   string
		line int
		text string
	}{
		{"ENV doubling", doubling("FROM busybox\n", "ENV", "A", 40), 2 + 15, "expand to more than 1 MiB"},
		{"ARG doubling", doubling("FROM busybox\n", "ARG", "A", 40), 2 + 15, "expand to more than 1 MiB"},
		{"global ARG doubling", doubling("", "ARG", "A", 40) + "FROM busybox\n", 1 + 15, "expand to more than 1 MiB"},
		{"braces and quotes", strings.Replace(doubling("FROM busybox\n", "ENV", "A", 40), "=$A$A", `="${A}${A:-x}"`, -1), 2 + 15, "expand to more than 1 MiB"},
		{"LABEL words", doubling("FROM busybox\n", "ENV", "A", 13) + "LABEL " + strings.Repeat("x=$A$A$A ", 100) + "\n", 2 + 13 + 1, "expand to more than 1 MiB"},
		{"environment", doubling("FROM busybox\n", "ENV", "A", 14) + "ENV B=$A C=$A\n", 2 + 14 + 1, "the environment is"},
		{"global environment", doubling("", "ARG", "A", 14) + "ARG B=$A\nFROM busybox\n", 1 + 14 + 1, "the environment is"},
		// Each RUN copies the 1 MiB of A into its environment: the
		// 124th passes 128 MiB, with the 2 MiB the doublings made.
		{"all RUNs", doubling("FROM busybox\n", "ENV", "A", 14) + strings.Repeat("RUN true\n", 200), 2 + 14 + 124, "more than 128 MiB in all"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Convert(context.Background(), []byte(tc.df), testOptions(&stubResolver{}))
			runtime.ReadMemStats(&after)
			var ge *graph.Error
			if !errors.As(err, &ge) || !errors.Is(err, errTooLarge) {
				t.Fatalf("error %v (%T), want a located size error", err, err)
			}
			if ge.Location.Line != tc.line || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q, want %q at line %d", err, tc.text, tc.line)
			}
			// A bound, not a measurement: without the limits these
			// Dockerfiles ask for terabytes.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<30 {
				t.Errorf("conversion allocated %d MiB", alloc>>20)
			}
		})
	}
}

// TestLimitsAllow checks that values just under the limits convert.
func TestLimitsAllow(t *testing.T) {
	var b strings.Builder
	b.WriteString("FROM busybox\nENV A=" + strings.Repeat("a", 64) + "\n")
	for range 13 {
		b.WriteString("ENV A=$A$A\n") // 512 KiB
	}
	b.WriteString("ARG B=$A$A\nRUN true\n") // 1 MiB, 1.5 MiB in all
	if _, err := Convert(context.Background(), []byte(b.String()), testOptions(&stubResolver{})); err != nil {
		t.Fatal(err)
	}
	big := "FROM busybox\nRUN echo " + strings.Repeat("0123456789abcde\\\n", MaxSize/17-1) + "\n"
	if _, err := Convert(context.Background(), []byte(big), testOptions(&stubResolver{})); err != nil {
		t.Fatalf("a %d byte Dockerfile: %v", len(big), err)
	}
	_, err := Convert(context.Background(), []byte(big+strings.Repeat("#", 17)), testOptions(&stubResolver{}))
	if !errors.Is(err, errTooLarge) {
		t.Fatalf("a Dockerfile over %d bytes: %v", MaxSize, err)
	}
}
