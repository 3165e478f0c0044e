package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPauses proves each growth and jitter gives the pauses its doc says:
// doubling or linear from Initial, capped at Max, jittered within bounds.
func TestPauses(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		p    Policy
		want []time.Duration // nominal pauses
	}{
		{Policy{Initial: 50 * ms, Max: 2000 * ms}, []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms}},
		{Policy{Initial: 200 * ms, Max: 700 * ms, Growth: Linear}, []time.Duration{200 * ms, 400 * ms, 600 * ms, 700 * ms, 700 * ms}},
		{Policy{Initial: 50 * ms}, []time.Duration{50 * ms, 100 * ms, 200 * ms}},
	}
	for _, c := range cases {
		for _, j := range []Jitter{NoJitter, HalfJitter, FullJitter} {
			p := c.p
			p.Jitter = j
			b := p.BackOff()
			for round := 0; round < 2; round++ { // Reset starts afresh
				for i, nominal := range c.want {
					d := b.NextBackOff()
					lo, hi := nominal, nominal
					switch j {
					case HalfJitter:
						lo, hi = nominal/2, nominal*3/2
					case FullJitter:
						lo, hi = 0, nominal
					}
					if d < lo || d > hi {
						t.Fatalf("%+v pause %d = %v, want in [%v, %v]", p, i, d, lo, hi)
					}
				}
				b.Reset()
			}
		}
	}
}

// TestDo proves Do stops at success, at a Permanent error (returning it
// unwrapped), after Attempts, and when ctx is done.
func TestDo(t *testing.T) {
	ctx := context.Background()
	p := Policy{Attempts: 3, Initial: time.Millisecond}
	errX := errors.New("x")
	calls := 0
	if err := Do(ctx, p, func(a int) error { calls++; return errX }); !errors.Is(err, errX) || calls != 3 {
		t.Fatalf("exhausted: %v after %d calls, want x after 3", err, calls)
	}
	calls = 0
	if err := Do(ctx, p, func(a int) error {
		calls++
		if a == 2 {
			return nil
		}
		return errX
	}); err != nil || calls != 2 {
		t.Fatalf("success at 2: %v after %d calls", err, calls)
	}
	calls = 0
	if err := Do(ctx, p, func(int) error { calls++; return Permanent(errX) }); err != errX || calls != 1 {
		t.Fatalf("permanent: %v after %d calls, want x itself after 1", err, calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	err := Do(cctx, Policy{Initial: time.Hour}, func(int) error { calls++; cancel(); return errX })
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("canceled: %v after %d calls, want context.Canceled after 1", err, calls)
	}
	if Sleep(cctx, time.Hour) {
		t.Fatal("Sleep on a done context reported a full pause")
	}
}
