package lifecycle_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/engine/enginetest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestRetention proves retention.ms and retention.bytes: old records become
// unreadable (OFFSET_OUT_OF_RANGE), new ones stay readable, ListOffsets
// earliest follows, and the bucket shrinks after GC.
//
// It runs on the local-directory store and on two real S3 servers
// (versitygw and MinIO).
func TestRetention(t *testing.T) {
	t.Run("dir", func(t *testing.T) {
		store := enginetest.DirStore(t)
		testRetention(t, store)
	})
	for name, start := range map[string]func(testing.TB) testenv.S3Server{"versitygw": testenv.S3, "minio": testenv.MinIO} {
		t.Run(name, func(t *testing.T) {
			store, err := s3tier.NewS3Store(lcCtx(t), s3Config(start(t), "retention"))
			if err != nil {
				t.Fatal(err)
			}
			testRetention(t, store)
		})
	}
}

func testRetention(t *testing.T, store s3tier.Store) {
	cli, _ := testenv.Etcd(t)
	ctx := lcCtx(t)
	meta := metastore.New(cli, lcNS)
	byTime := mustTopic(t, meta, "by-time", map[string]string{"retention.ms": "3600000"})
	bySize := mustTopic(t, meta, "by-size", map[string]string{"retention.bytes": "1"})
	forever := mustTopic(t, meta, "forever", nil)
	e := newEngine(t, cli, store)
	now := time.Now()
	old := func(f, b int) int64 { return now.Add(-2 * time.Hour).UnixMilli() }
	fresh := func(f, b int) int64 { return now.UnixMilli() }
	for _, tp := range []metastore.Topic{byTime, forever} {
		produceFlushes(t, e, tp, 5, 2, 10, old)
		produceFlushes(t, e, tp, 5, 2, 10, fresh)
	}
	produceFlushes(t, e, bySize, 4, 1, 10, fresh)
	objsBefore, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}

	st, err := lifecycle.ApplyRetention(ctx, meta, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("retention: %+v", st)
	r := newEngine(t, cli, store)
	start, next, err := r.Offsets(ctx, byTime.ID, 0)
	if err != nil || start != 100 || next != 200 {
		t.Fatalf("by-time offsets [%d, %d) (%v), want [100, 200)", start, next, err)
	}
	if _, err := r.Fetch(ctx, byTime.ID, 0, 99, 1<<20); !isOutOfRange(err) {
		t.Fatalf("fetch below the log start: %v, want OFFSET_OUT_OF_RANGE", err)
	}
	if got := readFrom(t, r, byTime.ID, 0, 100); len(got) != 10 {
		t.Fatalf("by-time: %d batches readable, want the 10 fresh ones", len(got))
	}
	if off, _, err := r.ListOffset(ctx, byTime.ID, 0, engine.EarliestTimestamp); err != nil || off != 100 {
		t.Fatalf("ListOffsets earliest = %d (%v), want 100", off, err)
	}
	if s, _, err := r.Offsets(ctx, bySize.ID, 0); err != nil || s != 30 {
		t.Fatalf("by-size: log start %d (%v), want 30 (the last entry kept)", s, err)
	}
	if s, _, err := r.Offsets(ctx, forever.ID, 0); err != nil || s != 0 {
		t.Fatalf("forever: log start %d (%v), want 0", s, err)
	}
	gc, err := lifecycle.CollectGarbage(ctx, store, meta, nil, time.Now().Add(time.Hour), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	objsAfter, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bucket %d -> %d objects (gc %+v)", len(objsBefore), len(objsAfter), gc)
	// Every flush is one object of one topic: by-time's 5 old rounds and
	// by-size's 3 dropped rounds go.
	if len(objsAfter) != len(objsBefore)-8 || gc.Deleted != 8 {
		t.Fatalf("bucket %d -> %d objects, want 8 fewer", len(objsBefore), len(objsAfter))
	}
	checkIndex(t, meta, store, byTime)
	checkIndex(t, meta, store, bySize)
}

// TestTruncateRacesProduce proves that advancing the log start while
// producers commit to the same partition makes both retry, not fail: every
// produce is acknowledged and offsets stay dense.
func TestTruncateRacesProduce(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := enginetest.DirStore(t)
	ctx := lcCtx(t)
	meta := metastore.New(cli, lcNS)
	tp := mustTopic(t, meta, "race", nil)
	e, err := engine.New(engine.Config{DataDir: t.TempDir(), FlushInterval: time.Millisecond}, store, meta, nil)
	e = enginetest.Started(t, e, err)
	var wg sync.WaitGroup
	var acked atomic.Int64
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				raw := segmenttest.Batch(segmenttest.BatchOptions{Values: batchValues(w, i, 2)})
				if _, err := e.Produce(ctx, tp.ID, 0, raw).Wait(ctx); err != nil {
					t.Errorf("produce during truncation: %v", err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	var truncations int
	for range 30 {
		_, next, err := e.Offsets(ctx, tp.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := meta.TruncateBefore(ctx, tp.ID, 0, next/2); err != nil {
			t.Fatalf("truncate: %v", err)
		}
		truncations++
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	start, next, err := e.Offsets(ctx, tp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if next != 2*acked.Load() {
		t.Fatalf("next offset %d, want %d (2 records per acknowledged batch)", next, 2*acked.Load())
	}
	got := readFrom(t, newEngine(t, cli, store), tp.ID, 0, start)
	t.Logf("%d truncations raced %d acknowledged produces; log [%d, %d), %d batches readable", truncations, acked.Load(), start, next, len(got))
	checkIndex(t, meta, store, tp)
}

// mustTopic creates a one-partition topic or fails the test.
func mustTopic(t testing.TB, meta *metastore.Store, name string, configs map[string]string) metastore.Topic {
	t.Helper()
	tp, err := meta.CreateTopic(lcCtx(t), name, 1, configs)
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return tp
}

// TestRetentionFollowsCleanupPolicy proves retention applies only when
// cleanup.policy includes delete, as in Kafka: a topic stored with
// cleanup.policy=compact keeps its old records whatever retention.ms says,
// while compact,delete and delete topics lose them.
func TestRetentionFollowsCleanupPolicy(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := enginetest.DirStore(t)
	ctx := lcCtx(t)
	meta := metastore.New(cli, lcNS)
	e := newEngine(t, cli, store)
	now := time.Now()
	old := func(f, b int) int64 { return now.Add(-2 * time.Hour).UnixMilli() }
	for _, tc := range []struct {
		policy    string
		wantStart int64
	}{{"compact", 0}, {"compact,delete", 20}, {" delete , compact", 20}, {"delete", 20}} {
		tp, err := meta.CreateTopic(ctx, "policy-"+strings.NewReplacer(",", "-", " ", "").Replace(tc.policy), 1,
			map[string]string{"cleanup.policy": tc.policy, "retention.ms": "3600000"})
		if err != nil {
			t.Fatal(err)
		}
		produceFlushes(t, e, tp, 2, 1, 10, old)
		if _, err := lifecycle.ApplyRetention(ctx, meta, now, nil); err != nil {
			t.Fatal(err)
		}
		if start, _, err := e.Offsets(ctx, tp.ID, 0); err != nil || start != tc.wantStart {
			t.Errorf("cleanup.policy=%q: log start %d (%v), want %d", tc.policy, start, err, tc.wantStart)
		}
	}
}
