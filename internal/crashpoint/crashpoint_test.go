package crashpoint

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		n    int64
	}{
		{"", "", 1},
		{"store.blob.staged", "store.blob.staged", 1},
		{"store.blob.staged@3", "store.blob.staged", 3},
		{"x@0", "x@0", 1},
		{"x@y", "x@y", 1},
	} {
		name, n := parse(tc.in)
		if name != tc.name || n != tc.n {
			t.Errorf("parse(%q) = %q, %d; want %q, %d", tc.in, name, n, tc.name, tc.n)
		}
	}
}

// An unarmed or other point does nothing (the process is still here).
func TestHitUnarmed(t *testing.T) {
	armed, nth = "other", 1
	defer func() { armed, nth = "", 1 }()
	Hit("store.blob.staged")
	armed = ""
	Hit("")
}
