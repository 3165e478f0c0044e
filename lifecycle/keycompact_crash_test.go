package lifecycle_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// crashKeyCfg makes key compaction write small segments with a small key
// map, so a pass does several swaps and a partition several passes.
func crashKeyCfg(tmp string) lifecycle.KeyCompactConfig {
	c := lifecycle.KeyCompactConfig{CompactConfig: crashCompactCfg(tmp), MapBytes: 12 * (4 + lifecycle.KeyMapOverhead)}
	c.TargetBytes = 4 << 10
	return c
}

// TestKilledKeyCompactionKeepsLatest kills a process running key
// compaction, merge compaction and GC (no grace) with SIGKILL 20 times at
// random instants while keyed records and tombstones keep arriving. After
// every kill: no index entry dangles (every object exists, CRCs verify,
// entries dense), every record read is the one produced at its offset, and
// for every key the last record read is the model's latest (a live value
// is never lost; a tombstoned key shows its tombstone or nothing, never an
// older value brought back). At the end a clean run leaves exactly the
// model's latest record of each live key and no garbage.
func TestKilledKeyCompactionKeepsLatest(t *testing.T) {
	cli, endpoints := testenv.Etcd(t)
	bucket := t.TempDir()
	store, err := s3tier.NewDirStore(bucket)
	if err != nil {
		t.Fatal(err)
	}
	ctx := lcCtx(t)
	meta := metastore.New(cli, lcNS)
	tp, err := meta.CreateTopic(ctx, "kc-crash", 1, map[string]string{"cleanup.policy": "compact", "segment.ms": "1",
		"min.cleanable.dirty.ratio": "0", "delete.retention.ms": "0"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, cli, store)
	rng := rand.New(rand.NewPCG(3, 4))
	type rec struct {
		key   string
		value string
		tomb  bool
	}
	var all []rec
	ts := time.Now().Add(-time.Hour).UnixMilli()
	produce := func(flushes int) {
		for range flushes {
			var pend []*engine.Pending
			for range 6 {
				var o segmenttest.BatchOptions
				o.Timestamp = ts
				for range 1 + rng.IntN(4) {
					r := rec{key: fmt.Sprintf("k%02d", rng.IntN(15)), value: fmt.Sprintf("v%d", len(all)), tomb: rng.IntN(5) == 0}
					all = append(all, r)
					o.Keys, o.Values, o.Tombstones = append(o.Keys, []byte(r.key)), append(o.Values, []byte(r.value)), append(o.Tombstones, r.tomb)
				}
				pend = append(pend, e.Produce(ctx, tp.ID, 0, segmenttest.Batch(o)))
			}
			if err := e.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for _, pd := range pend {
				if _, err := pd.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// audit reads the partition and checks it against the model; it
	// returns how many records are stored.
	audit := func(when string) int {
		t.Helper()
		last := map[string]int64{}
		for off, r := range all {
			last[r.key] = int64(off)
		}
		seen := map[string]int64{}
		n := 0
		for _, raw := range readFrom(t, newEngine(t, cli, store), tp.ID, 0, 0) {
			h, _ := segment.ParseBatchHeader(raw)
			recs, err := segment.DecodeRecords(raw)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			for _, r := range recs {
				off := h.BaseOffset + int64(r.OffsetDelta)
				if off >= int64(len(all)) || all[off].key != string(r.Key) || all[off].value != string(r.Value) && !r.ValueNull || all[off].tomb != r.ValueNull {
					t.Fatalf("%s: offset %d holds %q=%q (null %v), not what was produced there", when, off, r.Key, r.Value, r.ValueNull)
				}
				seen[string(r.Key)] = off
				n++
			}
		}
		for k, off := range last {
			got, ok := seen[k]
			switch {
			case !all[off].tomb && (!ok || got != off):
				t.Fatalf("%s: key %s: latest value at %d lost (last read %d, present %v)", when, k, off, got, ok)
			case all[off].tomb && ok && got != off:
				t.Fatalf("%s: key %s: deleted at %d, but its older record at %d is back", when, k, off, got)
			}
		}
		return n
	}
	const kills = 20
	midPass, passesSeen, firstPass := 0, 0, 0
	for i := range kills {
		produce(3)
		delay := rng.IntN(150) // later passes: mostly nothing to do
		if i%2 == 0 {
			delay = rng.IntN(10) // the first pass: the new records
		}
		passes, begun := killChild(t, i, "keys", endpoints, bucket, time.Duration(delay)*time.Millisecond)
		if begun > passes {
			midPass++
		}
		if begun == 1 && passes == 0 {
			firstPass++ // killed in the pass that had the new records to compact
		}
		passesSeen += passes
		checkIndex(t, meta, store, tp)
		audit(fmt.Sprintf("after kill %d", i))
	}
	// Clean runs to the end, then exactly the live keys' latest records.
	final := crashKeyCfg(t.TempDir())
	final.MapBytes = 0 // the default: one pass maps everything
	for range 10 {
		st, err := lifecycle.CompactKeys(ctx, store, meta, final, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Passes == 0 {
			break
		}
	}
	if _, err := lifecycle.CollectGarbage(ctx, store, meta, nil, time.Now(), 0, nil); err != nil {
		t.Fatal(err)
	}
	_, refs := checkIndex(t, meta, store, tp)
	n := audit("at the end")
	liveKeys := map[string]bool{}
	for _, r := range all {
		liveKeys[r.key] = !r.tomb
	}
	live := 0
	for _, l := range liveKeys {
		if l {
			live++
		}
	}
	objs, _ := store.List(ctx, "")
	if len(objs) != len(refs) {
		t.Fatalf("bucket holds %d objects, %d referenced: GC left garbage", len(objs), len(refs))
	}
	cs, err := meta.GetCleanerState(ctx, tp.ID, 0)
	if err != nil || cs.Checkpoint != int64(len(all)) {
		t.Fatalf("cleaner checkpoint %d (%v), want %d", cs.Checkpoint, err, len(all))
	}
	t.Logf("%d SIGKILLs, %d mid-pass (%d in a child's first pass, the one with new records), %d whole passes; %d records produced, %d stored at the end, %d live keys", kills, midPass, firstPass, passesSeen, len(all), n, live)
	if n < live || n > len(liveKeys) {
		t.Fatalf("%d records stored at the end, want between the %d live keys and the %d keys (tombstones of the last pass may stay)", n, live, len(liveKeys))
	}
	if firstPass == 0 || passesSeen == 0 {
		t.Fatalf("%d of the %d kills landed in a child's first pass, %d passes completed: want both", firstPass, kills, passesSeen)
	}
}
