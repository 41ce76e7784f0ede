package store

import (
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/opencontainers/go-digest"
)

// DigestError is a blob whose content does not match its digest: the
// store's file was changed (a flipped bit, a truncation, an edit) after it
// was written. It matches ErrDigest with errors.Is.
type DigestError struct {
	Blob digest.Digest // the digest the blob is stored under
	Got  digest.Digest // the digest of what was read
	Size int64         // the bytes read
}

// ErrDigest is what every DigestError is, for errors.Is.
var ErrDigest = errors.New("content does not match its digest")

func (e *DigestError) Error() string {
	return fmt.Sprintf("blob %s: %v: read %d bytes hashing to %s (the store is damaged: `builder store verify` lists the images using it)",
		e.Blob, ErrDigest, e.Size, e.Got)
}

func (e *DigestError) Is(target error) bool { return target == ErrDigest }

// verifier hashes a blob's bytes as they are read and, at the end, fails
// the read that would return io.EOF when they do not hash to the digest
// the blob is stored under. A caller that reads to EOF therefore never
// takes a tampered blob for a good one; one that stops early (a tar reader
// stops at the end-of-archive blocks) must drain it, see OpenLayer.
type verifier struct {
	r    io.Reader
	want digest.Digest
	h    hash.Hash
	n    int64
	err  error // sticky once the end is reached
}

func newVerifier(r io.Reader, want digest.Digest) *verifier {
	return &verifier{r: r, want: want, h: want.Algorithm().Hash()}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if got := digest.NewDigest(v.want.Algorithm(), v.h); got != v.want {
			err = &DigestError{Blob: v.want, Got: got, Size: v.n}
		}
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

// verifiedFile is an open blob file read through a verifier.
type verifiedFile struct {
	*verifier
	c io.Closer
}

func (f verifiedFile) Close() error { return f.c.Close() }

// drain reads r to its end, so that a verifier under it checks the digest,
// and returns what the end brought (nil for a good blob).
func drain(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
