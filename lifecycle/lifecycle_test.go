package lifecycle_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/engine/enginetest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// listBucket lists every object key with an independent S3 client.
func listBucket(t testing.TB, mc *minio.Client, bucket string) []string {
	t.Helper()
	var keys []string
	for o := range mc.ListObjects(lcCtx(t), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("minio list: %v", o.Err)
		}
		keys = append(keys, o.Key)
	}
	sort.Strings(keys)
	return keys
}

// TestCompactionShrinksIndexAndBucket proves compaction on a real S3 server:
// 100,000 records produced in 200 flushes (400 entries in 200 mixed
// objects) become one segment per partition, the topic's etcd keys and
// objects (counted with minio-go) drop at least 10-fold after GC, and a
// reader gets byte-identical batches (offsets, timestamps, records) and the
// same ListOffsets answers as before.
func TestCompactionShrinksIndexAndBucket(t *testing.T) {
	srv := testenv.S3(t)
	cli, _ := testenv.Etcd(t)
	ctx := lcCtx(t)
	store := s3Store(ctx, t, srv, "")
	mc := srv.Minio(t)
	meta := metastore.New(cli, lcNS)
	tp, err := meta.CreateTopic(ctx, "compact-me", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	const flushes, batches, records = 200, 5, 50 // 200 × 2 partitions × 5 × 50 = 100,000 records
	ts := func(f, b int) int64 { return 1_700_000_000_000 + int64(f)*1000 + int64(b)*100 }
	produceFlushes(t, newEngine(t, cli, store), tp, flushes, batches, records, ts)

	stamps := []int64{0, ts(0, 0) + 7, ts(57, 3) + 49, ts(123, 1) + 50, ts(199, 4) + 49, ts(199, 4) + 50,
		engine.EarliestTimestamp, engine.LatestTimestamp, engine.MaxTimestamp}
	listOffsets := func(e *engine.Engine) []string {
		var out []string
		for p := int32(0); p < 2; p++ {
			for _, s := range stamps {
				off, stamp, err := e.ListOffset(ctx, tp.ID, p, s)
				if err != nil {
					t.Fatalf("ListOffset(%d): %v", s, err)
				}
				out = append(out, fmt.Sprintf("p%d ts %d -> %d @%d", p, s, off, stamp))
			}
		}
		return out
	}
	counting := s3tier.Counting(store)
	before := newEngine(t, cli, counting)
	var want [2][][]byte
	for p := range want {
		want[p] = readFrom(t, before, tp.ID, int32(p), 0)
	}
	getsBefore := counting.Counts().Gets
	wantOffsets := listOffsets(before)
	entriesBefore, objsBefore := countEntries(t, meta, tp), len(listBucket(t, mc, srv.Bucket))

	st, err := lifecycle.Compact(ctx, store, meta, compactCfg(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := lifecycle.CollectGarbage(ctx, store, meta, nil, time.Now().Add(time.Minute), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	entriesAfter, objsAfter := countEntries(t, meta, tp), len(listBucket(t, mc, srv.Bucket))
	t.Logf("compaction: %+v; gc: %+v", st, gc)
	t.Logf("index entries %d -> %d, objects %d -> %d", entriesBefore, entriesAfter, objsBefore, objsAfter)
	if entriesBefore != 400 || objsBefore != 200 || entriesAfter*10 > entriesBefore || int64(objsAfter)*10 > int64(objsBefore) {
		t.Fatalf("entries %d -> %d, objects %d -> %d: want 400 and 200 before, a 10-fold drop after", entriesBefore, entriesAfter, objsBefore, objsAfter)
	}
	checkIndex(t, meta, store, tp)

	counting2 := s3tier.Counting(store)
	after := newEngine(t, cli, counting2)
	total := 0
	for p := range want {
		got := readFrom(t, after, tp.ID, int32(p), 0)
		sameBatches(t, fmt.Sprintf("p%d after compaction", p), got, want[p])
		for _, b := range got {
			recs, err := segmenttest.Records(b)
			if err != nil {
				t.Fatal(err)
			}
			total += len(recs)
		}
	}
	if total != 100_000 {
		t.Fatalf("read %d records, want 100000", total)
	}
	t.Logf("GETs to read both partitions from the start: %d before compaction, %d after", getsBefore, counting2.Counts().Gets)
	gotOffsets := listOffsets(after)
	for i := range wantOffsets {
		if gotOffsets[i] != wantOffsets[i] {
			t.Fatalf("ListOffsets changed: %s, before: %s", gotOffsets[i], wantOffsets[i])
		}
	}
	// Reading from the middle of a segment starts at the right batch.
	mid := readFrom(t, after, tp.ID, 1, 25_000+17)
	sameBatches(t, "p1 from the middle", mid, want[1][500:])
}

// TestCompactionGETs measures the GETs needed to read one partition from the
// start before and after compaction: 64 MiB written in 1,024 flushes of
// 64 KiB, compacted into 128 MiB-target segments of 1 MiB chunks.
func TestCompactionGETs(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB")
	}
	cli, _ := testenv.Etcd(t)
	store := enginetest.DirStore(t)
	ctx := lcCtx(t)
	meta := metastore.New(cli, lcNS)
	tp, err := meta.CreateTopic(ctx, "gets", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One batch of 64 records of ~1 KiB per flush: 64 KiB per entry.
	e := newEngine(t, cli, store)
	val := make([]byte, 1000)
	for f := range 1024 {
		raw := segmenttest.Batch(segmenttest.BatchOptions{Records: 64, Value: val, Timestamp: int64(f)})
		pd := e.Produce(ctx, tp.ID, 0, raw)
		if err := e.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := pd.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	read := func() (int64, int) {
		c := s3tier.Counting(store)
		got := readFrom(t, newEngine(t, cli, c), tp.ID, 0, 0)
		return c.Counts().Gets, len(got)
	}
	getsBefore, n := read()
	if _, err := lifecycle.Compact(ctx, store, meta, compactCfg(t), nil); err != nil {
		t.Fatal(err)
	}
	getsAfter, n2 := read()
	if n != 1024 || n2 != 1024 || getsAfter*10 > getsBefore {
		t.Fatalf("batches %d/%d, GETs %d -> %d: want 1024 batches and a 10-fold drop", n, n2, getsBefore, getsAfter)
	}
	t.Logf("64 MiB partition read from the start: %d GETs before compaction, %d after (1 footer + 1 per 1 MiB chunk); "+
		"1 GiB extrapolates to %d before, %d after (8 segments of 128 MiB: 8 footers + 1,024 chunks)", getsBefore, getsAfter, getsBefore*16, (getsAfter-1)*16+8)
}
