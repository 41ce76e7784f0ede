package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// EnvVar names the point to crash at.
const EnvVar = "BUILDER_CRASHPOINT"

var (
	armed string // the point's name, "" when none is set
	nth   int64  = 1
	hits  atomic.Int64
)

func init() { armed, nth = parse(os.Getenv(EnvVar)) }

// parse reads "NAME" or "NAME@N" (N >= 1); anything else after '@' is
// taken as part of the name, which then matches no point.
func parse(v string) (string, int64) {
	name, count, ok := strings.Cut(v, "@")
	if !ok {
		return v, 1
	}
	n, err := strconv.ParseInt(count, 10, 64)
	if err != nil || n < 1 {
		return v, 1
	}
	return name, n
}

// Hit kills the process with SIGKILL, as a crash or `kill -9` would, if
// name is the armed point and this is its N-th hit. SIGKILL leaves no
// chance for deferred cleanup, which is the point.
func Hit(name string) {
	if armed == "" || name != armed {
		return
	}
	if hits.Add(1) != nth {
		return
	}
	_ = unix.Kill(os.Getpid(), unix.SIGKILL)
	select {} // the signal is on its way; nothing more may happen
}
