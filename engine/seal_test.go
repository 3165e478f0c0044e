package engine

import (
	"context"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestUntilTick proves the seal grid: a buffer opened at any point of an
// interval is sealed at the end of that interval, never later than one
// interval after it opened and never at once.
func TestUntilTick(t *testing.T) {
	const iv = 250 * time.Millisecond
	for _, tc := range []struct{ since, want time.Duration }{
		{0, iv},
		{time.Millisecond, iv - time.Millisecond},
		{iv - time.Nanosecond, time.Nanosecond},
		{iv, iv},
		{10*iv + 100*time.Millisecond, 150 * time.Millisecond},
	} {
		if got := untilTick(tc.since, iv); got != tc.want {
			t.Errorf("untilTick(%v, %v) = %v, want %v", tc.since, iv, got, tc.want)
		}
	}
}

// TestTimerSealsAtMostOncePerInterval proves the PUT bound of the seal
// policy: produces trickling in (several per interval, small enough never
// to fill FlushBytes) are sealed by the timer at most once per flush
// interval, plus the one in progress.
func TestTimerSealsAtMostOncePerInterval(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	counted := s3tier.Counting(dirStore(t))
	const iv = 40 * time.Millisecond
	e := testEngine(t, cli, counted, func(c *Config) { c.FlushInterval = iv })
	tp := createTopic(t, cli, "trickle", 2)
	batch := segmenttest.Batch(segmenttest.BatchOptions{Records: 1})
	ctx := context.Background()
	start := time.Now()
	var pend []*Pending
	for i := 0; i < 60; i++ {
		pend = append(pend, e.Produce(ctx, tp.ID, int32(i%2), batch))
		time.Sleep(iv / 6)
	}
	for _, p := range pend {
		if _, err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	puts := counted.Counts().Puts
	if max := int64(elapsed/iv) + 2; puts > max {
		t.Fatalf("%d PUTs in %v at a %v interval: more than one timer seal per interval (max %d)", puts, elapsed, iv, max)
	}
	t.Logf("%d PUTs in %v (interval %v)", puts, elapsed, iv)
}
