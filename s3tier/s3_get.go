package s3tier

// Ranged reads: GetRange, with the per-attempt idle bound on bodies
// (S3Config.AttemptTimeout) and exact-length bodies.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func (s *s3Store) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if off < 0 {
		return nil, fmt.Errorf("get: %w: %s: offset %d", ErrInvalidRange, key, off)
	}
	if length == 0 {
		// S3 cannot express an empty range; check the object and offset.
		info, err := s.Head(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("get: %w", err)
		}
		if _, err := checkRange(key, info.Size, off, 0); err != nil {
			return nil, fmt.Errorf("get: %w", err)
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.key(key))}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	// The request's own context outlives GetObject: the body streams under
	// it, and the idle-read timer cancels it when the body stalls.
	rctx, cancel := context.WithCancelCause(ctx)
	out, err := s.client.GetObject(rctx, in)
	if err != nil {
		cancel(nil)
		if isInvalidRange(err) {
			if length < 0 {
				// Reading from exactly the end is an empty read, not an error.
				if info, herr := s.Head(ctx, key); herr == nil && info.Size == off {
					return io.NopCloser(bytes.NewReader(nil)), nil
				}
			}
			return nil, fmt.Errorf("get: %w: %s: offset %d length %d: %w", ErrInvalidRange, key, off, length, err)
		}
		return nil, mapErr(OpGet, key, err)
	}
	want := length
	if length < 0 {
		// The object's size is in Content-Range for ranged responses.
		total, ok := totalFromContentRange(aws.ToString(out.ContentRange))
		if in.Range == nil {
			total, ok = aws.ToInt64(out.ContentLength), out.ContentLength != nil
		}
		if !ok {
			_ = out.Body.Close()
			cancel(nil)
			return nil, fmt.Errorf("get %s: response has no usable size (Content-Range %q)", key, aws.ToString(out.ContentRange))
		}
		want = total - off
	}
	if out.ContentLength != nil && *out.ContentLength != want {
		_ = out.Body.Close()
		cancel(nil)
		return nil, fmt.Errorf("get: %w: %s: offset %d length %d: server returned %d bytes", ErrInvalidRange, key, off, length, *out.ContentLength)
	}
	body := io.ReadCloser(&requestBody{rc: out.Body, cancel: cancel})
	if s.cfg.AttemptTimeout > 0 {
		body = newIdleReader(out.Body, s.cfg.AttemptTimeout, cancel, key)
	}
	return &exactReader{rc: body, left: want, key: key}, nil
}

// ErrBodyStalled is wrapped by the error of a GetRange body read that got no
// byte for S3Config.AttemptTimeout. It is a transient fault of one attempt
// (ReadRange retries it); the error also reports Timeout() == true.
var ErrBodyStalled = errors.New("s3tier: response body stalled")

// stalledError is the error of a stalled body read.
type stalledError struct {
	key string
	d   time.Duration
}

func (e *stalledError) Error() string {
	return fmt.Sprintf("get %s: no body byte for %v (attempt timeout): %v", e.key, e.d, ErrBodyStalled)
}
func (e *stalledError) Unwrap() error { return ErrBodyStalled }
func (e *stalledError) Timeout() bool { return true }

// requestBody releases the request's context when the body is closed.
type requestBody struct {
	rc     io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *requestBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b *requestBody) Close() error {
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// idleReader fails a body read that waits longer than timeout for a byte,
// by canceling the request's context (which makes the blocked read return)
// and reporting a stalledError. Only time spent inside Read counts, so a
// slow consumer is never mistaken for a stalled server. One timer serves
// the whole body: a read pushes the deadline out, and the timer, when it
// fires early, re-arms itself for what is left.
type idleReader struct {
	rc      io.ReadCloser
	timeout time.Duration
	cancel  context.CancelCauseFunc
	key     string

	mu       sync.Mutex
	timer    *time.Timer
	armed    bool // timer pending
	reading  bool
	deadline time.Time
	stalled  bool
	closed   bool
}

func newIdleReader(rc io.ReadCloser, timeout time.Duration, cancel context.CancelCauseFunc, key string) *idleReader {
	r := &idleReader{rc: rc, timeout: timeout, cancel: cancel, key: key}
	r.timer = time.AfterFunc(time.Hour, r.fire)
	r.timer.Stop()
	return r
}

func (r *idleReader) fire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = false
	if !r.reading || r.closed {
		return
	}
	if left := time.Until(r.deadline); left > 0 {
		r.timer.Reset(left)
		r.armed = true
		return
	}
	r.stalled = true
	r.cancel(&stalledError{key: r.key, d: r.timeout})
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	if r.stalled {
		r.mu.Unlock()
		return 0, &stalledError{key: r.key, d: r.timeout}
	}
	r.reading = true
	r.deadline = time.Now().Add(r.timeout)
	if !r.armed {
		r.timer.Reset(r.timeout)
		r.armed = true
	}
	r.mu.Unlock()

	n, err := r.rc.Read(p)

	r.mu.Lock()
	r.reading = false
	stalled := r.stalled
	r.mu.Unlock()
	if stalled && err != nil && !errors.Is(err, io.EOF) {
		err = &stalledError{key: r.key, d: r.timeout}
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.timer.Stop()
	r.mu.Unlock()
	err := r.rc.Close()
	r.cancel(nil)
	return err
}

// totalFromContentRange parses the size from "bytes a-b/size".
func totalFromContentRange(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	var n int64
	if _, err := fmt.Sscanf(cr[i+1:], "%d", &n); err != nil {
		return 0, false
	}
	return n, true
}

// exactReader fails with io.ErrUnexpectedEOF when the body ends early, so a
// truncated response is never mistaken for a short object.
type exactReader struct {
	rc   io.ReadCloser
	left int64
	key  string
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	if errors.Is(err, io.EOF) {
		if r.left > 0 {
			return n, fmt.Errorf("get %s: body ended %d bytes early: %w", r.key, r.left, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	if err == nil && r.left == 0 {
		err = io.EOF
	}
	return n, err
}

func (r *exactReader) Close() error { return r.rc.Close() }
