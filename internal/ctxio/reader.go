package ctxio

import (
	"context"
	"io"
)

// Reader is r that fails with ctx's error once ctx is done. The check is
// per Read, so a copy stops within one buffer of the cancellation.
func Reader(ctx context.Context, r io.Reader) io.Reader {
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
