package dockerfile

import (
	"fmt"
	"reflect"
	"testing"
)

// TestEnvListOrder checks that setting keys again, past the point where
// stale entries are dropped, keeps BuildKit's order (last set last), the
// values and the size.
func TestEnvListOrder(t *testing.T) {
	e := newEnvList()
	for i := range 10 {
		e.set(fmt.Sprint("k", i), "v")
	}
	for range 3 {
		for _, k := range []string{"k3", "k0", "k7"} {
			e.set(k, k+"!")
		}
	}
	c := e.clone()
	e.set("k1", "")
	want := []string{"k2=v", "k4=v", "k5=v", "k6=v", "k8=v", "k9=v", "k3=k3!", "k0=k0!", "k7=k7!", "k1="}
	if got := e.slice(); !reflect.DeepEqual(got, want) {
		t.Errorf("slice %q, want %q", got, want)
	}
	if got := c.slice(); !reflect.DeepEqual(got, []string{"k1=v", "k2=v", "k4=v", "k5=v", "k6=v", "k8=v", "k9=v", "k3=k3!", "k0=k0!", "k7=k7!"}) {
		t.Errorf("clone changed with the original: %q", got)
	}
	if len(e.Keys()) != 10 {
		t.Errorf("keys %q", e.Keys())
	}
	size := 0
	for _, kv := range e.slice() {
		size += len(kv) - 1
	}
	if e.size != size {
		t.Errorf("size %d, want %d", e.size, size)
	}
}
