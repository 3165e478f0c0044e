package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/engine/enginetest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/segment/segmenttest"
)

const testNS = "/shale-test"

func testEngine(t testing.TB, cli *clientv3.Client, store s3tier.Store, mod func(*Config)) *Engine {
	t.Helper()
	cfg := Config{DataDir: t.TempDir(), FlushInterval: 10 * time.Millisecond, UploadTimeout: 20 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg, store, metastore.New(cli, testNS), nil)
	return enginetest.Started(t, e, err)
}

func dirStore(t testing.TB) s3tier.Store { return enginetest.DirStore(t) }

func createTopic(t testing.TB, cli *clientv3.Client, name string, partitions int32) metastore.Topic {
	t.Helper()
	tp, err := metastore.New(cli, testNS).CreateTopic(context.Background(), name, partitions, nil)
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	return tp
}

// value encodes (writer, seq) so a reader can tell records apart.
func value(writer, seq int) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(writer))
	binary.BigEndian.PutUint64(b[8:], uint64(seq))
	return b
}

func produce(t testing.TB, e *Engine, id metastore.TopicID, p int32, raw []byte) ProduceResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.Produce(ctx, id, p, raw).Wait(ctx)
	if err != nil {
		t.Fatalf("produce p%d: %v", p, err)
	}
	return res
}

// readAll fetches a partition from offset 0 to its end and returns the
// batches as served (absolute offsets).
func readAll(t testing.TB, e *Engine, id metastore.TopicID, p int32) [][]byte {
	t.Helper()
	return enginetest.ReadFrom(t, func(ctx context.Context, off int64, max int) ([]byte, int64, error) {
		res, err := e.Fetch(ctx, id, p, off, max)
		return res.Records, res.HighWatermark, err
	}, 0, 64<<10)
}

// sameExceptBase reports whether two batches are byte-identical apart from
// the 8-byte base offset.
// produceSpans writes entries index entries (one flush each) of perEntry
// batches to partition 0, batch n made by mk(n), waiting for every
// acknowledgement; it returns the batches in offset order.
func produceSpans(t testing.TB, w *Engine, id metastore.TopicID, entries, perEntry int, mk func(n int) []byte) [][]byte {
	t.Helper()
	ctx := context.Background()
	var sent [][]byte
	for i := 0; i < entries; i++ {
		var ps []*Pending
		for j := 0; j < perEntry; j++ {
			raw := mk(len(sent))
			ps = append(ps, w.Produce(ctx, id, 0, raw))
			sent = append(sent, raw)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if _, err := p.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	return sent
}

func sameExceptBase(a, b []byte) bool {
	return len(a) == len(b) && len(a) >= 8 && bytes.Equal(a[8:], b[8:])
}

// TestProduceFetchRoundTrip proves a produced batch is acknowledged with
// dense offsets and read back byte-identical apart from the patched offset.
func TestProduceFetchRoundTrip(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	e := testEngine(t, cli, dirStore(t), nil)
	tp := createTopic(t, cli, "round", 2)
	var sent [][]byte
	for i := 0; i < 10; i++ {
		raw := segmenttest.Batch(segmenttest.BatchOptions{Records: i + 1, Value: value(0, i), Timestamp: int64(1000 * i)})
		res := produce(t, e, tp.ID, 1, raw)
		want := int64(i * (i + 1) / 2)
		if res.BaseOffset != want {
			t.Fatalf("batch %d: base offset %d, want %d", i, res.BaseOffset, want)
		}
		sent = append(sent, raw)
	}
	got := readAll(t, e, tp.ID, 1)
	if len(got) != len(sent) {
		t.Fatalf("read %d batches, want %d", len(got), len(sent))
	}
	// The writer cached its objects before acknowledging them: reading its
	// own recent data needs no GET.
	if s := e.Snapshot(); s.CacheMisses != 0 || s.CacheHits == 0 {
		t.Fatalf("cache hits %d, misses %d: want every read served locally", s.CacheHits, s.CacheMisses)
	}
	for i := range got {
		if !sameExceptBase(got[i], sent[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	if n := len(readAll(t, e, tp.ID, 0)); n != 0 {
		t.Fatalf("partition 0 has %d batches, want 0", n)
	}
	// Past the end: OFFSET_OUT_OF_RANGE.
	if _, err := e.Fetch(context.Background(), tp.ID, 1, 1000, 1<<20); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch past end: %v, want OFFSET_OUT_OF_RANGE", err)
	}
}

// TestProduceRejectsBadBatches proves malformed produce input gets the Kafka
// error code and writes nothing.
func TestProduceRejectsBadBatches(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	e := testEngine(t, cli, dirStore(t), func(c *Config) { c.MaxRecordsBytes = 4096 })
	tp := createTopic(t, cli, "bad", 1)
	good := segmenttest.Batch(segmenttest.BatchOptions{Records: 3})
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	v1 := append([]byte(nil), good...)
	v1[16] = 1 // magic
	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"crc", badCRC, kerr.CorruptMessage},
		{"magic v1", v1, kerr.InvalidRecord},
		{"truncated", good[:30], kerr.CorruptMessage},
		{"too large", segmenttest.Batch(segmenttest.BatchOptions{Value: make([]byte, 8192)}), kerr.MessageTooLarge},
		{"transactional without producer", segmenttest.Batch(segmenttest.BatchOptions{Transactional: true}), kerr.InvalidRecord},
		{"control", segmenttest.Batch(segmenttest.BatchOptions{Transactional: true, Control: true, Idempotent: true, ProducerID: 5, BaseSequence: -1}), kerr.InvalidRecord},
		{"empty", nil, kerr.InvalidRecord},
	} {
		_, err := e.Produce(context.Background(), tp.ID, 0, tc.raw).Wait(context.Background())
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, next, _ := e.Offsets(context.Background(), tp.ID, 0); next != 0 {
		t.Fatalf("bad batches advanced the log to %d", next)
	}
}

// TestIdempotentDeduplicatedAcrossEngines proves a retried idempotent batch
// is answered with its original offset even through another agent, and an
// out-of-order sequence is rejected without writing.
func TestIdempotentDeduplicatedAcrossEngines(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	a := testEngine(t, cli, store, nil)
	b := testEngine(t, cli, store, nil)
	tp := createTopic(t, cli, "idem", 1)
	batch := func(seq int32, n int) []byte {
		return segmenttest.Batch(segmenttest.BatchOptions{Records: n, Idempotent: true, ProducerID: 7, BaseSequence: seq})
	}
	produce(t, a, tp.ID, 0, segmenttest.Batch(segmenttest.BatchOptions{Records: 2})) // offsets 0-1
	first := produce(t, a, tp.ID, 0, batch(0, 5))                                    // offsets 2-6
	dup := produce(t, b, tp.ID, 0, batch(0, 5))
	if dup.BaseOffset != first.BaseOffset {
		t.Fatalf("duplicate answered %d, want original %d", dup.BaseOffset, first.BaseOffset)
	}
	if _, err := b.Produce(context.Background(), tp.ID, 0, batch(9, 1)).Wait(context.Background()); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("gap in sequence: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", err)
	}
	next := produce(t, b, tp.ID, 0, batch(5, 1))
	if next.BaseOffset != 7 {
		t.Fatalf("next batch at %d, want 7", next.BaseOffset)
	}
	if got := len(readAll(t, b, tp.ID, 0)); got != 3 {
		t.Fatalf("partition holds %d batches, want 3 (no duplicate written)", got)
	}
	if s := b.Snapshot(); s.Duplicates != 1 {
		t.Fatalf("engine b counted %d duplicates, want 1", s.Duplicates)
	}
}

// TestDuplicateInsideChunkSplitsEntry proves that a duplicate batch sealed in
// the same object as new batches is skipped while offsets stay dense.
func TestDuplicateInsideChunkSplitsEntry(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	e := testEngine(t, cli, dirStore(t), func(c *Config) { c.FlushInterval = time.Hour })
	tp := createTopic(t, cli, "split", 1)
	mk := func(seq int32) []byte {
		return segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Idempotent: true, ProducerID: 9, BaseSequence: seq, Value: value(9, int(seq))})
	}
	ctx := context.Background()
	p1 := e.Produce(ctx, tp.ID, 0, mk(0))
	p2 := e.Produce(ctx, tp.ID, 0, mk(0)) // retry of the same batch, same object
	p3 := e.Produce(ctx, tp.ID, 0, mk(2))
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, p := range []*Pending{p1, p2, p3} {
		res, err := p.Wait(ctx)
		want := []int64{0, 0, 2}[i]
		if err != nil || res.BaseOffset != want {
			t.Fatalf("produce %d: %v offset %d, want %d", i, err, res.BaseOffset, want)
		}
	}
	got := readAll(t, e, tp.ID, 0)
	if len(got) != 2 || !sameExceptBase(got[0], mk(0)) || !sameExceptBase(got[1], mk(2)) {
		t.Fatalf("read %d batches, want the two distinct ones", len(got))
	}
	n, err := metastore.New(cli, testNS).CountEntries(ctx, tp.ID, 0)
	if err != nil || n != 2 {
		t.Fatalf("index entries %d (%v), want 2 (split around the duplicate)", n, err)
	}
}

// TestConcurrentWritersDenseOffsets proves two independent writers (separate
// etcd clients, separate engines) committing to the same 16 partitions of a
// real S3 bucket get dense offsets from 0 with none assigned twice, and a
// reader sharing nothing with them returns every batch byte-identical apart
// from the patched base offset.
func TestConcurrentWritersDenseOffsets(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	s3 := testenv.S3(t)
	newClient := func() *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	newStore := func() s3tier.Store {
		st, err := s3tier.NewS3Store(context.Background(), s3tier.S3Config{
			Bucket: s3.Bucket, Endpoint: s3.Endpoint, Region: s3.Region, PathStyle: true,
			AccessKey: s3.AccessKey, SecretKey: s3.SecretKey,
		})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	const partitions, perWriter = 16, 160
	tp := createTopic(t, newClient(), "dense", partitions)
	type sent struct {
		raw    []byte
		offset int64
	}
	acked := make([][]sent, partitions)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		e := testEngine(t, newClient(), newStore(), func(c *Config) { c.Name = fmt.Sprintf("w%d", w) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inner sync.WaitGroup
			for i := 0; i < perWriter; i++ {
				p := int32(i % partitions)
				raw := segmenttest.Batch(segmenttest.BatchOptions{Records: 1 + i%4, Value: value(w, i), Timestamp: int64(i)})
				pend := e.Produce(context.Background(), tp.ID, p, raw)
				inner.Add(1)
				go func() {
					defer inner.Done()
					res, err := pend.Wait(context.Background())
					if err != nil {
						t.Errorf("writer %d batch %d: %v", w, i, err)
						return
					}
					mu.Lock()
					acked[p] = append(acked[p], sent{raw, res.BaseOffset})
					mu.Unlock()
				}()
				if i%8 == 7 {
					time.Sleep(2 * time.Millisecond) // spread over many objects
				}
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	reader := testEngine(t, newClient(), newStore(), nil)
	total := 0
	for p := int32(0); p < partitions; p++ {
		got := readAll(t, reader, tp.ID, p)
		byOffset := map[int64][]byte{}
		off := int64(0)
		for _, b := range got {
			byOffset[off] = b
			h, _ := segment.ParseBatchHeader(b)
			off += int64(h.LastOffsetDelta) + 1
		}
		if len(got) != len(acked[p]) {
			t.Fatalf("partition %d: read %d batches, acknowledged %d", p, len(got), len(acked[p]))
		}
		for _, s := range acked[p] {
			b, ok := byOffset[s.offset]
			if !ok || !sameExceptBase(b, s.raw) {
				t.Fatalf("partition %d: batch acknowledged at %d not found identical there", p, s.offset)
			}
		}
		total += len(got)
	}
	if total != 2*perWriter {
		t.Fatalf("read %d batches in all, want %d", total, 2*perWriter)
	}
}

// TestCorruptObjectGivesError proves a flipped byte in a stored object makes
// reads fail with a CRC error naming the object and byte range (never
// corrupt data, never a panic), and a missing object gives a clear error.
func TestCorruptObjectGivesError(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	dir := t.TempDir()
	store, err := s3tier.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := testEngine(t, cli, store, nil)
	tp := createTopic(t, cli, "corrupt", 1)
	produce(t, w, tp.ID, 0, segmenttest.Batch(segmenttest.BatchOptions{Records: 10, Value: []byte("hello")}))
	ctx := context.Background()
	es, err := metastore.New(cli, testNS).FindEntries(ctx, tp.ID, 0, 0, 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("index: %v %v", es, err)
	}
	en := es[0]
	orig := readObject(t, store, en.ObjectKey)
	for _, pos := range []int64{en.Pos + 8, en.Pos + 20, en.Pos + 40, en.Pos + en.Size - 1} {
		bad := append([]byte(nil), orig...)
		bad[pos] ^= 0x40
		writeObject(t, store, en.ObjectKey, bad)
		r := testEngine(t, cli, store, nil) // fresh cache: must read the bucket
		_, err := r.Fetch(ctx, tp.ID, 0, 0, 1<<20)
		if !errors.Is(err, segment.ErrCorrupt) {
			t.Fatalf("flip at %d: err %v, want segment.ErrCorrupt", pos, err)
		}
		wantMsg := fmt.Sprintf("%q bytes [%d, %d)", en.ObjectKey, en.Pos, en.Pos+en.Size)
		if !bytes.Contains([]byte(err.Error()), []byte(wantMsg)) {
			t.Fatalf("flip at %d: error %q does not name %s", pos, err, wantMsg)
		}
	}
	if err := store.Delete(ctx, en.ObjectKey); err != nil {
		t.Fatal(err)
	}
	r := testEngine(t, cli, store, nil)
	_, err = r.Fetch(ctx, tp.ID, 0, 0, 1<<20)
	if !s3tier.IsNotFound(err) {
		t.Fatalf("missing object: %v, want not-found", err)
	}
}

func readObject(t testing.TB, s s3tier.Store, key string) []byte {
	t.Helper()
	rc, err := s.GetRange(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeObject(t testing.TB, s s3tier.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// TestFetchBudgetNeverSkipsBatches proves a fetch whose byte budget runs out
// inside an index entry stops there: it never goes on to a later entry's
// smaller batch, which would hand the consumer a gap (records silently
// lost to it).
func TestFetchBudgetNeverSkipsBatches(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	e := testEngine(t, cli, dirStore(t), func(c *Config) { c.FlushInterval = time.Hour })
	tp := createTopic(t, cli, "budget", 1)
	ctx := context.Background()
	small := segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Value: []byte("s")})
	big := segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Value: make([]byte, 4096)})
	// One entry holding [small, big], then another holding [small].
	p1 := e.Produce(ctx, tp.ID, 0, small)
	p2 := e.Produce(ctx, tp.ID, 0, big)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p3 := e.Produce(ctx, tp.ID, 0, small)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Pending{p1, p2, p3} {
		if _, err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.Fetch(ctx, tp.ID, 0, 0, 2*len(small)+16)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := segment.SplitBatches(res.Records, true)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for _, b := range bs {
		if b.Header.BaseOffset != next {
			t.Fatalf("fetch returned offset %d after %d: a gap", b.Header.BaseOffset, next-1)
		}
		next = b.Header.BaseOffset + b.Header.OffsetSpan()
	}
	if len(bs) != 1 {
		t.Fatalf("fetch returned %d batches, want only the first (the second does not fit)", len(bs))
	}
}

// TestFetchBelowMovedLogStart proves a fetch whose offset retention
// removed after the reader's state was read (another agent's truncation,
// not yet in this agent's state cache) is OFFSET_OUT_OF_RANGE, as Kafka
// answers, so the consumer applies its reset policy; while an offset in a
// gap inside the log (an index range recover --skip-corrupt dropped, the
// log start unchanged) is served from the next entry.
func TestFetchBelowMovedLogStart(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	w := testEngine(t, cli, store, func(c *Config) { c.FlushInterval = time.Hour })
	tp := createTopic(t, cli, "movedstart", 1)
	ctx := context.Background()
	// Four entries of one single-record batch each: offsets 0, 1, 2, 3.
	produceSpans(t, w, tp.ID, 4, 1, func(n int) []byte {
		return segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Value: value(0, n)})
	})
	k := partKey{tp.ID, 0}
	meta := metastore.New(cli, testNS)

	// A gap: entry 1 gone from the index, the log start still 0.
	resp, err := cli.Get(ctx, testNS+"/index/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil || len(resp.Kvs) != 4 {
		t.Fatalf("index keys: %v, %v", resp, err)
	}
	if _, err := cli.Delete(ctx, string(resp.Kvs[1].Key)); err != nil {
		t.Fatal(err)
	}
	// The reader starts after the deletion: its index cache never held
	// entry 1 (a cache filled from the writer's commits may lag it).
	r := testEngine(t, cli, store, nil)
	plan, _, err := r.planFetch(ctx, k, 1, 4, 64<<10)
	if err != nil || len(plan) == 0 || plan[0].AbsBase != 2 {
		t.Fatalf("fetch at 1 inside a gap: plan %v, %v; want spans from offset 2", plan, err)
	}

	// Retention: the log start moves to 3 behind r's back. A fetch at 0
	// (r's state may still say the log starts at 0) is out of range; it
	// must not be served from offset 3.
	if start, err := meta.TruncateBefore(ctx, tp.ID, 0, 3); err != nil || start != 3 {
		t.Fatalf("truncate: start %d, %v", start, err)
	}
	r.index.forget(k)
	if plan, _, err := r.planFetch(ctx, k, 0, 4, 64<<10); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch at 0 below the moved log start 3: plan %v, err %v; want OFFSET_OUT_OF_RANGE", plan, err)
	}
	if res, err := r.Fetch(ctx, tp.ID, 0, 3, 64<<10); err != nil || len(res.Records) == 0 {
		t.Fatalf("fetch at the new log start: %d bytes, %v", len(res.Records), err)
	}
}
