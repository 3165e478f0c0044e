package lifecycle_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestCompactKeysStopsAtTransactions proves a pass never maps or rewrites
// at or past the last stable offset: with key "a" in three objects, the
// second a transactional batch whose transaction is still open, the pass
// maps only the first object (removing its older "a"), the next maps
// nothing, and every record from the open transaction on stays readable.
// (Decided transactions: agent's TestKeyCompactedTransactions.)
func TestCompactKeysStopsAtTransactions(t *testing.T) {
	cli, store, meta, ctx := dirEnv(t)
	tp, err := meta.CreateTopic(ctx, "kc-txn", 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1", "min.cleanable.dirty.ratio": "0"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, cli, store)
	ts := time.Now().Add(-time.Hour).UnixMilli()
	for i, o := range []segmenttest.BatchOptions{
		{Keys: [][]byte{[]byte("a"), []byte("a")}, Values: [][]byte{{1}, {2}}},
		{Keys: [][]byte{[]byte("a")}, Values: [][]byte{{3}}, Transactional: true, Idempotent: true, ProducerID: 9},
		{Keys: [][]byte{[]byte("a")}, Values: [][]byte{{4}}},
	} {
		o.Timestamp = ts
		if _, err := produceOne(t, e, tp.ID, 0, segmenttest.Batch(o)); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	cfg := lifecycle.KeyCompactConfig{CompactConfig: compactCfg(t)}
	st, err := lifecycle.CompactKeysPartition(ctx, store, meta, cfg, tp, 0, metastore.CleanerState{}, nil)
	if err != nil || st.MappedTo != 2 || st.RecordsRemoved != 1 {
		t.Fatalf("pass: %+v, %v; want offsets 0..1 mapped, the older \"a\" of the first batch removed", st, err)
	}
	st, err = lifecycle.CompactKeysPartition(ctx, store, meta, cfg, tp, 0, metastore.CleanerState{Checkpoint: st.MappedTo}, nil)
	if err != nil || st.MappedTo != -1 || st.Segments != 0 {
		t.Fatalf("pass from the transactional batch: %+v, %v; want nothing mapped", st, err)
	}
	n := 0
	for _, raw := range readFrom(t, newEngine(t, cli, store), tp.ID, 0, 0) {
		recs, err := segment.DecodeRecords(raw)
		if err != nil {
			t.Fatal(err)
		}
		n += len(recs)
	}
	if n != 3 {
		t.Fatalf("%d records readable, want 3 (offsets 1, 2, 3)", n)
	}
}

// TestCompactKeysStopsAtCorruptBatch proves a batch the key-compaction job
// cannot read stops the job on that partition only: a batch whose CRC
// verifies but whose records do not parse (as a producer could store in a
// topic before it was switched to cleanup.policy=compact, since records
// are decoded at produce only on compacted topics) makes CompactKeys count
// one failed partition and log a line naming the topic, the partition and
// the offset, while the other partition is compacted; the broken
// partition's index, cleaner checkpoint and every stored byte stay as they
// were.
func TestCompactKeysStopsAtCorruptBatch(t *testing.T) {
	cli, store, meta, ctx := dirEnv(t)
	tp, err := meta.CreateTopic(ctx, "kc-corrupt", 2, map[string]string{"cleanup.policy": "compact", "segment.ms": "1", "min.cleanable.dirty.ratio": "0"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, cli, store)
	ts := time.Now().Add(-time.Hour).UnixMilli()
	bad := segmenttest.Batch(segmenttest.BatchOptions{Keys: [][]byte{[]byte("a")}, Values: [][]byte{[]byte("unreadable")}, Timestamp: ts})
	for i := segment.BatchHeaderSize; i < len(bad); i++ {
		bad[i] = 0x7f // each record's length varint: -64
	}
	binary.BigEndian.PutUint32(bad[17:], crc32.Checksum(bad[21:], crc32.MakeTable(crc32.Castagnoli)))
	if err := segment.VerifyBatchCRC(bad); err != nil {
		t.Fatal(err)
	}
	kv := func(k string, vs ...string) []byte {
		o := segmenttest.BatchOptions{Timestamp: ts}
		for _, v := range vs {
			o.Keys, o.Values = append(o.Keys, []byte(k)), append(o.Values, []byte(v))
		}
		return segmenttest.Batch(o)
	}
	for _, b := range [][2][]byte{{kv("a", "1", "2"), kv("b", "1", "2")}, {bad, kv("b", "3")}, {kv("a", "3"), kv("b", "4")}} {
		for p, raw := range b {
			if _, err := produceOne(t, e, tp.ID, int32(p), raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	scan := func(p int32) []metastore.IndexEntry {
		var es []metastore.IndexEntry
		if _, _, err := meta.ScanIndex(ctx, tp.ID, p, func(e metastore.IndexEntry) bool { es = append(es, e); return true }); err != nil {
			t.Fatal(err)
		}
		return es
	}
	before := scan(0)
	stored := readFrom(t, newEngine(t, cli, store), tp.ID, 0, 0)

	var logs bytes.Buffer
	st, err := lifecycle.CompactKeys(ctx, store, meta, lifecycle.KeyCompactConfig{CompactConfig: compactCfg(t)}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || st.Failed != 1 || st.Passes != 1 || st.RecordsRemoved != 3 {
		t.Fatalf("CompactKeys: %+v, %v; want partition 0 failed, partition 1 compacted (3 older b removed)", st, err)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			line = l
		}
	}
	for _, want := range []string{"key compaction of a partition failed", "topic=kc-corrupt", "partition=0", "offset 2", "corrupt"} {
		if !strings.Contains(line, want) {
			t.Errorf("error log line %q lacks %q", line, want)
		}
	}
	if after := scan(0); !reflect.DeepEqual(after, before) {
		t.Errorf("partition 0's index changed:\n%+v\nwant\n%+v", after, before)
	}
	if cs, err := meta.GetCleanerState(ctx, tp.ID, 0); err != nil || cs.Checkpoint != 0 {
		t.Errorf("partition 0's checkpoint %d (%v), want 0", cs.Checkpoint, err)
	}
	if got := readFrom(t, newEngine(t, cli, store), tp.ID, 0, 0); !reflect.DeepEqual(got, stored) {
		t.Errorf("partition 0 reads %d batches that differ from the %d stored", len(got), len(stored))
	}
	if len(scan(1)) == 0 || st.Segments == 0 {
		t.Errorf("partition 1 not compacted: %+v", st)
	}
}

// TestCompactKeysFinishesCutTail proves that the tail a pass leaves when
// it runs in the middle of a burst of writes (kafka-go's
// TestReaderReadCompactedMessage: segment.bytes 200, batches of a key and
// two duplicates) is compacted once the partition is quiet, although it
// stays below min.cleanable.dirty.ratio (0.5) for good: Kafka's rule
// alone left 30 duplicates for the 90 s of that test. The tail waits while
// writes go on, and such a pass follows a cut pass at most once: a small
// tail after it waits for the ratio, as on Kafka.
func TestCompactKeysFinishesCutTail(t *testing.T) {
	cli, store, meta, ctx := dirEnv(t)
	e := newEngine(t, cli, store)
	tp, err := meta.CreateTopic(ctx, "cut-tail", 1, map[string]string{"cleanup.policy": "compact", "segment.bytes": "200"})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-time.Hour).UnixMilli()
	write := func(keys ...string) {
		t.Helper()
		o := segmenttest.BatchOptions{Timestamp: ts}
		for _, k := range keys {
			o.Keys, o.Values = append(o.Keys, []byte(k)), append(o.Values, []byte(k))
		}
		if _, err := produceOne(t, e, tp.ID, 0, segmenttest.Batch(o)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	burst := func(entries int) {
		for range entries {
			write(fmt.Sprintf("k%03d", n), "dup_", "dup_")
			n++
		}
	}
	// lastCommit is when the partition's newest entry was committed.
	lastCommit := func() time.Time {
		t.Helper()
		var last int64
		if _, _, err := meta.ScanIndex(ctx, tp.ID, 0, func(e metastore.IndexEntry) bool { last = max(last, e.CommittedMs); return true }); err != nil {
			t.Fatal(err)
		}
		return time.UnixMilli(last)
	}
	const settle = 20 * time.Millisecond
	pass := func(what string, now time.Time, want int) {
		t.Helper()
		cfg := lifecycle.KeyCompactConfig{CompactConfig: compactCfg(t)}
		cfg.Settle, cfg.Now = settle, func() time.Time { return now }
		st, err := lifecycle.CompactKeys(ctx, store, meta, cfg, nil)
		if err != nil || st.Failed > 0 || st.Passes != want {
			t.Fatalf("%s: %+v, %v; want %d passes", what, st, err, want)
		}
	}
	dups := func() (int, map[string]int) {
		t.Helper()
		keys := map[string]int{}
		for _, raw := range readFrom(t, newEngine(t, cli, store), tp.ID, 0, 0) {
			recs, err := segment.DecodeRecords(raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				keys[string(r.Key)]++
			}
		}
		return keys["dup_"], keys
	}

	burst(40)
	pass("a pass in the middle of the burst", lastCommit().Add(time.Minute), 1)
	if cs, err := meta.GetCleanerState(ctx, tp.ID, 0); err != nil || len(cs.Passes) != 1 || !cs.Passes[0].Cut {
		t.Fatalf("cleaner state after the first pass: %+v, %v; want one pass, cut (the active head followed it)", cs, err)
	}
	// The burst goes on: a tail of duplicates, then records past which it
	// is no longer the active head (segment.bytes).
	burst(12)
	write("e-0", "e-1", "e-2")
	write("e-3", "e-4", "e-5")
	write("e-6", "e-7", "e-8")
	time.Sleep(2 * settle)
	write("e-9") // the writes still going on
	pass("the tail while writes go on (below the ratio)", lastCommit().Add(settle/2), 0)
	if d, _ := dups(); d < 25 {
		t.Fatalf("%d dup_ records before the tail's pass, want at least 25 (one kept by the first pass, 24 in the tail)", d)
	}
	pass("the tail once the partition is quiet", lastCommit().Add(time.Minute), 1)
	if cs, err := meta.GetCleanerState(ctx, tp.ID, 0); err != nil || len(cs.Passes) != 2 || !cs.Passes[1].Tail {
		t.Errorf("cleaner state after the tail's pass: %+v, %v; want a second pass, Tail", cs, err)
	}
	if d, keys := dups(); d != 1 || len(keys) != n+11 {
		t.Fatalf("after the tail's pass: %d dup_ records and %d keys, want 1 and %d (every key once)", d, len(keys), n+11)
	}

	// At most one such pass per cut pass: a small tail written after it
	// waits for min.cleanable.dirty.ratio, as on Kafka.
	write("dup_", "dup_", "dup_")
	write("f-0", "f-1", "f-2")
	write("f-3", "f-4", "f-5")
	write("f-6", "f-7", "f-8")
	pass("a small tail after the tail's pass", lastCommit().Add(time.Minute), 0)

	// Nor does a tail written after a pass that left nothing behind it
	// (segment.ms 1: no active head) get one.
	if tp, err = meta.CreateTopic(ctx, "uncut", 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1"}); err != nil {
		t.Fatal(err)
	}
	burst(40)
	pass("a pass over a whole burst", lastCommit().Add(time.Minute), 1)
	burst(6)
	pass("a small tail after a pass that left nothing behind it", lastCommit().Add(time.Minute), 0)
}

// mergeBeforePut runs merge compaction (once) just before the first
// segment a key-compaction pass uploads, so that the pass's swap finds its
// run rewritten.
type mergeBeforePut struct {
	s3tier.Store
	merge func()
	done  bool
}

func (m *mergeBeforePut) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	if !m.done && strings.HasPrefix(key, lifecycle.DefaultSegmentPrefix) {
		m.done = true
		m.merge()
	}
	return m.Store.Put(ctx, key, body, size)
}

// TestCompactKeysConflictKeepsCheckpoint proves a key-compaction pass whose
// swap is refused (merge compaction rewrote the same entries meanwhile)
// leaves the cleaner checkpoint where it was, so the next pass maps the
// keys again and removes the superseded record the refused swap kept
// (before, the checkpoint moved on and that record stayed for good; the
// agent-level kill campaign TestCrashCampaignCompacted found it).
func TestCompactKeysConflictKeepsCheckpoint(t *testing.T) {
	cli, inner, meta, ctx := dirEnv(t)
	tp, err := meta.CreateTopic(ctx, "kc-conflict", 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1", "min.cleanable.dirty.ratio": "0"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, cli, inner)
	ts := time.Now().Add(-time.Hour).UnixMilli()
	for _, kv := range [][2]string{{"a", "1"}, {"a", "2"}, {"b", "1"}} {
		if _, err := produceOne(t, e, tp.ID, 0, segmenttest.Batch(segmenttest.BatchOptions{Keys: [][]byte{[]byte(kv[0])}, Values: [][]byte{[]byte(kv[1])}, Timestamp: ts})); err != nil {
			t.Fatal(err)
		}
	}
	cfg := lifecycle.KeyCompactConfig{CompactConfig: compactCfg(t)}
	store := &mergeBeforePut{Store: inner, merge: func() {
		if st, err := lifecycle.Compact(ctx, inner, meta, compactCfg(t), nil); err != nil || st.Segments != 1 {
			t.Errorf("merge compaction: %+v, %v; want the three entries merged", st, err)
		}
	}}
	st, err := lifecycle.CompactKeys(ctx, store, meta, cfg, nil)
	if err != nil || st.Conflicts != 1 || st.Passes != 0 {
		t.Fatalf("pass racing merge compaction: %+v, %v; want its swap refused and no pass saved", st, err)
	}
	if cs, err := meta.GetCleanerState(ctx, tp.ID, 0); err != nil || cs.Checkpoint != 0 {
		t.Fatalf("checkpoint %d (%v) after a refused swap, want 0", cs.Checkpoint, err)
	}
	st, err = lifecycle.CompactKeys(ctx, inner, meta, cfg, nil)
	if err != nil || st.Passes != 1 || st.RecordsRemoved != 1 {
		t.Fatalf("next pass: %+v, %v; want the older a removed", st, err)
	}
	n := 0
	for _, raw := range readFrom(t, newEngine(t, cli, inner), tp.ID, 0, 0) {
		recs, err := segment.DecodeRecords(raw)
		if err != nil {
			t.Fatal(err)
		}
		n += len(recs)
	}
	if n != 2 {
		t.Fatalf("%d records stored, want 2 (a=2, b=1)", n)
	}
}

// dirEnv starts etcd and a local-directory bucket for a key-compaction
// test.
