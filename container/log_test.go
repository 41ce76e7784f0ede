package container

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	lf, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	lf.now = func() time.Time { return t0 }
	out, errs := lf.Stream("stdout"), lf.Stream("stderr")
	out.Write([]byte("one\ntw"))
	errs.Write([]byte("err\n"))
	out.Write([]byte("o\nthree"))
	long := strings.Repeat("x", maxLogLine+10)
	errs.Write([]byte(long + "\n"))
	out.Flush()
	errs.Flush()
	if err := lf.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 6 || lines[0] != `{"log":"one\n","stream":"stdout","time":"2024-01-02T03:04:05.000000006Z"}` {
		t.Errorf("log file:\n%s", b)
	}

	var stdout, stderr strings.Builder
	if err := ReadLog(context.Background(), path, &stdout, &stderr, LogOptions{}); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "one\ntwo\nthree" || stderr.String() != "err\n"+long+"\n" {
		t.Errorf("ReadLog: stdout %q, stderr %d bytes", stdout.String(), stderr.Len())
	}
	stdout.Reset()
	stderr.Reset()
	err = ReadLog(context.Background(), path, &stdout, &stderr, LogOptions{Timestamps: true, Follow: true, Running: func() bool { return false }})
	if err != nil || !strings.HasPrefix(stdout.String(), "2024-01-02T03:04:05.000000006Z one\n") {
		t.Errorf("ReadLog -f -t of a stopped container: %q, %v", stdout.String(), err)
	}
	if err := ReadLog(context.Background(), filepath.Join(t.TempDir(), "none"), &stdout, &stderr, LogOptions{}); err != nil {
		t.Errorf("a missing log: %v", err)
	}
}

// TestLogFollow reads a log while it is written, the last line at first
// without its newline: it waits for it rather than dropping it.
func TestLogFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(`{"log":"a\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}` + "\n" + `{"log":"b\n","str`)
	running := true
	polls := 0
	var out strings.Builder
	err = ReadLog(context.Background(), path, &out, &out, LogOptions{Follow: true, Poll: time.Millisecond, Running: func() bool {
		polls++
		switch polls {
		case 2:
			f.WriteString(`eam":"stdout","time":"2024-01-01T00:00:00Z"}` + "\n")
		case 4:
			running = false
		}
		return running
	}})
	if err != nil || out.String() != "a\nb\n" {
		t.Errorf("follow: %q, %v", out.String(), err)
	}
}
