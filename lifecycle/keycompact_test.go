package lifecycle_test

import (
	"bytes"
	"context"
	"fmt"
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
