package s3tier

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// ctxBody delivers chunks as the test sends them, and fails with the
// context's cause once the request context is canceled, as an HTTP body
// does.
type ctxBody struct {
	ctx    context.Context
	chunks chan []byte
}

func (b *ctxBody) Read(p []byte) (int, error) {
	select {
	case c, ok := <-b.chunks:
		if !ok {
			return 0, io.EOF
		}
		return copy(p, c), nil
	case <-b.ctx.Done():
		return 0, context.Cause(b.ctx)
	}
}

func (b *ctxBody) Close() error { return nil }

// TestIdleReader proves the idle-read timeout cancels the request only when
// a Read waits longer than the timeout (not while the consumer pauses),
// reports ErrBodyStalled, and that Close releases the request context.
func TestIdleReader(t *testing.T) {
	const timeout = 100 * time.Millisecond
	newBody := func() (*idleReader, *ctxBody, context.Context) {
		ctx, cancel := context.WithCancelCause(t.Context())
		b := &ctxBody{ctx: ctx, chunks: make(chan []byte, 16)}
		return newIdleReader(b, timeout, cancel, "k"), b, ctx
	}

	// Bytes that keep arriving within the timeout, and consumer pauses
	// longer than it, never trip it.
	r, b, ctx := newBody()
	go func() {
		for range 6 {
			time.Sleep(timeout / 2)
			b.chunks <- []byte("x")
		}
		close(b.chunks)
	}()
	buf := make([]byte, 8)
	n := 0
	for {
		m, err := r.Read(buf)
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read of a steady body: %v", err)
		}
		time.Sleep(2 * timeout) // the consumer pauses: not the server's silence
	}
	if n != 6 || ctx.Err() != nil {
		t.Fatalf("read %d bytes (want 6), request context %v (want live)", n, ctx.Err())
	}
	if err := r.Close(); err != nil || ctx.Err() == nil {
		t.Fatalf("Close: %v; request context %v, want canceled", err, ctx.Err())
	}

	// A silent body fails after about timeout, and stays failed.
	r, _, ctx = newBody()
	start := time.Now()
	_, err := r.Read(buf)
	if !errors.Is(err, ErrBodyStalled) {
		t.Fatalf("read of a silent body: %v, want ErrBodyStalled", err)
	}
	if d := time.Since(start); d < timeout || d > 50*timeout {
		t.Fatalf("silent body failed after %v, want about %v", d, timeout)
	}
	if !errors.Is(context.Cause(ctx), ErrBodyStalled) {
		t.Fatalf("request context cause %v, want ErrBodyStalled", context.Cause(ctx))
	}
	if _, err := r.Read(buf); !errors.Is(err, ErrBodyStalled) {
		t.Fatalf("read after a stall: %v, want ErrBodyStalled", err)
	}
	_ = r.Close()
}
