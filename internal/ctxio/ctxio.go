// Package ctxio makes long copies cancellable: a reader that fails with
// ctx's error once ctx is done, checked before every read, so io.Copy of a
// layer or a blob stops within one buffer of a cancel.
//
// It imports only the standard library.
package ctxio

import (
	"context"
	"io"
)

// NewReader returns r, failing with ctx.Err() once ctx is done.
func NewReader(ctx context.Context, r io.Reader) io.Reader {
	return reader{ctx, r}
}

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
