package dockerfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"unicode"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// The limits keep a conversion bounded in time and memory whatever the
// Dockerfile holds: variables can double a value with every line, so a
// short file could otherwise ask for terabytes.
const (
	// MaxSize is the largest Dockerfile Convert accepts. Real Dockerfiles
	// are kilobytes; a few MiB leaves room for generated ones.
	MaxSize = 4 << 20
	// maxLine is the longest line BuildKit's parser reads (its scanner's
	// buffer less one byte); we check it first to say which line it is.
	maxLine = bufio.MaxScanTokenSize - 1
	// maxExpansion bounds what variables may add to one word.
	maxExpansion = 1 << 20
	// maxEnvSize bounds a stage's environment (keys and values). Linux
	// refuses to exec a process whose arguments and environment pass
	// ARG_MAX (2 MiB with the default stack limit), so no RUN could use a
	// larger one.
	maxEnvSize = 2 << 20
	// maxTotal bounds all text a conversion derives from variables:
	// expanded words plus every RUN's environment and history, each of
	// which copies the variables in effect.
	maxTotal = 128 << 20
	// entryCost is roughly what one environment entry copied into a RUN
	// costs besides its bytes (its string header and allocation, its
	// slot, the lookups and the history text that repeat it), so that
	// many tiny variables copied into many RUNs count for their real
	// memory and work too.
	entryCost = 64
)

// errTooLarge marks the failures of the limits above.
var errTooLarge = errors.New("over the size limit")

// checkSource refuses, before parsing, what the parser would refuse
// without naming a line, or would take too long over.
func (c *converter) checkSource(dt []byte) error {
	if len(dt) == 0 {
		return c.errAt(nil, errors.New("the Dockerfile cannot be empty"))
	}
	if len(dt) > MaxSize {
		return c.errAt(nil, fmt.Errorf("%w: the Dockerfile is %d bytes, more than %d", errTooLarge, len(dt), MaxSize))
	}
	if err := c.checkLines(dt); err != nil {
		return err
	}
	return c.checkDirectives(dt)
}

// checkLines fails at the first line BuildKit's parser cannot read, naming
// it; the parser itself reports no usable line.
func (c *converter) checkLines(dt []byte) error {
	line := 0
	for len(dt) > 0 {
		line++
		n := bytes.IndexByte(dt, '\n')
		if n < 0 {
			n = len(dt)
		}
		if n > maxLine {
			return c.errAtLine(line, fmt.Errorf("line is %d bytes long, more than the maximum of %d", n, maxLine))
		}
		// The parser keeps a NUL as any byte, and it would fail only at
		// exec (no argument or environment can hold one) with an exit
		// code, or end up in a label: a text file never has one, a
		// binary file given as the Dockerfile does.
		if i := bytes.IndexByte(dt[:n], 0); i >= 0 {
			return c.errAtLine(line, fmt.Errorf("NUL byte at column %d: not a text file", i+1))
		}
		dt = dt[min(n+1, len(dt)):]
	}
	return nil
}

// checkDirectives checks the parser directives at the top of the file
// (# escape=, # check=, ...) as the parser will, and fails at the line of
// a bad one: the parser reports them one line off.
func (c *converter) checkDirectives(dt []byte) error {
	var p parser.DirectiveParser
	dt = bytes.TrimPrefix(dt, []byte{0xEF, 0xBB, 0xBF})
	for line := 1; len(dt) > 0; line++ {
		l, rest, _ := bytes.Cut(dt, []byte("\n"))
		dt = rest
		l = bytes.TrimLeftFunc(bytes.TrimSuffix(l, []byte("\r")), unicode.IsSpace)
		d, err := p.ParseLine(l)
		if err != nil {
			return c.errAtLine(line, err)
		}
		if d == nil {
			return nil
		}
		if d.Name == "escape" && d.Value != "`" && d.Value != `\` {
			return c.errAtLine(line, fmt.Errorf("invalid escape token %q in the escape directive: want ` or \\", d.Value))
		}
	}
	return nil
}

func (c *converter) errAtLine(line int, err error) error {
	return c.errAt([]parser.Range{{Start: parser.Position{Line: line}, End: parser.Position{Line: line}}}, err)
}

// budgetEnv hands the lexer variable values until it has taken left
// bytes of them; then it hands out empty values and records that the
// word expanded too far. The lexer cannot be stopped from inside, so the
// budget keeps what it builds small.
type budgetEnv struct {
	shell.EnvGetter
	left int
	over bool
}

func (b *budgetEnv) Get(key string) (string, bool) {
	v, ok := b.EnvGetter.Get(key)
	if b.over || len(v) > b.left {
		b.over = true
		return "", ok
	}
	b.left -= len(v)
	return v, ok
}

// expanded records n more bytes of derived text and fails once the
// conversion's total passes maxTotal.
func (c *converter) expanded(n int) error {
	c.total += n
	if c.total > maxTotal {
		return fmt.Errorf("%w: variables expand to more than %d MiB in all", errTooLarge, maxTotal>>20)
	}
	return nil
}

// checkEnvSize fails when a stage's environment has grown past maxEnvSize.
func checkEnvSize(e *envList) error {
	if e.size > maxEnvSize {
		return fmt.Errorf("%w: the environment is %d bytes, more than %d", errTooLarge, e.size, maxEnvSize)
	}
	return nil
}

// overBudget is the error of a word whose variables expanded past
// maxExpansion; it quotes the start of the word only.
func overBudget(word string) error {
	if len(word) > 60 {
		word = word[:60] + "..."
	}
	return fmt.Errorf("%w: variables in %q expand to more than %d MiB", errTooLarge, word, maxExpansion>>20)
}
