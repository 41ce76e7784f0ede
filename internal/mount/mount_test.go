package mount

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// TestPointsUnderFilter: the mount points at or below a directory, escapes
// undone, a sibling sharing the name's prefix left out.
func TestPointsUnderFilter(t *testing.T) {
	const table = `20 1 0:1 / / rw - ext4 /dev/sda rw
21 20 0:2 / /a\040b rw - tmpfs tmpfs rw
22 21 0:3 / /a\040b/c\134d rw - tmpfs tmpfs rw
23 20 0:4 / /a\040bc rw - tmpfs tmpfs rw
`
	for _, tt := range []struct {
		dir  string
		want []string
	}{
		{"/a b", []string{"/a b", `/a b/c\d`}},
		{"/a b/", []string{"/a b", `/a b/c\d`}},
		{"/", []string{"/", "/a b", `/a b/c\d`, "/a bc"}},
		{"/none", []string{}},
	} {
		infos, err := mountinfo.GetMountsFromReader(strings.NewReader(table), mountinfo.PrefixFilter(filepath.Clean(tt.dir)))
		if err != nil {
			t.Fatal(err)
		}
		if got := mountPoints(infos); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("under %q: got %q, want %q", tt.dir, got, tt.want)
		}
	}
}

func TestPointsUnderRoot(t *testing.T) {
	got, err := PointsUnder("/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[0] == "" {
		t.Fatalf("PointsUnder(/) = %q", got)
	}
}
