package engine

import (
	"context"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestBatchLargerThanFlushBytesGetsItsOwnObject proves that records larger
// than flush.bytes are sealed into an object of their own: what the open
// buffer held before them is sealed first (into a smaller object), and the
// large batch's object holds nothing else. Both are then readable in
// produce order.
func TestBatchLargerThanFlushBytesGetsItsOwnObject(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	const flushBytes = 1 << 20
	e := testEngine(t, cli, store, func(c *Config) {
		c.FlushBytes = flushBytes
		c.FlushInterval = time.Minute // seal by size only
	})
	tp := createTopic(t, cli, "large", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	small := segmenttest.Batch(segmenttest.BatchOptions{Value: make([]byte, 64<<10)})
	big := segmenttest.Batch(segmenttest.BatchOptions{Value: make([]byte, 3<<20)})
	ps := e.Produce(ctx, tp.ID, 1, small) // another partition, same open buffer
	pb := e.Produce(ctx, tp.ID, 0, big)
	if _, err := pb.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	objs, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, o := range objs {
		sizes = append(sizes, o.Size)
	}
	if len(objs) != 2 {
		t.Fatalf("objects %v, want 2: the small batch's, then the large one's", sizes)
	}
	for _, o := range objs {
		if o.Size >= int64(len(big)+len(small)) {
			t.Fatalf("object %s of %d bytes holds the large batch and the small one (sizes %v)", o.Key, o.Size, sizes)
		}
	}
	res, err := e.Fetch(ctx, tp.ID, 0, 0, 1)
	if err != nil || len(res.Records) != len(big) {
		t.Fatalf("fetch of the large batch with a 1-byte limit: %d bytes, %v; want the whole %d-byte batch", len(res.Records), err, len(big))
	}
}
