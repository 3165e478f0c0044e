package engine

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/segment/segmenttest"
	"github.com/shale-dev/shale/span"
)

// TestReadAheadForColdSequentialReads proves a cold read (a span GET from
// the bucket) prefetches the spans after it, so a sequential reader's next
// fetches are served from the local cache, and the records stay exact.
func TestReadAheadForColdSequentialReads(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	w := testEngine(t, cli, store, func(c *Config) { c.FlushInterval = time.Hour })
	tp := createTopic(t, cli, "ahead", 1)
	ctx := context.Background()
	var sent [][]byte
	for i := 0; i < 12; i++ { // 12 entries, one per flush
		raw := segmenttest.Batch(segmenttest.BatchOptions{Records: 5, Value: value(3, i)})
		p := w.Produce(ctx, tp.ID, 0, raw)
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, raw)
	}
	r := testEngine(t, cli, store, nil) // shares nothing cached with the writer
	// One batch per fetch: the first is a cold GET and starts read-ahead.
	if _, err := r.Fetch(ctx, tp.ID, 0, 0, 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Snapshot().ReadAheadSpans < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("read-ahead prefetched %d spans, want at least 4", r.Snapshot().ReadAheadSpans)
		}
		time.Sleep(10 * time.Millisecond)
	}
	misses := r.Snapshot().CacheMisses
	got := readAll(t, r, tp.ID, 0)
	if len(got) != len(sent) {
		t.Fatalf("read %d batches, want %d", len(got), len(sent))
	}
	for i := range got {
		if !sameExceptBase(got[i], sent[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	// The prefetched spans were served from the cache: the sequential read
	// of 12 entries needed fewer GETs than entries after the first.
	if extra := r.Snapshot().CacheMisses - misses; extra >= int64(len(sent)-1) {
		t.Fatalf("%d more GETs for %d entries: read-ahead served nothing", extra, len(sent)-1)
	}
}

// TestReadAheadHandsOverInMemory proves a cold sequential read through an
// engine that did not write the data returns every batch in order with
// dense offsets, takes the spans after the first from the read-ahead's
// memory (one GET of the foreground, the rest prefetched; a span a fetch
// used only part of is taken again by the next fetch, not fetched again),
// and never holds more than the read-ahead's byte budget, which is far
// smaller than the partition.
func TestReadAheadHandsOverInMemory(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	w := testEngine(t, cli, store, func(c *Config) { c.FlushInterval = time.Hour })
	tp := createTopic(t, cli, "ahead-mem", 1)
	ctx := context.Background()
	const entries, perEntry = 30, 3
	sent := produceSpans(t, w, tp.ID, entries, perEntry, func(n int) []byte { // one entry (span) per flush, of 3 batches
		return segmenttest.Batch(segmenttest.BatchOptions{Records: 4, Value: append(value(4, n), make([]byte, 1000)...)})
	})
	es, err := metastore.New(cli, testNS).FindEntries(ctx, tp.ID, 0, 0, entries+1)
	if err != nil || len(es) != entries {
		t.Fatalf("index: %d entries, %v", len(es), err)
	}
	span := es[0].Size

	r := testEngine(t, cli, store, nil) // shares nothing cached with the writer
	r.ra.max = 5 * span                 // a sixth of the partition
	var maxHeld, maxReady int64
	sample := func() {
		ready, all := r.ra.held()
		maxHeld, maxReady = max(maxHeld, all), max(maxReady, ready)
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // sample while prefetches land, not only between fetches
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			sample()
			time.Sleep(100 * time.Microsecond)
		}
	}()
	// Two batches per fetch: every other fetch ends inside a span.
	maxBytes := 2*len(sent[0]) + 10
	off := int64(0)
	var got [][]byte
	for fetches := 0; ; fetches++ {
		if fetches > 10*len(sent) {
			t.Fatal("read does not progress")
		}
		res, err := r.Fetch(ctx, tp.ID, 0, off, maxBytes)
		if err != nil {
			t.Fatalf("fetch @%d: %v", off, err)
		}
		if len(res.Records) == 0 {
			if off != res.HighWatermark {
				t.Fatalf("fetch @%d: empty below high watermark %d", off, res.HighWatermark)
			}
			break
		}
		bs, err := segment.SplitBatches(res.Records, true)
		if err != nil {
			t.Fatalf("fetched bytes: %v", err)
		}
		for _, b := range bs {
			if b.Header.BaseOffset != off {
				t.Fatalf("batch at %d, want %d (gap or overlap)", b.Header.BaseOffset, off)
			}
			got = append(got, append([]byte(nil), b.Raw...))
			off += b.Header.OffsetSpan()
		}
		time.Sleep(time.Millisecond) // a consumer's think time: prefetches land meanwhile
	}
	close(stop)
	<-sampled
	sample()
	if len(got) != len(sent) {
		t.Fatalf("read %d batches, want %d", len(got), len(sent))
	}
	for i := range got {
		if !sameExceptBase(got[i], sent[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	s := r.Snapshot()
	t.Logf("stats: %+v; held at most %d bytes (%d ready) of a %d-byte budget", s, maxHeld, maxReady, r.ra.max)
	if s.CacheMisses > 2 {
		t.Errorf("%d GETs of the foreground for %d spans, want the first (at most 2)", s.CacheMisses, entries)
	}
	// Each span is taken by one fetch, and those it straddles by two.
	if s.ReadAheadHits < entries-2 || s.ReadAheadSpans < entries-2 {
		t.Errorf("%d read-ahead hits of %d prefetched spans, want about %d", s.ReadAheadHits, s.ReadAheadSpans, entries)
	}
	if s.ReadAheadSpans > entries {
		t.Errorf("%d spans prefetched for %d spans: a span was fetched twice", s.ReadAheadSpans, entries)
	}
	if s.CacheHits+s.ReadAheadHits+s.CacheMisses < int64(len(sent)/2) {
		t.Errorf("stats %+v: fetches did not count their span reads", s)
	}
	if maxHeld > r.ra.max || maxReady > r.ra.max {
		t.Fatalf("read-ahead held %d bytes (%d ready), over its %d budget", maxHeld, maxReady, r.ra.max)
	}
	if maxReady == 0 {
		t.Fatal("read-ahead never held a ready span")
	}
}

// TestReadAheadCloseEndsPrefetches proves Close ends queued and in-flight
// prefetches (no goroutine left, nothing held) and a fetch after Close
// starts none.
func TestReadAheadCloseEndsPrefetches(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	w := testEngine(t, cli, store, func(c *Config) { c.FlushInterval = time.Hour })
	tp := createTopic(t, cli, "ahead-close", 1)
	ctx := context.Background()
	for i := 0; i < 12; i++ {
		p := w.Produce(ctx, tp.ID, 0, segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: value(5, i)}))
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r, err := New(Config{DataDir: t.TempDir(), UploadTimeout: 20 * time.Second}, store, metastore.New(cli, testNS), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Fetch(ctx, tp.ID, 0, 0, 1); err != nil { // cold: queues read-ahead
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Close(cctx); err != nil {
		t.Fatal(err)
	}
	r.ra.prefetch(partKey{tp.ID, 0}, []span.Span{{Object: "a", Size: 10}, {Object: "b", Size: 10}}, 1)
	r.ra.mu.Lock()
	workers, spans, queued := r.ra.workers, len(r.ra.spans), len(r.ra.queue)
	r.ra.mu.Unlock()
	if ready, all := r.ra.held(); workers != 0 || spans != 0 || queued != 0 || ready != 0 || all != 0 {
		t.Fatalf("after Close: %d workers, %d spans (%d queued), %d bytes held (%d ready)", workers, spans, queued, all, ready)
	}
}

// TestReadAheadBudgetCountsParsedBatches proves the read-ahead's byte
// budget bounds the memory its spans really hold: a ready span keeps its
// bytes and its parsed batch list (a segment.Batch per batch, which for
// small batches is larger than the batch itself), and both count. A replay
// of a partition of one-record batches must stay within the budget.
func TestReadAheadBudgetCountsParsedBatches(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	w := testEngine(t, cli, store, func(c *Config) { c.FlushInterval = time.Hour })
	tp := createTopic(t, cli, "ahead-small", 1)
	ctx := context.Background()
	const entries, perEntry = 16, 100
	sent := produceSpans(t, w, tp.ID, entries, perEntry, func(n int) []byte { // one entry (span) per flush, of 100 small batches
		return segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Value: value(6, n)})
	})
	es, err := metastore.New(cli, testNS).FindEntries(ctx, tp.ID, 0, 0, 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("index: %d entries, %v", len(es), err)
	}
	span := es[0].Size

	r := testEngine(t, cli, store, nil)
	r.ra.max = 6 * span
	// The memory the read-ahead's spans hold, measured from the spans
	// themselves: bytes being fetched, and a ready chunk's bytes and batches.
	retained := func() int64 {
		r.ra.mu.Lock()
		defer r.ra.mu.Unlock()
		var n int64
		for _, s := range r.ra.spans {
			if s.state == raReady {
				n += int64(len(s.chunk.Bytes())) + int64(cap(s.chunk.Batches()))*int64(unsafe.Sizeof(segment.Batch{}))
			} else {
				n += s.sp.Size
			}
		}
		return n
	}
	var maxRetained int64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			maxRetained = max(maxRetained, retained())
			time.Sleep(100 * time.Microsecond)
		}
	}()
	maxBytes := int(span / 2) // every other fetch ends inside a span
	off := int64(0)
	n := 0
	for fetches := 0; ; fetches++ {
		if fetches > 10*entries {
			t.Fatal("read does not progress")
		}
		res, err := r.Fetch(ctx, tp.ID, 0, off, maxBytes)
		if err != nil {
			t.Fatalf("fetch @%d: %v", off, err)
		}
		if len(res.Records) == 0 {
			break
		}
		bs, err := segment.SplitBatches(res.Records, true)
		if err != nil {
			t.Fatalf("fetched bytes: %v", err)
		}
		for _, b := range bs {
			if b.Header.BaseOffset != off || !sameExceptBase(b.Raw, sent[n]) {
				t.Fatalf("batch %d at %d, want %d", n, b.Header.BaseOffset, off)
			}
			off += b.Header.OffsetSpan()
			n++
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-sampled
	maxRetained = max(maxRetained, retained())
	if n != len(sent) {
		t.Fatalf("read %d batches, want %d", n, len(sent))
	}
	s := r.Snapshot()
	t.Logf("stats %+v; spans held at most %d bytes of a %d-byte budget", s, maxRetained, r.ra.max)
	if s.ReadAheadHits == 0 {
		t.Fatal("read-ahead served nothing")
	}
	if s.ReadAheadSpans > entries {
		t.Errorf("%d spans prefetched for %d spans: prefetches were thrown away", s.ReadAheadSpans, entries)
	}
	if maxRetained > r.ra.max {
		t.Fatalf("read-ahead spans held %d bytes (bytes and parsed batches), over its %d budget", maxRetained, r.ra.max)
	}
}

// TestPrefetchReadsAheadBeforeTheFetch proves that Prefetch (which the
// agent calls for every partition of a multi-partition fetch before
// reading the first) GETs a cold partition's spans, its first one
// included, without a fetch: the fetches that follow find every span in
// the read-ahead's memory (no foreground GET) and read the records exactly.
// A Prefetch at the high watermark or outside the log does nothing.
func TestPrefetchReadsAheadBeforeTheFetch(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	w := testEngine(t, cli, store, func(c *Config) { c.FlushInterval = time.Hour })
	tp := createTopic(t, cli, "prefetch", 1)
	ctx := context.Background()
	const entries = 6
	sent := produceSpans(t, w, tp.ID, entries, 1, func(n int) []byte {
		return segmenttest.Batch(segmenttest.BatchOptions{Records: 3, Value: value(5, n)})
	})
	r := testEngine(t, cli, store, nil) // shares nothing cached with the writer
	// At the high watermark, then past it: nothing to read ahead.
	r.Prefetch(ctx, PrefetchPart{Topic: tp.ID, Offset: int64(3 * entries), MaxBytes: 1 << 20})
	r.Prefetch(ctx, PrefetchPart{Topic: tp.ID, Offset: int64(3*entries) + 5, MaxBytes: 1 << 20})
	if n := r.Snapshot().ReadAheadSpans; n != 0 {
		t.Fatalf("Prefetch past the data fetched %d spans", n)
	}
	r.Prefetch(ctx, PrefetchPart{Topic: tp.ID, MaxBytes: 1 << 20})
	deadline := time.Now().Add(10 * time.Second)
	for r.Snapshot().ReadAheadSpans < entries {
		if time.Now().After(deadline) {
			t.Fatalf("Prefetch fetched %d spans, want %d", r.Snapshot().ReadAheadSpans, entries)
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := readAll(t, r, tp.ID, 0)
	if len(got) != len(sent) {
		t.Fatalf("read %d batches, want %d", len(got), len(sent))
	}
	for i := range got {
		if !sameExceptBase(got[i], sent[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	if s := r.Snapshot(); s.CacheMisses != 0 || s.ReadAheadHits < entries {
		t.Fatalf("after Prefetch: %d foreground GETs, %d read-ahead hits (want 0 and %d)", s.CacheMisses, s.ReadAheadHits, entries)
	}
}
