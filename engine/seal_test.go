package engine

import (
	"context"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
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

// TestLatencyClass proves a topic's own flush interval: with the engine's
// interval at a minute, a produce in a 10 ms class is acknowledged while a
// produce in the default class still waits for its seal, the two land in
// different objects, and a partition whose class changes keeps its order
// (the old class's buffer is sealed first).
func TestLatencyClass(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	e := testEngine(t, cli, dirStore(t), func(c *Config) { c.FlushInterval = time.Minute })
	fast := createTopic(t, cli, "fast", 1)
	slow := createTopic(t, cli, "slow", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	batch := func(seq int) []byte {
		return segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Value: value(0, seq)})
	}
	pslow := e.Produce(ctx, slow.ID, 0, batch(0))
	pfast := e.ProduceEvery(ctx, fast.ID, 0, batch(1), 10*time.Millisecond)
	if _, err := pfast.Wait(ctx); err != nil {
		t.Fatalf("fast class: %v", err)
	}
	select {
	case <-pslow.Done():
		t.Fatal("the default class (1 minute) was sealed with the fast class")
	default:
	}
	// The slow topic's partition moves to the fast class: its batch in the
	// default buffer is sealed first and keeps offset 0.
	pmoved := e.ProduceEvery(ctx, slow.ID, 0, batch(2), 10*time.Millisecond)
	r0, err0 := pslow.Wait(ctx)
	r1, err1 := pmoved.Wait(ctx)
	if err0 != nil || err1 != nil || r0.BaseOffset != 0 || r1.BaseOffset != 1 {
		t.Fatalf("class change: offsets %d (%v), %d (%v); want 0 then 1", r0.BaseOffset, err0, r1.BaseOffset, err1)
	}
	meta := metastore.New(cli, testNS)
	fe, err := meta.FindEntries(ctx, fast.ID, 0, 0, 1)
	if err != nil || len(fe) != 1 {
		t.Fatalf("fast entries: %v %v", fe, err)
	}
	se, err := meta.FindEntries(ctx, slow.ID, 0, 0, 2)
	if err != nil || len(se) != 2 {
		t.Fatalf("slow entries: %v %v", se, err)
	}
	if fe[0].ObjectKey == se[0].ObjectKey || se[0].ObjectKey == se[1].ObjectKey {
		t.Fatalf("objects %s, %s, %s: want the classes in separate objects", fe[0].ObjectKey, se[0].ObjectKey, se[1].ObjectKey)
	}
}
