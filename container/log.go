package container

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// maxLogLine is where a line without a newline is cut into log entries, as
// Docker does (16 KiB), so a process writing no newlines cannot grow the
// monitor's memory.
const maxLogLine = 16 << 10

// logEntry is one line of a json-file log, Docker's format.
type logEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// LogFile appends a container's output to its log as JSON lines, one per
// line of output (Docker's json-file driver): {"log":"text\n",
// "stream":"stdout","time":"..."}.
type LogFile struct {
	mu  sync.Mutex
	f   *os.File
	err error
	now func() time.Time
}

// OpenLog opens (creating) the log at path for appending.
func OpenLog(path string) (*LogFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	return &LogFile{f: f, now: time.Now}, nil
}

// Stream returns a writer for one stream ("stdout" or "stderr"); a
// partial last line waits for the next write or Close.
func (l *LogFile) Stream(name string) *LogStream {
	return &LogStream{l: l, name: name}
}

// write appends one entry with one write(2), so a reader following the
// file sees whole lines but for the one being written.
func (l *LogFile) write(stream string, line []byte) {
	b, err := json.Marshal(logEntry{Log: string(line), Stream: stream, Time: l.now().UTC()})
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		// The container's output must not stop because its log cannot be
		// written (disk full): the rest of the output is dropped.
		l.err = err
	}
}

// Close closes the file. Flush the streams first.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.f.Close()
	if l.err != nil {
		return fmt.Errorf("write container log: %w", l.err)
	}
	return err
}

// LogStream is the writer of one stream of a LogFile.
type LogStream struct {
	l       *LogFile
	name    string
	mu      sync.Mutex
	partial []byte
}

// Write logs every complete line of p; it never fails, so the process's
// output keeps flowing whatever happens to the log.
func (s *LogStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.partial = append(s.partial, p...)
			for len(s.partial) >= maxLogLine {
				s.l.write(s.name, s.partial[:maxLogLine])
				s.partial = append(s.partial[:0], s.partial[maxLogLine:]...)
			}
			break
		}
		line := append(s.partial, p[:i+1]...)
		for len(line) > maxLogLine {
			s.l.write(s.name, line[:maxLogLine])
			line = line[maxLogLine:]
		}
		s.l.write(s.name, line)
		s.partial = s.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

// Flush logs a partial last line.
func (s *LogStream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.partial) > 0 {
		s.l.write(s.name, s.partial)
		s.partial = nil
	}
}

// LogOptions tune ReadLog.
type LogOptions struct {
	// Follow keeps reading as the log grows while Running says the
	// container still runs.
	Follow  bool
	Running func() bool
	// Timestamps prefixes each line with its time (RFC 3339, nanoseconds).
	Timestamps bool
	// Poll is how often a followed log is read again (default 100ms).
	Poll time.Duration
}

// ReadLog copies the log at path to stdout and stderr, each entry to the
// stream it came from. A missing log is an empty one.
func ReadLog(ctx context.Context, path string, stdout, stderr io.Writer, opts LogOptions) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open container log: %w", err)
	}
	defer f.Close()
	if opts.Poll == 0 {
		opts.Poll = 100 * time.Millisecond
	}
	br := bufio.NewReader(f)
	var pending []byte
	for {
		// Drain what is there; a line without its newline is still being
		// written and waits for the next round.
		for {
			chunk, err := br.ReadBytes('\n')
			pending = append(pending, chunk...)
			if err != nil {
				if err != io.EOF {
					return fmt.Errorf("read container log: %w", err)
				}
				break
			}
			var e logEntry
			if jerr := json.Unmarshal(pending, &e); jerr == nil {
				w := stdout
				if e.Stream == "stderr" {
					w = stderr
				}
				line := e.Log
				if opts.Timestamps {
					line = e.Time.Format(time.RFC3339Nano) + " " + line
				}
				if _, err := io.WriteString(w, line); err != nil {
					return err
				}
			}
			pending = pending[:0]
		}
		if !opts.Follow {
			return nil
		}
		// Read once more after the container is seen stopped: its last
		// lines may have landed after the previous read.
		running := opts.Running == nil || opts.Running()
		if !running {
			if _, err := br.Peek(1); err == io.EOF {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(opts.Poll):
		}
	}
}
