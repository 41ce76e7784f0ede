package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
)

// epoch is every generated file's and directory's mtime, so that a context
// regenerated from the same seed is identical down to its metadata.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// treeSpec says what gen writes.
type treeSpec struct {
	Files   int     // number of regular files
	Bytes   int64   // their exact total size
	Seed    uint64  // same spec and seed => byte-identical tree
	Text    float64 // fraction of files that are compressible text
	PerDir  int     // files per leaf directory
	Fanout  int     // leaf directories per parent directory
	Sigma   float64 // log-normal spread of the sizes
	MinSize int64   // smallest file
}

func genMain(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	out := fs.String("out", "", "directory to create (must not exist or be empty)")
	var s treeSpec
	fs.IntVar(&s.Files, "files", 20000, "number of files")
	fs.Int64Var(&s.Bytes, "bytes", 300_000_000, "total bytes of file content (exact)")
	fs.Uint64Var(&s.Seed, "seed", 1, "seed")
	fs.Float64Var(&s.Text, "text", 0.7, "fraction of files that are text (the rest is random bytes)")
	fs.IntVar(&s.PerDir, "per-dir", 50, "files per leaf directory")
	fs.IntVar(&s.Fanout, "fanout", 20, "leaf directories per parent directory")
	fs.Float64Var(&s.Sigma, "sigma", 1.35, "log-normal sigma of the sizes (1.35: median ~0.4x mean)")
	fs.Int64Var(&s.MinSize, "min", 32, "smallest file size")
	_ = fs.Parse(args)
	if *out == "" || fs.NArg() != 0 {
		fs.Usage()
		os.Exit(2)
	}
	return genTree(*out, s)
}

// genTree writes s under out: files named pNN/qNN/nNNNNN.{txt,bin} (two
// directory levels, PerDir files per leaf), sizes drawn log-normal and scaled
// so that they add up to exactly s.Bytes.
func genTree(out string, s treeSpec) error {
	if s.Files <= 0 || s.PerDir <= 0 || s.Fanout <= 0 || s.Bytes < int64(s.Files)*s.MinSize {
		return errors.New("gen: need files > 0, per-dir > 0, fanout > 0 and bytes >= files*min")
	}
	if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
		return fmt.Errorf("gen: %s is not empty", out)
	}
	r := newRNG(s.Seed)
	sizes := make([]int64, s.Files)
	text := make([]bool, s.Files)
	weights := make([]float64, s.Files)
	var sum float64
	for i := range weights {
		weights[i] = math.Exp(s.Sigma * r.normal())
		sum += weights[i]
		text[i] = r.float() < s.Text
	}
	// Scale to the budget left after every file's minimum, then give the
	// rounding remainder to the last file: the total is exact.
	spare := s.Bytes - int64(s.Files)*s.MinSize
	var used int64
	for i, w := range weights {
		sizes[i] = s.MinSize + int64(w/sum*float64(spare))
		used += sizes[i]
	}
	sizes[s.Files-1] += s.Bytes - used

	words := vocabulary(r, 800)
	buf := make([]byte, 0, 1<<20)
	var dirs []string
	for i := 0; i < s.Files; i++ {
		leaf := i / s.PerDir
		dir := filepath.Join(out, fmt.Sprintf("p%02d", leaf/s.Fanout), fmt.Sprintf("q%02d", leaf%s.Fanout))
		if i%s.PerDir == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("gen: %w", err)
			}
			dirs = append(dirs, dir)
			if leaf%s.Fanout == 0 {
				dirs = append(dirs, filepath.Dir(dir))
			}
		}
		var name string
		if text[i] {
			name = fmt.Sprintf("n%05d.txt", i)
			buf = textContent(buf[:0], r, words, sizes[i])
		} else {
			name = fmt.Sprintf("n%05d.bin", i)
			buf = randomContent(buf[:0], r, sizes[i])
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		if err := os.Chtimes(p, epoch, epoch); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
	}
	// Directory mtimes last: creating their entries moved them.
	for _, d := range append(dirs, out) {
		if err := os.Chtimes(d, epoch, epoch); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
	}
	return nil
}

// vocabulary makes n pseudo identifiers from syllables: text built from them
// compresses like source code (gzip -1 to roughly a third).
func vocabulary(r *rng, n int) []string {
	syll := []string{"ar", "be", "co", "da", "el", "fi", "go", "ha", "in", "jo", "ka", "li",
		"mo", "nu", "op", "pa", "qu", "re", "si", "to", "un", "ve", "wa", "xe", "yo", "ze"}
	out := make([]string, n)
	for i := range out {
		k := 1 + r.intn(4)
		var w []byte
		for j := 0; j < k; j++ {
			w = append(w, syll[r.intn(len(syll))]...)
		}
		if r.intn(3) == 0 {
			w = append(w, '_')
			w = append(w, syll[r.intn(len(syll))]...)
		}
		out[i] = string(w)
	}
	return out
}

// textContent appends size bytes of line-oriented pseudo code.
func textContent(buf []byte, r *rng, words []string, size int64) []byte {
	depth := 0
	for int64(len(buf)) < size {
		for k := 0; k < depth; k++ {
			buf = append(buf, "    "...)
		}
		switch r.intn(8) {
		case 0:
			buf = fmt.Appendf(buf, "def %s(%s, %s):", words[r.intn(len(words))], words[r.intn(len(words))], words[r.intn(len(words))])
			if depth < 6 {
				depth++
			}
		case 1:
			buf = fmt.Appendf(buf, "return %s", words[r.intn(len(words))])
			if depth > 0 {
				depth--
			}
		case 2:
			buf = fmt.Appendf(buf, "%s = %d", words[r.intn(len(words))], r.intn(1_000_000))
		default:
			n := 2 + r.intn(6)
			for k := 0; k < n; k++ {
				if k > 0 {
					buf = append(buf, ' ')
				}
				buf = append(buf, words[r.intn(len(words))]...)
			}
		}
		buf = append(buf, '\n')
	}
	return buf[:size]
}

// randomContent appends size incompressible bytes.
func randomContent(buf []byte, r *rng, size int64) []byte {
	for int64(len(buf)) < size {
		v := r.next()
		for k := 0; k < 8; k++ {
			buf = append(buf, byte(v>>(8*k)))
		}
	}
	return buf[:size]
}

// rng is splitmix64: a fixed, tiny algorithm, so that a seed gives the same
// tree with every Go release (math/rand/v2 does not promise that for derived
// values such as NormFloat64 or IntN).
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed * 0x2545f4914f6cdd1d} }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float is uniform in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// intn is uniform in [0, n) (modulo bias is irrelevant at these n).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// normal is a standard normal deviate (Box-Muller).
func (r *rng) normal() float64 {
	u := 1 - r.float() // (0, 1]: Log(0) would be -Inf
	v := r.float()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*v)
}
