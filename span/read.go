package span

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shale-dev/shale/internal/retry"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
)

// ReadRange reads exactly [pos, pos+size) of key (ReadRangeInto, into a
// new buffer).
func ReadRange(ctx context.Context, store s3tier.Store, key string, pos, size int64) ([]byte, error) {
	if size <= 0 || size > maxSpanSize {
		return nil, fmt.Errorf("read %s: range of %d bytes: %w", key, size, segment.ErrCorrupt)
	}
	buf := make([]byte, size)
	if err := ReadRangeInto(ctx, store, key, pos, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// ReadAttempts bounds the ranged GETs of one ReadRangeInto whose bodies
// fail midway; readBackoff is the pause before the second one, doubled
// before each later one.
const (
	ReadAttempts = 3
	readBackoff  = 50 * time.Millisecond
)

// readRetry is ReadRangeInto's policy: GETs whose bodies fail midway.
var readRetry = retry.Policy{Attempts: ReadAttempts, Initial: readBackoff}

// ReadRangeInto reads exactly [pos, pos+len(buf)) of key into buf with one
// ranged GET, plus up to ReadAttempts-1 more when the body fails midway.
//
// A GET whose answer was accepted (the store checked its status and
// length) but whose body then fails — ends early, connection reset,
// stalled (ErrBodyStalled) — met a transport fault, not a short object:
// the read resumes with a GET of the bytes still missing, after a short
// backoff, unless ctx is done. Once the attempts are spent the error wraps
// io.ErrUnexpectedEOF and the last failure (e.g. ErrBodyStalled); it is
// not segment.ErrTruncated.
//
// Nothing else is retried here (the store retries its own requests):
// a missing object is IsNotFound; an object shorter than the range, which
// the store reports as ErrInvalidRange (a range past the end, or a server
// answering with fewer bytes than asked), is also segment.ErrTruncated,
// since the index claims bytes the object lacks; a ctx error is returned
// as is. A len(buf) of 0 or above 1 GiB is segment.ErrCorrupt. On error,
// buf's contents are undefined.
func ReadRangeInto(ctx context.Context, store s3tier.Store, key string, pos int64, buf []byte) error {
	size := int64(len(buf))
	if size <= 0 || size > maxSpanSize {
		return fmt.Errorf("read %s: range of %d bytes: %w", key, size, segment.ErrCorrupt)
	}
	done := 0           // bytes of buf already read
	var last *bodyError // the last body failure
	var final error     // a failure that is not a body's: returned as is
	err := retry.Do(ctx, readRetry, func(int) error {
		n, err := readOnce(ctx, store, key, pos+int64(done), buf[done:])
		done += n
		if err == nil {
			return nil
		}
		if !errors.As(err, &last) {
			final = fmt.Errorf("read %s [%d, %d): %w", key, pos, pos+size, err)
			return retry.Permanent(final)
		}
		return last
	})
	switch {
	case err == nil:
		return nil
	case final != nil:
		return final
	case ctx.Err() != nil:
		// The caller gave up: say so, whatever the body read said.
		if errors.Is(last.err, ctx.Err()) {
			return fmt.Errorf("read %s [%d, %d): %w", key, pos, pos+size, last.err)
		}
		return fmt.Errorf("read %s [%d, %d): %w (body: %v)", key, pos, pos+size, ctx.Err(), last.err)
	}
	return fmt.Errorf("read %s [%d, %d): body failed at byte %d, %d attempts: %w", key, pos, pos+size, pos+int64(done), ReadAttempts, last.err)
}

// bodyError marks a failure while reading a GET's body (retryable), as
// opposed to one of the GET itself.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// readOnce reads buf with one ranged GET at pos, returning how many bytes
// it read.
func readOnce(ctx context.Context, store s3tier.Store, key string, pos int64, buf []byte) (int, error) {
	rc, err := store.GetRange(ctx, key, pos, int64(len(buf)))
	if err != nil {
		if errors.Is(err, s3tier.ErrInvalidRange) {
			return 0, fmt.Errorf("object shorter than indexed: %w: %w", segment.ErrTruncated, err)
		}
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, buf)
	if err != nil {
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
		case errors.Is(err, io.EOF):
			err = fmt.Errorf("body ended %d bytes early: %w", len(buf)-n, io.ErrUnexpectedEOF)
		default:
			// Reset, stalled, ...: the body ended early all the same.
			err = fmt.Errorf("body cut short: %w: %w", io.ErrUnexpectedEOF, err)
		}
		return n, &bodyError{err: err}
	}
	return n, nil
}
