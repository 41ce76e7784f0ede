package dockerfile

import (
	"strings"
	"testing"
)

// TestCheckSubstitutions checks which words Docker 20.10's lexer rejected,
// following its quoting and escapes.
func TestCheckSubstitutions(t *testing.T) {
	for _, tc := range []struct {
		word   string
		escape rune
		want   string // "" = accepted
	}{
		{"plain $A ${A} ${A:-x} ${A:+x} ${A:?x} $$ $1 ${10} $@", '\\', ""},
		{"${A:-${B:+${C}}}", '\\', ""},
		{"${A-x}", '\\', "missing ':' in substitution"},
		{"${A+x}", '\\', "missing ':' in substitution"},
		{"${A?x}", '\\', "missing ':' in substitution"},
		{"${A#x}", '\\', "missing ':' in substitution"},
		{"${A%%.*}", '\\', "missing ':' in substitution"},
		{"${A//x/y}", '\\', "missing ':' in substitution"},
		{"${A:=x}", '\\', "unsupported modifier (=) in substitution"},
		{"${A:-${B-x}}", '\\', "missing ':' in substitution"},
		{`"${A-x}"`, '\\', "missing ':' in substitution"},
		{`'${A-x}'`, '\\', ""},
		{`\${A-x}`, '\\', ""},
		{`"\${A-x}"`, '\\', ""},
		{"`${A-x}", '`', ""},
		{"\\${A-x}", '`', "missing ':' in substitution"},
		{"${A-", '\\', "missing ':' in substitution"},
		{"${A:", '\\', ""}, // the real lexer reports the missing }
		{"${}", '\\', ""},  // likewise: bad substitution
		{`"unterminated ${A}`, '\\', ""},
	} {
		err := checkSubstitutions(tc.word, tc.escape)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: unexpected error %v", tc.word, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.word, err, tc.want)
		}
	}
}
