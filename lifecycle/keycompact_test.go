package lifecycle_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// modelRecord is one record as a consumer reads it.
type modelRecord struct {
	Offset    int64
	Key       string
	Value     []byte
	ValueNull bool
	Headers   []kmsg.Header
	Timestamp int64
}

// TestCompactKeysModel proves key compaction against a model on a real S3
// server (versitygw): random keys, values and tombstones from three
// idempotent producers, in every codec, with headers, written through one
// engine over several objects; after passes with a small key-map budget
// (several passes needed), a reader (another engine) from offset 0 reads
// exactly the latest record of each key (tombstones included), in offset
// order, at the offsets first assigned, with value, headers and timestamp
// intact; the next offset is unchanged, the index is dense and every entry
// readable, and fewer records are stored. Each producer's last batch sent
// again after the rewrite is answered as the duplicate it is (its first
// offset, nothing appended): the producer state survives compaction. Two
// days later the tombstones a pass reached go.
func TestCompactKeysModel(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	ctx := lcCtx(t)
	store, err := s3tier.NewS3Store(ctx, s3Config(testenv.S3(t), "keycompact"))
	if err != nil {
		t.Fatal(err)
	}
	meta := metastore.New(cli, lcNS)
	tp, err := meta.CreateTopic(ctx, "kc", 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1", "min.cleanable.dirty.ratio": "0"})
	if err != nil {
		t.Fatal(err)
	}
	w := newEngine(t, cli, store)
	rng := mrand.New(mrand.NewPCG(1, 2))
	codecs := []int8{segment.CompressionNone, segment.CompressionGzip, segment.CompressionSnappy, segment.CompressionLZ4, segment.CompressionZstd}
	seq := map[int64]int32{}
	lastRaw, lastBase := map[int64][]byte{}, map[int64]int64{} // each producer's last batch
	var all []modelRecord
	next := int64(0)
	ts := time.Now().Add(-time.Hour).UnixMilli()
	for flush := range 8 {
		var pend []*engine.Pending
		for b := range 8 {
			pid := int64(1 + rng.IntN(3))
			n := 1 + rng.IntN(6)
			o := segmenttest.BatchOptions{Idempotent: true, ProducerID: pid, BaseSequence: seq[pid], Timestamp: ts}
			for i := range n {
				k := fmt.Sprintf("key-%02d", rng.IntN(40))
				v := fmt.Appendf(nil, "value %d/%d/%d %s", flush, b, i, bytes.Repeat([]byte("x"), rng.IntN(40)))
				tomb := rng.IntN(6) == 0
				h := []kmsg.Header{{Key: "flush", Value: fmt.Appendf(nil, "%d", flush)}}
				o.Keys, o.Values, o.Tombstones, o.Headers = append(o.Keys, []byte(k)), append(o.Values, v), append(o.Tombstones, tomb), append(o.Headers, h)
				r := modelRecord{Offset: next, Key: k, Value: v, Headers: h, Timestamp: ts + int64(i)}
				if tomb {
					r.Value, r.ValueNull = nil, true
				}
				all = append(all, r)
				next++
			}
			seq[pid] += int32(n)
			ts += int64(n)
			raw, err := segment.Recompress(segmenttest.Batch(o), segment.Codec{Type: codecs[rng.IntN(len(codecs))], Level: segment.DefaultLevel})
			if err != nil {
				t.Fatal(err)
			}
			lastRaw[pid], lastBase[pid] = raw, next-int64(n)
			pend = append(pend, w.Produce(ctx, tp.ID, 0, raw))
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range pend {
			if _, err := p.Wait(ctx); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	// The model: the latest record of each key, in offset order.
	last := map[string]modelRecord{}
	for _, r := range all {
		last[r.Key] = r
	}
	var want []modelRecord
	for _, r := range last {
		want = append(want, r)
	}
	sort.Slice(want, func(i, j int) bool { return want[i].Offset < want[j].Offset })

	cfg := lifecycle.KeyCompactConfig{CompactConfig: compactCfg(t), MapBytes: 30 * (6 + lifecycle.KeyMapOverhead)}
	cfg.TargetBytes = 4 << 10 // several segments
	passes := 0
	for passes < 20 {
		st, err := lifecycle.CompactKeys(ctx, store, meta, cfg, nil)
		if err != nil || st.Failed > 0 {
			t.Fatalf("pass %d: %+v, %v", passes, st, err)
		}
		if st.Passes == 0 {
			break
		}
		passes++
		t.Logf("pass %d: %+v", passes, st)
	}
	if cs, err := meta.GetCleanerState(ctx, tp.ID, 0); err != nil || cs.Checkpoint != next {
		t.Fatalf("cleaner checkpoint %d (%v), want %d", cs.Checkpoint, err, next)
	}
	if passes < 2 {
		t.Errorf("%d passes, want several (the map budget holds 30 of 40 keys)", passes)
	}
	readModel(t, cli, store, tp, want, next)
	for pid, raw := range lastRaw {
		if res, err := produceOne(t, w, tp.ID, 0, raw); err != nil || res.BaseOffset != lastBase[pid] {
			t.Errorf("producer %d's last batch sent again after compaction: offset %d (%v), want the duplicate's %d", pid, res.BaseOffset, err, lastBase[pid])
		}
	}
	readModel(t, cli, store, tp, want, next)

	// Two days later, with a new record to make the log dirty: every
	// tombstone reached by an earlier pass is past delete.retention.ms (one
	// day) and goes; the latest live values stay.
	if _, err := produceOne(t, w, tp.ID, 0, segmenttest.Batch(segmenttest.BatchOptions{Keys: [][]byte{[]byte("new")}, Values: [][]byte{[]byte("v")}, Timestamp: ts})); err != nil {
		t.Fatal(err)
	}
	cfg.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	st, err := lifecycle.CompactKeys(ctx, store, meta, cfg, nil)
	if err != nil || st.Passes != 1 || st.TombstonesRemoved == 0 {
		t.Fatalf("pass two days later: %+v, %v; want one pass removing tombstones", st, err)
	}
	var live []modelRecord
	for _, r := range want {
		if !r.ValueNull {
			live = append(live, r)
		}
	}
	live = append(live, modelRecord{Offset: next, Key: "new", Value: []byte("v"), Timestamp: ts})
	if st.TombstonesRemoved != int64(len(want)-len(live)+1) {
		t.Errorf("%d tombstones removed, want %d", st.TombstonesRemoved, len(want)-len(live)+1)
	}
	readModel(t, cli, store, tp, live, next+1)
	t.Logf("%d records produced, %d keys, %d live after %d passes", len(all), len(want), len(live), passes+1)
}

// readModel reads the partition from offset 0 through a new engine and
// fails unless it holds exactly want, and ends at next.
func readModel(t *testing.T, cli *clientv3.Client, store s3tier.Store, tp metastore.Topic, want []modelRecord, next int64) {
	t.Helper()
	ctx := lcCtx(t)
	r := newEngine(t, cli, store)
	var got []modelRecord
	stored := 0
	for _, raw := range readFrom(t, r, tp.ID, 0, 0) {
		h, _ := segment.ParseBatchHeader(raw)
		recs, err := segment.DecodeRecords(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			stored++
			m := modelRecord{Offset: h.BaseOffset + int64(rec.OffsetDelta), Key: string(rec.Key), Value: rec.Value, ValueNull: rec.ValueNull,
				Headers: rec.Headers, Timestamp: rec.Timestamp}
			if m.ValueNull {
				m.Value = nil
			}
			got = append(got, m)
		}
	}
	// Keep only what a compacted log must still hold once all passes ran:
	// with every key mapped in some pass, that is exactly the model.
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read %d records, want the model's %d", len(got), len(want))
		for i := range max(len(got), len(want)) {
			var g, w modelRecord
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("record %d: got %+v, want %+v", i, g, w)
			}
		}
	}
	if _, n, err := r.Offsets(ctx, tp.ID, 0); err != nil || n != next {
		t.Errorf("next offset %d (%v), want %d", n, err, next)
	}
	checkIndex(t, metastore.New(cli, lcNS), store, tp)
	t.Logf("%d records read back", stored)
}

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

// TestCompactKeysLags proves the configs that say when records are
// compacted: min.compaction.lag.ms (records younger stay, even superseded),
// segment.ms and segment.bytes (entries committed within segment.ms with
// less than segment.bytes after them are the active head and stay dirty), min.cleanable.dirty.ratio (a pass waits until enough of the log
// is dirty) and max.compaction.lag.ms (a dirty record that old forces a
// pass whatever the ratio).
func TestCompactKeysLags(t *testing.T) {
	cli, store, meta, ctx := dirEnv(t)
	e := newEngine(t, cli, store)
	produce := func(tp metastore.Topic, ts int64, kvs ...string) {
		t.Helper()
		o := segmenttest.BatchOptions{Timestamp: ts}
		for i := 0; i < len(kvs); i += 2 {
			o.Keys, o.Values = append(o.Keys, []byte(kvs[i])), append(o.Values, []byte(kvs[i+1]))
		}
		if _, err := produceOne(t, e, tp.ID, 0, segmenttest.Batch(o)); err != nil {
			t.Fatal(err)
		}
	}
	pass := func(tp metastore.Topic, later time.Duration) lifecycle.KeyCompactStats {
		t.Helper()
		cfg := lifecycle.KeyCompactConfig{CompactConfig: compactCfg(t)}
		cfg.Now = func() time.Time { return time.Now().Add(time.Second + later) }
		st, err := meta.GetCleanerState(ctx, tp.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := lifecycle.CompactKeysPartition(ctx, store, meta, cfg, tp, 0, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ks.MappedTo > st.Checkpoint {
			st.AddPass(ks.MappedTo, cfg.Now().UnixMilli())
			if err := meta.SaveCleanerState(ctx, tp.ID, 0, st); err != nil {
				t.Fatal(err)
			}
		}
		return ks
	}
	now := time.Now().UnixMilli()
	for _, c := range []struct {
		name    string
		configs map[string]string
	}{
		{"min.compaction.lag.ms", map[string]string{"min.compaction.lag.ms": "3600000", "segment.ms": "1"}},
		{"segment.ms", map[string]string{"segment.ms": "3600000"}},
	} {
		c.configs["cleanup.policy"], c.configs["min.cleanable.dirty.ratio"] = "compact", "0"
		tp, err := meta.CreateTopic(ctx, "lag-"+strings.ReplaceAll(c.name, ".", "-"), 1, c.configs)
		if err != nil {
			t.Fatal(err)
		}
		produce(tp, now, "a", "1", "a", "2")
		if st := pass(tp, 0); st.RecordsRemoved != 0 || st.MappedTo != -1 {
			t.Errorf("%s of an hour, records just written: %+v, want nothing compacted", c.name, st)
		}
		if st := pass(tp, 2*time.Hour); st.RecordsRemoved != 1 {
			t.Errorf("%s of an hour, two hours later: %+v, want the older a removed", c.name, st)
		}
	}

	// min.cleanable.dirty.ratio 0.9 after a first pass: a small dirty tail
	// waits, until its first record is max.compaction.lag.ms (1 h) old.
	tp, err := meta.CreateTopic(ctx, "lag-max", 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1",
		"min.cleanable.dirty.ratio": "0.9", "max.compaction.lag.ms": "3600000"})
	if err != nil {
		t.Fatal(err)
	}
	var kvs []string
	for i := range 50 {
		kvs = append(kvs, fmt.Sprintf("k%02d", i), strings.Repeat("v", 100))
	}
	produce(tp, now, kvs...)
	if st := pass(tp, 0); st.MappedTo != 50 || st.Forced {
		t.Fatalf("first pass (all dirty): %+v, want offsets up to 50 mapped, not forced", st)
	}
	produce(tp, now, "k00", "new")
	if st := pass(tp, 0); st.MappedTo != -1 {
		t.Errorf("a dirty tail below min.cleanable.dirty.ratio: %+v, want no pass", st)
	}
	if st := pass(tp, 2*time.Hour); !st.Forced || st.RecordsRemoved != 1 {
		t.Errorf("the dirty tail max.compaction.lag.ms old: %+v, want a forced pass removing the older k00", st)
	}

	// segment.bytes 200 with segment.ms at its 7 days: an entry is past
	// the head once 200 bytes of records follow it, as Kafka's active
	// segment rolls at segment.bytes.
	tp, err = meta.CreateTopic(ctx, "lag-bytes", 1, map[string]string{"cleanup.policy": "compact", "segment.bytes": "200",
		"min.cleanable.dirty.ratio": "0"})
	if err != nil {
		t.Fatal(err)
	}
	produce(tp, now, "a", "1", "a", "2")
	if st := pass(tp, 0); st.MappedTo != -1 {
		t.Errorf("segment.bytes 200, one small entry (the head): %+v, want no pass", st)
	}
	produce(tp, now, "b", strings.Repeat("v", 300))
	if st := pass(tp, 0); st.RecordsRemoved != 1 || st.MappedTo != 2 {
		t.Errorf("segment.bytes 200, 300 bytes after the first entry: %+v, want a=1 removed, offsets below 2 mapped", st)
	}
}

// TestCompactKeysDropsKeyless proves that, as Kafka's cleaner, a pass
// removes records without a key (written before the topic became
// compacted: the agents refuse them on a compacted topic) with the
// superseded ones.
func TestCompactKeysDropsKeyless(t *testing.T) {
	cli, store, meta, ctx := dirEnv(t)
	e := newEngine(t, cli, store)
	tp, err := meta.CreateTopic(ctx, "keyless", 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1", "min.cleanable.dirty.ratio": "0"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	for _, o := range []segmenttest.BatchOptions{
		{Keys: [][]byte{nil, []byte("a"), nil}, Values: [][]byte{[]byte("x"), []byte("1"), []byte("y")}, Timestamp: now},
		{Keys: [][]byte{[]byte("a")}, Values: [][]byte{[]byte("2")}, Timestamp: now},
	} {
		if _, err := produceOne(t, e, tp.ID, 0, segmenttest.Batch(o)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := lifecycle.KeyCompactConfig{CompactConfig: compactCfg(t)}
	cfg.Now = func() time.Time { return time.Now().Add(time.Second) }
	ks, err := lifecycle.CompactKeysPartition(ctx, store, meta, cfg, tp, 0, metastore.CleanerState{}, nil)
	if err != nil || ks.RecordsRemoved != 3 {
		t.Fatalf("pass: %+v, %v; want x, y (no key) and a=1 removed", ks, err)
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
func dirEnv(t *testing.T) (*clientv3.Client, s3tier.Store, *metastore.Store, context.Context) {
	t.Helper()
	cli, _ := testenv.Etcd(t)
	store, err := s3tier.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cli, store, metastore.New(cli, lcNS), lcCtx(t)
}

// produceOne produces raw to a partition through e and flushes: one
// object, one index entry. It returns the produce's answer.
func produceOne(t *testing.T, e *engine.Engine, id metastore.TopicID, p int32, raw []byte) (engine.ProduceResult, error) {
	t.Helper()
	ctx := lcCtx(t)
	pend := e.Produce(ctx, id, p, raw)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return pend.Wait(ctx)
}
