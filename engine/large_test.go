package engine

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/s3tier"
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

// TestLargeBatchHeldOnce proves a large batch is not copied on its way
// through the engine: producing it (build, multipart upload to a real S3
// server, commit) allocates a small fraction of it, as the object
// references the batch's bytes and the parts are read in place; fetching
// it through another engine (a cold read: one ranged GET) allocates it
// once, as the answer is the bytes read, patched in place. Before, the
// produce allocated 2x the batch (the object, then a copy of each part)
// and the fetch 2x (the bytes read, then the answer).
func TestLargeBatchHeldOnce(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	srv := testenv.S3(t)
	store, err := s3tier.NewS3Store(context.Background(), s3tier.S3Config{
		Bucket: srv.Bucket, Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	const size = 24 << 20 // above the 16 MiB multipart threshold: 3 parts
	mod := func(c *Config) { c.FlushBytes = 1 << 20 }
	a, b := testEngine(t, cli, store, mod), testEngine(t, cli, store, mod)
	tp := createTopic(t, cli, "held-once", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	batch := segmenttest.Batch(segmenttest.BatchOptions{Value: make([]byte, size)})

	allocated := func(f func()) float64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return float64(after.TotalAlloc-before.TotalAlloc) / float64(len(batch))
	}
	produced := allocated(func() {
		if _, err := a.Produce(ctx, tp.ID, 0, batch).Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})
	var res FetchResult
	fetched := allocated(func() {
		if res, err = b.Fetch(ctx, tp.ID, 0, 0, 1<<20); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("a %d MiB batch: produce allocated %.2fx it, a cold fetch %.2fx", size>>20, produced, fetched)
	if len(res.Records) != len(batch) || !bytes.Equal(res.Records[8:], batch[8:]) {
		t.Fatalf("fetched %d bytes, want the %d-byte batch", len(res.Records), len(batch))
	}
	if produced > 0.25 {
		t.Errorf("producing the batch allocated %.2fx its size, want at most 0.25x (no copy of it)", produced)
	}
	if fetched > 1.25 {
		t.Errorf("fetching the batch allocated %.2fx its size, want at most 1.25x (one copy: the bytes read)", fetched)
	}
}
