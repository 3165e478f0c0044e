package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// gatedStore holds every PUT until open is closed.
func gatedStore(t *testing.T, open <-chan struct{}) s3tier.Store {
	return s3tier.Faulty(dirStore(t), func(op, _ string) error {
		if op == s3tier.OpPut {
			<-open
		}
		return nil
	})
}

// TestUploadFromMemorySpillsUnderPressure proves objects are uploaded from
// memory with nothing written to the spool, and that when uploads stall
// and the memory budget (half of MaxPendingBytes) is spent, further objects
// are built in the spool instead — and every produce is still acknowledged
// with dense offsets and read back intact.
func TestUploadFromMemorySpillsUnderPressure(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	val := make([]byte, 8<<10)
	batch := segmenttest.Batch(segmenttest.BatchOptions{Records: 4, Value: val}) // ~32 KiB
	open := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(open) }) }
	t.Cleanup(release)
	var spoolDir string
	e := testEngine(t, cli, gatedStore(t, open), func(c *Config) {
		c.MaxPendingBytes = int64(len(batch)) * 5 // memory budget: 2.5 batches
		c.FlushBytes = 1                          // one batch per object
		spoolDir = filepath.Join(c.DataDir, "spool")
	})
	tp := createTopic(t, cli, "spill", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var pend []*Pending
	for i := 0; i < 5; i++ {
		pend = append(pend, e.Produce(ctx, tp.ID, 0, batch))
	}
	// Two objects fit the memory budget; the others wait in the spool.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ents, _ := os.ReadDir(spoolDir)
		if len(ents) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool holds %d objects, want 3 (2 of 5 in memory)", len(ents))
		}
		time.Sleep(10 * time.Millisecond)
	}
	release()
	for i, p := range pend {
		res, err := p.Wait(ctx)
		if err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		if res.BaseOffset != int64(4*i) {
			t.Fatalf("produce %d at offset %d, want %d", i, res.BaseOffset, 4*i)
		}
	}
	if got := e.Snapshot().ObjectsSpooled; got != 3 {
		t.Fatalf("ObjectsSpooled = %d, want 3", got)
	}
	if got := readAll(t, e, tp.ID, 0); len(got) != 5 {
		t.Fatalf("read back %d batches, want 5", len(got))
	}
	// Without pressure nothing touches the spool.
	before := e.Snapshot().ObjectsSpooled
	for i := 0; i < 3; i++ {
		produce(t, e, tp.ID, 0, batch)
	}
	if got := e.Snapshot().ObjectsSpooled; got != before {
		t.Fatalf("objects spooled without pressure: %d", got-before)
	}
	if ents, _ := os.ReadDir(spoolDir); len(ents) != 0 {
		t.Fatalf("spool not empty after commits: %d files", len(ents))
	}
}

// TestBackPressureTimesOut proves a flood beyond MaxPendingBytes while the
// bucket hangs is held back: past the budget a produce waits for its
// context and gets REQUEST_TIMED_OUT, so sealed bytes stay bounded (one
// object over the limit at most) instead of growing with the flood.
func TestBackPressureTimesOut(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	val := make([]byte, 8<<10)
	batch := segmenttest.Batch(segmenttest.BatchOptions{Records: 4, Value: val})
	open := make(chan struct{})
	defer close(open) // before the engine's Close (cleanup): uploads finish
	limit := int64(len(batch)) * 4
	e := testEngine(t, cli, gatedStore(t, open), func(c *Config) {
		c.MaxPendingBytes = limit
		c.FlushBytes = 1
	})
	tp := createTopic(t, cli, "flood", 1)
	timedOut := 0
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		p := e.Produce(ctx, tp.ID, 0, batch)
		select {
		case <-p.Done():
			if _, err := p.Wait(context.Background()); errors.Is(err, kerr.RequestTimedOut) {
				timedOut++
			} else {
				t.Fatalf("produce %d: %v, want REQUEST_TIMED_OUT or waiting", i, err)
			}
		default: // accepted, waiting for the bucket
		}
		cancel()
	}
	e.spaceMu.Lock()
	pending := e.pendingBytes
	e.spaceMu.Unlock()
	if pending > limit+int64(len(batch)) {
		t.Fatalf("sealed bytes %d beyond the limit %d plus one object", pending, limit)
	}
	if timedOut < 50-6 {
		t.Fatalf("%d of 50 produces timed out; the rest were buffered past the limit", timedOut)
	}
}
