package agent_test

import (
	"context"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/engine/enginetest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
)

// TestCompactedModelThroughAgents is key compaction's model test through
// the Kafka protocol on a real S3 server (versitygw): five idempotent
// franz-go producers, each with its own codec (none, gzip, snappy, lz4,
// zstd), write random keys, values,
// headers and tombstones through agent A; the lifecycle runners of both
// agents elect one to run the key-compaction job (with a key map holding
// 30 of the 40 keys, so several passes); a consumer on agent B from the
// start soon reads exactly the model's latest record of each key
// (tombstones included), in offset order, at the offsets first assigned,
// with values, headers and timestamps intact, and nothing else. Then,
// with the runners' clock two days on and a new record making the log
// dirty, the tombstones go (delete.retention.ms, one day) and only the
// live keys remain; the producers keep producing with their idempotent
// sequences after their batches were rewritten.
func TestCompactedModelThroughAgents(t *testing.T) {
	srv := testenv.S3(t)
	c := agenttest.Start(t, agenttest.Options{Agents: 2, S3: &srv})
	ctx := testCtx(t, 90*time.Second)
	const topic = "kc-model"
	if _, err := c.Meta.CreateTopic(ctx, topic, 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1", "min.cleanable.dirty.ratio": "0"}); err != nil {
		t.Fatal(err)
	}
	var skew atomic.Int64 // the runners' clock, ahead of time.Now
	for i := range c.Agents {
		lc, err := lifecycle.New(lifecycle.Config{Holder: fmt.Sprint("agent ", i), Interval: 100 * time.Millisecond, LeaseTTL: 2 * time.Second,
			KeyMapBytes: 30 * (6 + lifecycle.KeyMapOverhead), ManifestInterval: -1,
			Compaction: lifecycle.CompactConfig{Settle: time.Millisecond, MinEntries: 1000, TargetBytes: 4 << 10, TempDir: t.TempDir()},
			Now:        func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }}, c.Store, c.Meta, nil)
		if err != nil {
			t.Fatal(err)
		}
		lc.Start()
		t.Cleanup(lc.Close)
	}
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	var producers []*kgo.Client
	for _, codec := range codecs {
		producers = append(producers, c.Client(t, pinnedDialer(c.Agents[0].Addr), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec)))
	}
	type rec struct {
		off     int64
		key     string
		val     string
		null    bool
		headers string
		ts      int64
	}
	rng := mrand.New(mrand.NewPCG(5, 6))
	latest := map[string]rec{}
	ts := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	produce := func(p *kgo.Client, rs ...*kgo.Record) {
		t.Helper()
		if err := p.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		for _, r := range rs {
			latest[string(r.Key)] = rec{r.Offset, string(r.Key), string(r.Value), r.Value == nil, fmt.Sprint(r.Headers), r.Timestamp.UnixMilli()}
		}
	}
	n := 0
	for range 60 {
		var rs []*kgo.Record
		for range 1 + rng.IntN(5) {
			r := &kgo.Record{Key: fmt.Appendf(nil, "key-%02d", rng.IntN(40)), Value: fmt.Appendf(nil, "value %d %s", n, strings.Repeat("x", rng.IntN(30))),
				Headers: []kgo.RecordHeader{{Key: "n", Value: fmt.Append(nil, n)}}, Timestamp: ts.Add(time.Duration(n) * time.Millisecond)}
			if rng.IntN(6) == 0 {
				r.Value = nil // a tombstone
			}
			rs = append(rs, r)
			n++
		}
		produce(producers[rng.IntN(len(producers))], rs...)
	}
	model := func(live bool) []rec {
		var want []rec
		for _, r := range latest {
			if !live || !r.null {
				want = append(want, r)
			}
		}
		slices.SortFunc(want, func(a, b rec) int { return int(a.off - b.off) })
		return want
	}
	// readAll reads the partition from the start through agent B up to
	// the latest record produced (always kept).
	readAll := func(end int64) []rec {
		r := c.Client(t, pinnedDialer(c.Agents[1].Addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		defer r.Close()
		var got []rec
		for len(got) == 0 || got[len(got)-1].off < end {
			fs := r.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("read up to offset %d: %v", end, ctx.Err())
			}
			fs.EachRecord(func(kr *kgo.Record) {
				got = append(got, rec{kr.Offset, string(kr.Key), string(kr.Value), kr.Value == nil, fmt.Sprint(kr.Headers), kr.Timestamp.UnixMilli()})
			})
		}
		return got
	}
	converge := func(want []rec) int {
		t.Helper()
		reads := 0
		for {
			got := readAll(want[len(want)-1].off)
			reads++
			if reflect.DeepEqual(got, want) {
				return reads
			}
			if ctx.Err() != nil || reads > 200 {
				t.Fatalf("after %d reads: read %d records, want the model's %d:\ngot  %+v\nwant %+v", reads, len(got), len(want), got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	want := model(false)
	reads := converge(want)
	cs, err := c.Meta.GetCleanerState(ctx, mustTopicID(t, c, topic), 0)
	if err != nil || len(cs.Passes) < 2 {
		t.Fatalf("cleaner state %+v (%v): want several passes (the key map holds 30 of 40 keys)", cs, err)
	}
	t.Logf("%d records produced by %d producers, %d keys; model read after %d reads, %d passes", n, len(producers), len(want), reads, len(cs.Passes))

	// Two days on, a new record from each producer: tombstones past
	// delete.retention.ms go.
	skew.Store(int64(48 * time.Hour))
	for i, p := range producers {
		produce(p, &kgo.Record{Key: fmt.Appendf(nil, "new-%d", i), Value: []byte("v"), Timestamp: ts.Add(time.Duration(n+i) * time.Millisecond)})
	}
	live := model(true)
	if len(live) == len(want)+len(producers) {
		t.Fatal("the model has no tombstone to remove")
	}
	converge(live)
}

// mustTopicID is the ID of a topic of the cluster.
func mustTopicID(t *testing.T, c *agenttest.Cluster, name string) metastore.TopicID {
	t.Helper()
	tp, err := c.Meta.GetTopic(testCtx(t, 10*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	return tp.ID
}

// TestKeyCompactedTransactions proves key compaction over transactional
// writes, as Kafka's log cleaner treats them: with franz-go transactional
// producers through agent A (a committed transaction, an aborted one, a
// committed one, then one left open) around plain records, a compaction
// pass keeps, below the last stable offset, only the latest committed
// record of each key (the aborted records are removed, never mapped, so
// an aborted value never hides a committed one) and leaves the open
// transaction and everything after it dirty; read_uncommitted and
// read_committed consumers on agent B read exactly that, at the offsets
// first assigned. Once the open transaction commits, the next pass
// compacts it too; delete.retention.ms later the markers go, the abort
// marker with its aborted-transaction index entry, both isolation levels
// still read the same, and a later transaction of the producer that once
// aborted is read_committed (no index entry outlives its marker).
func TestKeyCompactedTransactions(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	const topic = "kc-txn"
	if _, err := c.Meta.CreateTopic(ctx, topic, 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1", "min.cleanable.dirty.ratio": "0"}); err != nil {
		t.Fatal(err)
	}
	type kv struct {
		off int64
		key string
		val string
	}
	produce := func(cl *kgo.Client, pairs ...string) []kv {
		t.Helper()
		var out []kv
		for i := 0; i < len(pairs); i += 2 {
			r := &kgo.Record{Key: []byte(pairs[i]), Value: []byte(pairs[i+1])}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s=%s: %v", pairs[i], pairs[i+1], err)
			}
			out = append(out, kv{r.Offset, pairs[i], pairs[i+1]})
		}
		return out
	}
	txn := func(cl *kgo.Client, end *kgo.TransactionEndTry, pairs ...string) []kv {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		out := produce(cl, pairs...)
		if end != nil {
			if err := cl.EndTransaction(ctx, *end); err != nil {
				t.Fatalf("end transaction: %v", err)
			}
		}
		return out
	}
	commit, abort := kgo.TryCommit, kgo.TryAbort
	dial := pinnedDialer(c.Agents[0].Addr)
	plain := c.Client(t, dial, kgo.DefaultProduceTopic(topic))
	tx1 := c.Client(t, dial, kgo.DefaultProduceTopic(topic), kgo.TransactionalID("kc-t1"), kgo.TransactionTimeout(time.Minute))
	tx2 := c.Client(t, dial, kgo.DefaultProduceTopic(topic), kgo.TransactionalID("kc-t2"), kgo.TransactionTimeout(time.Minute))

	p1 := produce(plain, "a", "1", "b", "1")
	txn(tx1, &commit, "a", "2", "c", "1")
	txn(tx1, &abort, "a", "3", "b", "2")
	t3 := txn(tx1, &commit, "a", "4", "c", "2")
	open := txn(tx2, nil, "b", "3")
	after := produce(plain, "a", "5")

	cfg := lifecycle.KeyCompactConfig{CompactConfig: lifecycle.CompactConfig{Settle: time.Nanosecond, TempDir: t.TempDir(),
		Now: func() time.Time { return time.Now().Add(time.Second) }}}
	compact := func() lifecycle.KeyCompactStats {
		t.Helper()
		st, err := lifecycle.CompactKeys(ctx, c.Store, c.Meta, cfg, nil)
		if err != nil || st.Failed > 0 {
			t.Fatalf("compaction: %+v, %v", st, err)
		}
		return st
	}
	st := compact()
	if st.Passes != 1 || st.RecordsRemoved != 5 {
		t.Fatalf("compaction: %+v; want one pass removing a=1, a=2, c=1 (superseded) and a=3, b=2 (aborted)", st)
	}
	read := func(committed bool, last int64) []kv {
		t.Helper()
		opts := []kgo.Opt{pinnedDialer(c.Agents[1].Addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}})}
		if committed {
			opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		}
		r := c.Client(t, opts...)
		defer r.Close()
		var got []kv
		for len(got) == 0 || got[len(got)-1].off < last {
			fs := r.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("read up to %d (committed %v): got %+v", last, committed, got)
			}
			fs.EachRecord(func(rec *kgo.Record) { got = append(got, kv{rec.Offset, string(rec.Key), string(rec.Value)}) })
		}
		return got
	}
	// Agent B's cached index follows a compaction's swap through etcd's
	// watch, a moment later: read until it shows the swap (bounded).
	eventually := func(committed bool, last int64, want []kv) []kv {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := read(committed, last)
			if reflect.DeepEqual(got, want) || time.Now().After(deadline) {
				return got
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Below the open transaction: b=1, a=4, c=2; then the open b=3 and a=5.
	stable := []kv{p1[1], t3[0], t3[1]}
	if want := append(append(slices.Clone(stable), open...), after...); !reflect.DeepEqual(eventually(false, after[0].off, want), want) {
		t.Errorf("read_uncommitted: %+v, want %+v", read(false, after[0].off), want)
	}
	if got := eventually(true, t3[1].off, stable); !reflect.DeepEqual(got, stable) {
		t.Errorf("read_committed: %+v, want %+v", got, stable)
	}
	if st := compact(); st.Passes != 0 {
		t.Errorf("a pass below an open transaction that stays open: %+v, want none", st)
	}

	if err := tx2.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if st := compact(); st.Passes != 1 || st.RecordsRemoved != 2 {
		t.Fatalf("compaction after the commit: %+v; want b=1 and a=4 removed", st)
	}
	want := []kv{t3[1], open[0], after[0]}
	if got := eventually(true, after[0].off, want); !reflect.DeepEqual(got, want) {
		t.Errorf("read_committed after the commit: %+v, want %+v", got, want)
	}

	// Two days on (delete.retention.ms: one day), with a new record: the
	// three commit markers go, and the abort marker with its index entry.
	markers := func() (commits, aborts int) {
		id := mustTopicID(t, c, topic)
		fetch := func(ctx context.Context, off int64, max int) ([]byte, int64, error) {
			res, err := c.Agents[1].Engine.Fetch(ctx, id, 0, off, max)
			return res.Records, res.HighWatermark, err
		}
		for _, raw := range enginetest.ReadFrom(t, fetch, 0, 1<<20) {
			if typ, ok := segment.ControlType(raw); ok && typ == kmsg.ControlRecordKeyTypeCommit {
				commits++
			} else if ok {
				aborts++
			}
		}
		return commits, aborts
	}
	if cm, ab := markers(); cm != 3 || ab != 1 {
		t.Fatalf("%d commit and %d abort markers before, want 3 and 1", cm, ab)
	}
	last := produce(plain, "d", "1")
	cfg.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	if st := compact(); st.Passes != 1 || st.MarkersRemoved != 4 {
		t.Fatalf("compaction two days on: %+v; want the 3 commit markers and the abort marker removed", st)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if cm, ab := markers(); cm == 0 && ab == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d commit and %d abort markers left, want none", cm, ab)
		}
	}
	if left, err := c.Meta.AbortedTxns(ctx, mustTopicID(t, c, topic), 0, 0, math.MaxInt64, 10); err != nil || len(left) != 0 {
		t.Fatalf("aborted-transaction index after its marker went: %+v, %v; want empty", left, err)
	}
	last = append(last, txn(tx1, &commit, "e", "1")...)
	want = append(want, last...)
	for _, committed := range []bool{true, false} {
		if got := eventually(committed, last[len(last)-1].off, want); !reflect.DeepEqual(got, want) {
			t.Errorf("read (committed %v) once the markers are gone: %+v, want %+v", committed, got, want)
		}
	}
}
