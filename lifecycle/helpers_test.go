package lifecycle_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/engine/enginetest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/segment/segmenttest"
	"github.com/shale-dev/shale/span"
)

const lcNS = "/shale-lc"

// lcCtx is a context bounded by the test and a generous timeout.
func lcCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newEngine starts an engine that seals only on Flush.
func newEngine(t testing.TB, cli *clientv3.Client, store s3tier.Store) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Config{DataDir: t.TempDir(), FlushInterval: time.Hour, FlushBytes: 1 << 30, UploadTimeout: 20 * time.Second},
		store, metastore.New(cli, lcNS), nil)
	return enginetest.Started(t, e, err)
}

// batchValues returns n distinct 16-byte values for (flush, batch).
func batchValues(flush, batch, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		v := make([]byte, 16)
		binary.BigEndian.PutUint32(v, uint32(flush))
		binary.BigEndian.PutUint32(v[4:], uint32(batch))
		binary.BigEndian.PutUint64(v[8:], uint64(i))
		out[i] = v
	}
	return out
}

// produceFlushes produces, flushes times, batchesPerFlush batches of
// recordsPerBatch records to every partition, and flushes after each round,
// so each round is one object holding a chunk of every partition. Record
// timestamps are ts(flush, batch) + record index.
func produceFlushes(t testing.TB, e *engine.Engine, tp metastore.Topic, flushes, batchesPerFlush, recordsPerBatch int, ts func(flush, batch int) int64) {
	t.Helper()
	ctx := lcCtx(t)
	for f := range flushes {
		var pend []*engine.Pending
		for p := int32(0); p < tp.Partitions; p++ {
			for b := range batchesPerFlush {
				raw := segmenttest.Batch(segmenttest.BatchOptions{Values: batchValues(f, b, recordsPerBatch), Timestamp: ts(f, b)})
				pend = append(pend, e.Produce(ctx, tp.ID, p, raw))
			}
		}
		if err := e.Flush(ctx); err != nil {
			t.Fatalf("flush %d: %v", f, err)
		}
		for _, pd := range pend {
			if _, err := pd.Wait(ctx); err != nil {
				t.Fatalf("produce (flush %d): %v", f, err)
			}
		}
	}
}

// readFrom fetches a partition from offset to its end, 1 MiB per fetch (a
// Kafka consumer's default per partition), and returns the batches as served.
func readFrom(t testing.TB, e *engine.Engine, id metastore.TopicID, p int32, off int64) [][]byte {
	t.Helper()
	return enginetest.ReadFrom(t, func(ctx context.Context, off int64, max int) ([]byte, int64, error) {
		res, err := e.Fetch(ctx, id, p, off, max)
		return res.Records, res.HighWatermark, err
	}, off, 1<<20)
}

func sameBatches(t testing.TB, what string, got, want [][]byte) {
	enginetest.SameBatches(t, what, got, want)
}

// checkIndex proves there is no dangling index entry: every entry of every
// partition of tp points to an existing object whose bytes match the
// entry's CRC (and, for a segment, every chunk's CRC), and the entries are
// dense from the first to the partition's next offset. It returns the
// entry count and the set of objects referenced.
func checkIndex(t testing.TB, meta *metastore.Store, store s3tier.Store, tp metastore.Topic) (int, map[string]bool) {
	t.Helper()
	ctx := lcCtx(t)
	fc := span.NewFooterCache(0)
	objs := make(map[string]bool)
	n := 0
	for p := int32(0); p < tp.Partitions; p++ {
		var entries []metastore.IndexEntry
		st, _, err := meta.ScanIndex(ctx, tp.ID, p, func(e metastore.IndexEntry) bool { entries = append(entries, e); return true })
		if err != nil {
			t.Fatal(err)
		}
		next := int64(-1)
		for _, e := range entries {
			if next >= 0 && e.BaseOffset != next {
				t.Fatalf("p%d: entry at %d, want %d", p, e.BaseOffset, next)
			}
			next = e.LastOffset + 1
			data, err := span.ReadRange(ctx, store, e.ObjectKey, e.Pos, e.Size)
			if err != nil {
				t.Fatalf("p%d: dangling entry %d..%d: %v", p, e.BaseOffset, e.LastOffset, err)
			}
			if segment.Checksum(data) != e.CRC {
				t.Fatalf("p%d: entry %d..%d: CRC mismatch", p, e.BaseOffset, e.LastOffset)
			}
			spans, err := fc.Spans(ctx, store, tp.ID, p, e)
			if err != nil {
				t.Fatalf("p%d: entry %d..%d: %v", p, e.BaseOffset, e.LastOffset, err)
			}
			for _, sp := range spans {
				if _, err := span.ReadSpan(ctx, store, sp); err != nil {
					t.Fatalf("p%d: entry %d..%d: %v", p, e.BaseOffset, e.LastOffset, err)
				}
			}
			objs[e.ObjectKey] = true
			n++
		}
		if len(entries) > 0 && (next != st.NextOffset || entries[0].BaseOffset > st.LogStartOffset) {
			t.Fatalf("p%d: entries cover %d..%d, state says [%d, %d)", p, entries[0].BaseOffset, next, st.LogStartOffset, st.NextOffset)
		}
	}
	return n, objs
}

func countEntries(t testing.TB, meta *metastore.Store, tp metastore.Topic) int64 {
	t.Helper()
	var n int64
	for p := int32(0); p < tp.Partitions; p++ {
		c, err := meta.CountEntries(lcCtx(t), tp.ID, p)
		if err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}

// compactCfg compacts everything already committed.
func compactCfg(t testing.TB) lifecycle.CompactConfig {
	return lifecycle.CompactConfig{Settle: time.Nanosecond, MinEntries: 2, TempDir: t.TempDir(),
		Now: func() time.Time { return time.Now().Add(time.Second) }}
}

func isOutOfRange(err error) bool { return errors.Is(err, kerr.OffsetOutOfRange) }

// s3Config returns a store configuration for srv under prefix.
// s3Store is a store on srv under prefix (s3Config); t fails if it cannot
// be opened.
func s3Store(ctx context.Context, t testing.TB, srv testenv.S3Server, prefix string) s3tier.Store {
	t.Helper()
	store, err := s3tier.NewS3Store(ctx, s3Config(srv, prefix))
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func s3Config(srv testenv.S3Server, prefix string) s3tier.S3Config {
	return s3tier.S3Config{Bucket: srv.Bucket, Prefix: prefix, Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxBackoff: 50 * time.Millisecond}
}
