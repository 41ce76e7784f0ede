package dockerfile

import (
	"fmt"
	"unicode"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Docker 20.10's BuildKit expands words with an older shell lexer than the
// one we import. For the forms both know the results agree, but the old one
// knows only ${VAR}, ${VAR:-word}, ${VAR:+word} and ${VAR:?word}: the POSIX
// forms without the colon and the pattern forms (${VAR#p}, ${VAR%p},
// ${VAR/p/r}) fail the build with "missing ':' in substitution", any other
// modifier with "unsupported modifier". checkSubstitutions finds those
// forms so that we fail where Docker 20.10 fails, instead of expanding what
// it never could.

// processWord expands word against env as ProcessWord does, after
// rejecting the substitutions Docker 20.10 rejected.
func (c *converter) processWord(word string, env shell.EnvGetter) (string, error) {
	if err := checkSubstitutions(word, c.escape); err != nil {
		return "", err
	}
	be := &budgetEnv{EnvGetter: env, left: maxExpansion}
	w, _, err := c.lex.ProcessWord(word, be)
	if be.over {
		return "", overBudget(word)
	}
	if err != nil {
		return "", err
	}
	return w, c.expanded(len(w))
}

// processWords is processWord for words that are split like a shell's
// (EXPOSE).
func (c *converter) processWords(word string, env shell.EnvGetter) ([]string, error) {
	if err := checkSubstitutions(word, c.escape); err != nil {
		return nil, err
	}
	be := &budgetEnv{EnvGetter: env, left: maxExpansion}
	ws, err := c.lex.ProcessWords(word, be)
	if be.over {
		return nil, overBudget(word)
	}
	if err != nil {
		return nil, err
	}
	n := 0
	for _, w := range ws {
		n += len(w)
	}
	return ws, c.expanded(n)
}

// checkSubstitutions returns Docker 20.10's error for the first
// substitution in word that its lexer did not support, or nil. It follows
// that lexer's reading of quotes and escapes; whatever else is wrong with
// word (an unterminated quote, ${}) is left for the real lexer to report.
func checkSubstitutions(word string, escape rune) error {
	s := &substScanner{rs: []rune(word), escape: escape}
	if err := s.scan(0); err != nil {
		return fmt.Errorf("failed to process %q: %w", word, err)
	}
	return nil
}

type substScanner struct {
	rs     []rune
	pos    int
	escape rune
}

const eof = rune(-1)

func (s *substScanner) peek() rune {
	if s.pos >= len(s.rs) {
		return eof
	}
	return s.rs[s.pos]
}

func (s *substScanner) next() rune {
	r := s.peek()
	if r != eof {
		s.pos++
	}
	return r
}

// scan reads up to stop (0 for the end of the word) and checks every
// substitution on the way, nested ones included.
func (s *substScanner) scan(stop rune) error {
	for {
		switch ch := s.peek(); {
		case ch == eof:
			return nil
		case stop != 0 && ch == stop:
			s.next()
			return nil
		case ch == '\'':
			s.next()
			for r := s.next(); r != '\'' && r != eof; r = s.next() {
			}
		case ch == '"':
			if err := s.doubleQuoted(); err != nil {
				return err
			}
		case ch == '$':
			if err := s.dollar(); err != nil {
				return err
			}
		default:
			if s.next() == s.escape {
				s.next()
			}
		}
	}
}

func (s *substScanner) doubleQuoted() error {
	s.next()
	for {
		switch ch := s.peek(); ch {
		case eof:
			return nil
		case '"':
			s.next()
			return nil
		case '$':
			if err := s.dollar(); err != nil {
				return err
			}
		default:
			if s.next() == s.escape {
				if r := s.peek(); r == '"' || r == '$' || r == s.escape {
					s.next()
				}
			}
		}
	}
}

func (s *substScanner) dollar() error {
	s.next()
	if s.peek() != '{' {
		s.name()
		return nil
	}
	s.next()
	switch s.peek() {
	case eof, '{', '}', ':':
		return nil // a syntax error both lexers report
	}
	s.name()
	switch ch := s.next(); ch {
	case '}':
		return nil
	case ':':
		mod := s.next()
		if mod == eof {
			return nil
		}
		if err := s.scan('}'); err != nil {
			return err
		}
		switch mod {
		case '-', '+', '?':
			return nil
		}
		return fmt.Errorf("unsupported modifier (%c) in substitution", mod)
	default:
		return fmt.Errorf("missing ':' in substitution")
	}
}

// name reads a variable name as the lexer does: digits, one special
// parameter, or letters, digits and underscores.
func (s *substScanner) name() {
	ch := s.peek()
	switch {
	case ch == eof:
		return
	case unicode.IsDigit(ch):
		for unicode.IsDigit(s.peek()) {
			s.next()
		}
		return
	case isSpecialParam(ch):
		s.next()
		return
	}
	for ch := s.peek(); ch != eof && (unicode.IsLetter(ch) || unicode.IsDigit(ch) || ch == '_'); ch = s.peek() {
		s.next()
	}
}

func isSpecialParam(ch rune) bool {
	switch ch {
	case '@', '*', '#', '?', '-', '$', '!', '0':
		return true
	}
	return false
}
