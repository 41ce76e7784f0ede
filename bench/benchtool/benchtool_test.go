package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// treeSum hashes names, sizes, mtimes and contents of a tree.
func treeSum(t *testing.T, dir string) (string, int64, int) {
	t.Helper()
	h := sha256.New()
	var total int64
	var files int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %d %d\n", rel, info.Size(), info.ModTime().Unix())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
			total += info.Size()
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), total, files
}

func TestGenDeterministic(t *testing.T) {
	spec := treeSpec{Files: 300, Bytes: 2_000_000, Seed: 7, Text: 0.7, PerDir: 50, Fanout: 4, Sigma: 1.35, MinSize: 32}
	a, b := t.TempDir(), t.TempDir()
	if err := genTree(a, spec); err != nil {
		t.Fatal(err)
	}
	if err := genTree(b, spec); err != nil {
		t.Fatal(err)
	}
	sa, total, files := treeSum(t, a)
	sb, _, _ := treeSum(t, b)
	if sa != sb {
		t.Error("same seed, different trees")
	}
	if total != spec.Bytes || files != spec.Files {
		t.Errorf("got %d files, %d bytes; want %d, %d", files, total, spec.Files, spec.Bytes)
	}
	spec.Seed++
	c := t.TempDir()
	if err := genTree(c, spec); err != nil {
		t.Fatal(err)
	}
	if sc, _, _ := treeSum(t, c); sc == sa {
		t.Error("another seed, same tree")
	}
	if err := genTree(a, spec); err == nil {
		t.Error("gen into a non-empty dir: want an error")
	}
}

func TestReadProgress(t *testing.T) {
	// Two RUNs overlapping for 1 s of their 2 s each, a cached step, a
	// COPY, and lines that are not progress.
	log := `$ builder build ...
{"vertex":1,"name":"[a 1/1] RUN x","status":"start","time":"2026-01-01T00:00:00Z"}
{"vertex":2,"name":"[b 1/1] RUN y","status":"start","time":"2026-01-01T00:00:01Z"}
{"vertex":2,"name":"[b 1/1] RUN y","status":"log","time":"2026-01-01T00:00:01.5Z","data":"aGkK"}
{"vertex":1,"name":"[a 1/1] RUN x","status":"done","time":"2026-01-01T00:00:02Z","duration":2000000000}
{"vertex":2,"name":"[b 1/1] RUN y","status":"done","time":"2026-01-01T00:00:03Z","duration":2000000000}
{"vertex":3,"name":"[c 1/2] RUN z","status":"start","time":"2026-01-01T00:00:03Z"}
{"vertex":3,"name":"[c 1/2] RUN z","status":"cached","time":"2026-01-01T00:00:03Z"}
{"vertex":4,"name":"[c 2/2] COPY --from=a /x /x","status":"start","time":"2026-01-01T00:00:03Z"}
{"vertex":4,"name":"[c 2/2] COPY --from=a /x /x","status":"done","time":"2026-01-01T00:00:04Z"}
{"status":"image","time":"2026-01-01T00:00:04Z"}
Loaded image: x
`
	st, err := readProgress(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if st.Cached != 1 || st.Ran != 3 || st.Failed != 0 {
		t.Errorf("cached/ran/failed = %d/%d/%d, want 1/3/0", st.Cached, st.Ran, st.Failed)
	}
	// 4 s of RUN time over the 3 s in which any RUN ran.
	if st.MaxConc != 2 || st.Par < 1.33 || st.Par > 1.34 {
		t.Errorf("maxconc %d par %.3f, want 2 and 1.333", st.MaxConc, st.Par)
	}
}

func TestSummarize(t *testing.T) {
	raw := "scenario\tmode\trep\twall_s\trc\trss_kb\tcached\tran\tfailed\tmaxconc\tpar\tcache\tload1\tout_bytes\n" +
		"S3\twarm\t1\t0.040\t0\t10240\t17\t0\t0\t0\t0\tok\t1\t\n" +
		"S3\twarm\t2\t0.060\t0\t10240\t17\t0\t0\t0\t0\tok\t1\t\n" +
		"S3\twarm\t3\t0.045\t0\t10240\t17\t0\t0\t0\t0\tok\t1\t\n" +
		"S6\tcold\t1\t1.0\t0\t10240\t0\t50\t0\t1\t1\tok\t1\t\n" +
		"S6\tcold\t2\t1.0\t1\t10240\t0\t50\t0\t1\t1\tok\t1\t\n"
	reps, err := readRaw(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	targets := []target{{"S3", "warm", "time", 0.05}, {"S6", "cold", "time", 1.5}}
	var out bytes.Buffer
	missed := summarize(&out, reps, targets)
	// S3 passes on its median (0.045); S6 is fast but one build failed.
	if missed != 1 {
		t.Errorf("missed = %d, want 1\n%s", missed, out.String())
	}
	for _, want := range []string{"| S3 | warm | 3 | 0.045 | 0.040 | 0.060 | 10 | 17/0 |", "| S6 | cold | 1/2 ok |", "PASS", "**FAIL** (time)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
