package seccomp

//go:generate go run gen_tables.go

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Default compiles Docker's default profile for a container whose bounding
// set is caps (names like "CAP_CHOWN"): the capabilities decide which
// rules apply (CAP_SYS_ADMIN would allow mount, unshare, ...), as in
// Docker, where the profile follows the container's capabilities. It
// compiles once per set of capabilities and process (about half a
// millisecond); callers must not change the program it returns.
func Default(caps []string) ([]unix.SockFilter, error) {
	key := strings.Join(caps, ",")
	if v, ok := compiled.Load(key); ok {
		return v.(func() ([]unix.SockFilter, error))()
	}
	caps = slices.Clone(caps)
	v, _ := compiled.LoadOrStore(key, sync.OnceValues(func() ([]unix.SockFilter, error) {
		rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
		p, err := seccomp.GetDefaultProfile(rs)
		if err != nil {
			return nil, fmt.Errorf("seccomp: resolve the default profile: %w", err)
		}
		return Compile(p)
	}))
	return v.(func() ([]unix.SockFilter, error))()
}

// compiled holds Default's programs by capability set.
var compiled sync.Map
