// Package retry is shale's one way of retrying: each call site names a
// Policy (how many attempts, the pauses between them, what is retriable),
// Do runs an operation under it, and Sleep is the one context-aware pause.
// The pauses and the retry loop are github.com/cenkalti/backoff/v5's (a
// library already in the module graph through etcd); this package only
// adds the policies' vocabulary. s3tier, a leaf that imports nothing of
// shale's, calls the library directly.
package retry

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Growth is how a policy's pause grows from one attempt to the next.
type Growth int

const (
	// Double doubles the pause after each attempt, up to Max.
	Double Growth = iota
	// Linear adds Initial to the pause after each attempt, up to Max.
	Linear
)

// Jitter is how a pause is randomized around its nominal value d.
type Jitter int

const (
	// NoJitter pauses exactly d.
	NoJitter Jitter = iota
	// HalfJitter pauses between d/2 and 3d/2 (backoff's randomization
	// factor 0.5): retries of many callers spread without slowing on
	// average.
	HalfJitter
	// FullJitter pauses between 0 and d.
	FullJitter
)

// Policy says how a call site retries. The zero value retries at once,
// forever; a call site always names its own.
type Policy struct {
	// Attempts bounds the attempts, the first included; 0: until ctx is
	// done.
	Attempts int
	// Initial is the pause before the second attempt; Max caps a pause.
	Initial, Max time.Duration
	Growth       Growth
	Jitter       Jitter
}

// BackOff returns the policy's sequence of pauses, starting afresh.
func (p Policy) BackOff() backoff.BackOff {
	return &pauses{p: p}
}

// pauses is a Policy's backoff.BackOff.
type pauses struct {
	p   Policy
	cur time.Duration
}

func (b *pauses) Reset() { b.cur = 0 }

func (b *pauses) NextBackOff() time.Duration {
	p := b.p
	switch {
	case b.cur == 0:
		b.cur = p.Initial
	case p.Growth == Linear:
		b.cur += p.Initial
	default:
		b.cur *= 2
	}
	if p.Max > 0 && b.cur > p.Max {
		b.cur = p.Max
	}
	d := b.cur
	switch p.Jitter {
	case HalfJitter:
		if d > 0 {
			d = d/2 + time.Duration(rand.Int64N(int64(d)))
		}
	case FullJitter:
		if d > 0 {
			d = time.Duration(rand.Int64N(int64(d)))
		}
	}
	return d
}

// Permanent marks an error that must not be retried; Do returns err itself.
func Permanent(err error) error { return backoff.Permanent(err) }

// Do runs op until it returns nil or a Permanent error, p.Attempts are
// spent, or ctx is done. It returns op's last error (unwrapped from
// Permanent) or, when ctx ended it, ctx's error. op receives the attempt
// number, from 1.
func Do(ctx context.Context, p Policy, op func(attempt int) error) error {
	attempt := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		return struct{}{}, op(attempt)
	}, backoff.WithBackOff(p.BackOff()), backoff.WithMaxTries(uint(max(p.Attempts, 0))), backoff.WithMaxElapsedTime(0))
	return err
}

// Sleep pauses for d, or until ctx is done; it reports whether the whole
// pause elapsed (false: ctx is done).
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Wait pauses for b's next pause, or until ctx is done; it reports whether
// the whole pause elapsed. For loops that keep their own state between
// attempts (b.Reset after a success).
func Wait(ctx context.Context, b backoff.BackOff) bool {
	return Sleep(ctx, b.NextBackOff())
}
