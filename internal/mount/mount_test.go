package mount

import "testing"

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/a\040b/c\134d`); got != `/a b/c\d` {
		t.Errorf("unescapeMountinfo = %q", got)
	}
	if got := unescapeMountinfo(`/plain`); got != "/plain" {
		t.Errorf("unescapeMountinfo = %q", got)
	}
}
