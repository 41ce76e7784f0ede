package progress

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// sanitize makes one line of a program's output safe to draw inside the
// live view: a line with carriage returns (a progress bar) shows what the
// terminal would show last, escape sequences and control characters are
// dropped (they would move the cursor under our feet), tabs become spaces.
func sanitize(s string) string {
	if strings.IndexByte(s, '\r') >= 0 {
		parts := strings.Split(s, "\r")
		s = parts[len(parts)-1]
		for i := len(parts) - 1; i >= 0 && s == ""; i-- {
			s = parts[i]
		}
	}
	var b strings.Builder
	col := 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b:
			i += escapeLen(s[i:])
			continue
		case r == '\t':
			pad := 8 - col%8
			b.WriteString(strings.Repeat(" ", pad))
			col += pad
		case r == utf8.RuneError && n == 1:
			b.WriteByte('?')
			col++
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
		default:
			b.WriteRune(r)
			col += runeWidth(r)
		}
		i += n
	}
	return b.String()
}

// escapeLen returns the length of the escape sequence at the start of s
// (which begins with ESC): CSI "ESC [ params final", OSC "ESC ] ... BEL" or
// "... ESC \", or a two-byte escape.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		for i := 2; i < len(s); i++ {
			if s[i] >= 0x40 && s[i] <= 0x7e {
				return i + 1
			}
		}
		return len(s)
	case ']':
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return len(s)
	}
	return 2
}

// runeWidth is the number of terminal columns r takes: 0 for combining
// marks, 2 for the East Asian wide ranges and emoji, else 1. An
// approximation of wcwidth that is right for what build output contains.
func runeWidth(r rune) int {
	switch {
	case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || r == 0x200b:
		return 0
	case r >= 0x1100 && r <= 0x115f,
		r >= 0x2e80 && r <= 0xa4cf && r != 0x303f,
		r >= 0xac00 && r <= 0xd7a3,
		r >= 0xf900 && r <= 0xfaff,
		r >= 0xfe30 && r <= 0xfe4f,
		r >= 0xff00 && r <= 0xff60,
		r >= 0xffe0 && r <= 0xffe6,
		r >= 0x1f300 && r <= 0x1f64f,
		r >= 0x1f900 && r <= 0x1faff,
		r >= 0x20000 && r <= 0x3fffd:
		return 2
	}
	return 1
}

func textWidth(s string) int {
	w := 0
	for _, r := range s {
		w += runeWidth(r)
	}
	return w
}

// truncate cuts s to at most width columns, marking the cut with "...".
func truncate(s string, width int) string {
	if textWidth(s) <= width {
		return s
	}
	if width <= 0 {
		return ""
	}
	ellipsis := "..."
	if width <= len(ellipsis) {
		ellipsis = ""
	}
	limit := width - len(ellipsis)
	var b strings.Builder
	col := 0
	for _, r := range s {
		rw := runeWidth(r)
		if col+rw > limit {
			break
		}
		b.WriteRune(r)
		col += rw
	}
	return b.String() + ellipsis
}
