package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/builder-dev/builder/frontend/dockerfile"
	"github.com/builder-dev/builder/store"
)

// maxDockerfileSize bounds what build reads as a Dockerfile: what the
// frontend accepts, so that `-f /dev/zero` or a runaway generator is
// refused at once instead of filling memory.
const maxDockerfileSize = dockerfile.MaxSize

// stdinName is how errors name a Dockerfile read from `-f -`.
const stdinName = "<stdin>"

// dockerfileSource is the Dockerfile a build reads: its bytes and the name
// errors give it (as the user wrote it).
type dockerfileSource struct {
	name string
	data []byte
	// path is the file on disk, "" for stdin: Dockerfile-specific ignore
	// files sit beside it.
	path string
}

// readDockerfile reads the Dockerfile that -f names ("" is
// contextDir/Dockerfile, "-" is stdin). Only a regular file is read, and
// at most maxDockerfileSize bytes of anything: a FIFO, a device or a
// directory fails at once instead of blocking or streaming forever.
func readDockerfile(file, contextDir string, stdin io.Reader) (*dockerfileSource, error) {
	if file == "-" {
		dt, err := readLimited(stdin, stdinName)
		if err != nil {
			return nil, err
		}
		return &dockerfileSource{name: stdinName, data: dt}, nil
	}
	if file == "" {
		file = filepath.Join(contextDir, "Dockerfile")
	}
	f, err := openRegular(file, "Dockerfile")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dt, err := readLimited(f, file)
	if err != nil {
		return nil, err
	}
	return &dockerfileSource{name: file, data: dt, path: file}, nil
}

// openRegular opens the regular file p (what names it in errors), of at
// most maxDockerfileSize bytes. O_NONBLOCK makes the open of a FIFO return
// at once instead of waiting for a writer, and the fstat then refuses it,
// a device (which may never end) and a directory.
func openRegular(p, what string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	fi, err := f.Stat()
	if err == nil {
		switch m := fi.Mode(); {
		case m.IsDir():
			err = fmt.Errorf("read %s %s: is a directory", what, p)
		case !m.IsRegular():
			err = fmt.Errorf("read %s %s: not a regular file (%s)", what, p, fileKind(m))
		case fi.Size() > maxDockerfileSize:
			err = fmt.Errorf("read %s %s: %d bytes is over the limit of %d", what, p, fi.Size(), maxDockerfileSize)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return m.Type().String()
}

// readLimited reads r up to the size limit; more is an error, not a
// truncated Dockerfile.
func readLimited(r io.Reader, name string) ([]byte, error) {
	dt, err := io.ReadAll(io.LimitReader(r, maxDockerfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read Dockerfile %s: %w", name, err)
	}
	if len(dt) > maxDockerfileSize {
		return nil, fmt.Errorf("read Dockerfile %s: over the limit of %d bytes", name, maxDockerfileSize)
	}
	return dt, nil
}

// validateTags checks every -t before anything is built, so that a bad
// one fails the invocation (exit 2) without a build or a write.
func validateTags(tags []string) error {
	for _, t := range tags {
		if err := validateTag(t); err != nil {
			return usageError{err}
		}
	}
	return nil
}

// validateTag accepts what the store can tag: a valid reference
// (go-containerregistry's parser plus the distribution path grammar, as
// store.NormalizeName checks) without a digest.
func validateTag(t string) error {
	n, err := store.NormalizeName(t)
	if err != nil {
		return fmt.Errorf("invalid -t: %w", err)
	}
	if strings.Contains(n, "@") {
		return fmt.Errorf("invalid -t %q: a tag cannot carry a digest", t)
	}
	return nil
}

// absPath is the Dockerfile's absolute path, which identifies its steps in
// the cache records; one from stdin stands where Docker puts it, in the
// context.
func (d *dockerfileSource) absPath(contextDir string) (string, error) {
	if d.path == "" {
		return filepath.Abs(filepath.Join(contextDir, "Dockerfile"))
	}
	return filepath.Abs(d.path)
}
