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
	// Stat before opening: opening a FIFO for reading blocks until a
	// writer comes, and a device may never end.
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	if err := checkRegular(file, fi); err != nil {
		return nil, err
	}
	// O_NONBLOCK: should the path be swapped for a FIFO after the stat,
	// the open still returns at once, and the fstat below refuses it.
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	if err := checkRegular(file, fi); err != nil {
		return nil, err
	}
	dt, err := readLimited(f, file)
	if err != nil {
		return nil, err
	}
	return &dockerfileSource{name: file, data: dt, path: file}, nil
}

func checkRegular(name string, fi fs.FileInfo) error {
	switch m := fi.Mode(); {
	case m.IsDir():
		return fmt.Errorf("read Dockerfile %s: is a directory", name)
	case !m.IsRegular():
		return fmt.Errorf("read Dockerfile %s: not a regular file (%s)", name, fileKind(m))
	case fi.Size() > maxDockerfileSize:
		return fmt.Errorf("read Dockerfile %s: %d bytes is over the limit of %d", name, fi.Size(), maxDockerfileSize)
	}
	return nil
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
