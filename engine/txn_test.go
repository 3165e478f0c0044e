package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/segment/segmenttest"
)

func txnBatch(pid int64, epoch int16, seq int32, n int) []byte {
	return segmenttest.Batch(segmenttest.BatchOptions{Records: n, Idempotent: true, Transactional: true,
		ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
}

func marker(t *testing.T, e *Engine, id metastore.TopicID, pid int64, epoch int16, commit bool) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.WriteMarker(ctx, id, 0, pid, epoch, 0, commit, 0).Wait(ctx)
	if err != nil {
		t.Fatalf("marker: %v", err)
	}
	return res.BaseOffset
}

func batchOffsets(t *testing.T, recs []byte) (bases []int64, control []bool) {
	t.Helper()
	bs, err := segment.SplitBatches(recs, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		bases = append(bases, b.Header.BaseOffset)
		control = append(control, b.Header.IsControl())
	}
	return bases, control
}

// TestTransactionLastStableOffsetAndAborts proves, through one engine and
// read back through another (so through etcd, not the writer's memory),
// that a transactional batch holds the last stable offset at its first
// offset until its producer's marker; that read_committed stops there while
// read_uncommitted reads on; that an abort marker takes an offset and
// enters the aborted-transaction index that read_committed returns; and
// that a marker written twice (a coordinator finishing an end again) is
// dropped, taking no offset.
func TestTransactionLastStableOffsetAndAborts(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	w := testEngine(t, cli, store, nil)
	r := testEngine(t, cli, store, nil)
	tp := createTopic(t, cli, "txn", 1)
	ctx := context.Background()

	produce(t, w, tp.ID, 0, segmenttest.Batch(segmenttest.BatchOptions{Records: 2})) // 0-1
	produce(t, w, tp.ID, 0, txnBatch(1000, 0, 0, 3))                                 // 2-4, open
	produce(t, w, tp.ID, 0, segmenttest.Batch(segmenttest.BatchOptions{Records: 1})) // 5

	// r's view of the partition follows etcd's watch; read it fresh.
	if _, err := r.LastStableOffset(ctx, tp.ID, 0); err != nil {
		t.Fatal(err)
	}
	res, err := r.FetchIsolated(ctx, tp.ID, 0, 0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.LastStableOffset != 2 || res.HighWatermark != 6 {
		t.Fatalf("open transaction: last stable %d, high watermark %d; want 2 and 6", res.LastStableOffset, res.HighWatermark)
	}
	if bases, _ := batchOffsets(t, res.Records); len(bases) != 1 || bases[0] != 0 {
		t.Fatalf("read_committed returned batches at %v, want only the one at 0", bases)
	}
	if res, err = r.FetchIsolated(ctx, tp.ID, 0, 0, 1<<20, false); err != nil {
		t.Fatal(err)
	}
	if bases, _ := batchOffsets(t, res.Records); len(bases) != 3 {
		t.Fatalf("read_uncommitted returned batches at %v, want 3", bases)
	}

	if off := marker(t, w, tp.ID, 1000, 0, false); off != 6 {
		t.Fatalf("abort marker at %d, want 6", off)
	}
	if off := marker(t, w, tp.ID, 1000, 0, false); off != -1 {
		t.Fatalf("repeated abort marker answered %d, want -1 (dropped)", off)
	}
	if _, err := r.LastStableOffset(ctx, tp.ID, 0); err != nil {
		t.Fatal(err)
	}
	if res, err = r.FetchIsolated(ctx, tp.ID, 0, 0, 1<<20, true); err != nil {
		t.Fatal(err)
	}
	if res.LastStableOffset != 7 || res.HighWatermark != 7 {
		t.Fatalf("after the abort: last stable %d, high watermark %d; want 7 and 7", res.LastStableOffset, res.HighWatermark)
	}
	bases, control := batchOffsets(t, res.Records)
	if len(bases) != 4 || bases[3] != 6 || !control[3] {
		t.Fatalf("read_committed after the abort: batches at %v (control %v), want 4 ending with the marker at 6", bases, control)
	}
	if len(res.Aborted) != 1 || res.Aborted[0] != (metastore.AbortedTxn{ProducerID: 1000, FirstOffset: 2, LastOffset: 6}) {
		t.Fatalf("aborted transactions %+v, want producer 1000 from 2 to 6", res.Aborted)
	}
	if typ, ok := segment.ControlType(mustBatch(t, res.Records, 3).Raw); !ok || typ != 0 {
		t.Fatalf("marker type %v %v, want abort (0)", typ, ok)
	}
	if off, _, err := r.ListOffsetIsolated(ctx, tp.ID, 0, LatestTimestamp, true); err != nil || off != 7 {
		t.Fatalf("ListOffsets read_committed latest: %d %v, want 7", off, err)
	}
}

func mustBatch(t *testing.T, recs []byte, i int) segment.Batch {
	t.Helper()
	bs, err := segment.SplitBatches(recs, false)
	if err != nil || len(bs) <= i {
		t.Fatalf("batch %d of %d: %v", i, len(bs), err)
	}
	return bs[i]
}

// TestMarkerEpochFencesOlderBatches proves that a marker at a newer epoch
// (the coordinator fencing a producer) makes the partition refuse the old
// epoch's batches with INVALID_PRODUCER_EPOCH, while the new epoch writes.
func TestMarkerEpochFencesOlderBatches(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	e := testEngine(t, cli, dirStore(t), nil)
	tp := createTopic(t, cli, "fence", 1)
	produce(t, e, tp.ID, 0, txnBatch(2000, 0, 0, 1))
	marker(t, e, tp.ID, 2000, 1, false)
	ctx := context.Background()
	if _, err := e.Produce(ctx, tp.ID, 0, txnBatch(2000, 0, 1, 1)).Wait(ctx); !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("old epoch after the fencing marker: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if res := produce(t, e, tp.ID, 0, txnBatch(2000, 1, 0, 1)); res.BaseOffset != 2 {
		t.Fatalf("new epoch written at %d, want 2", res.BaseOffset)
	}
	// Control batches only come from WriteMarker.
	ctl := segment.ControlBatch(2000, 1, true, 0, 0)
	if _, err := e.Produce(ctx, tp.ID, 0, ctl).Wait(ctx); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("produced control batch: %v, want INVALID_RECORD", err)
	}
}

// TestMarkerRefusesLateBatchesOfItsTransaction proves the commit-time
// half of KIP-890 part 1's verification, through etcd (the marker written
// by one engine, the late batches committed by another): a marker records
// its transaction as ended in the partition even when it finds nothing to
// close there (it is not written, so it takes no offset), a batch
// verified against that transaction is then INVALID_TXN_STATE and not
// written, one of the producer's next transaction is written, and a
// marker not written still fences an older epoch.
func TestMarkerRefusesLateBatchesOfItsTransaction(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	store := dirStore(t)
	w := testEngine(t, cli, store, nil)
	r := testEngine(t, cli, store, nil)
	tp := createTopic(t, cli, "late", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const pid, txn = 3000, 70
	if res, err := w.WriteMarker(ctx, tp.ID, 0, pid, 0, txn, false, 0).Wait(ctx); err != nil || res.BaseOffset != -1 {
		t.Fatalf("marker with nothing to close: offset %d, %v; want -1 (not written)", res.BaseOffset, err)
	}
	if _, err := r.ProduceTxn(ctx, tp.ID, 0, txnBatch(pid, 0, 0, 1), 0, txn).Wait(ctx); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("batch of the ended transaction: %v, want INVALID_TXN_STATE", err)
	}
	if res, err := r.ProduceTxn(ctx, tp.ID, 0, txnBatch(pid, 0, 0, 1), 0, txn+5).Wait(ctx); err != nil || res.BaseOffset != 0 {
		t.Fatalf("batch of the next transaction: offset %d, %v; want 0", res.BaseOffset, err)
	}
	if res, err := w.WriteMarker(ctx, tp.ID, 0, pid+1, 1, txn+9, false, 0).Wait(ctx); err != nil || res.BaseOffset != -1 {
		t.Fatalf("fencing marker with nothing to close: offset %d, %v; want -1", res.BaseOffset, err)
	}
	if _, err := r.ProduceTxn(ctx, tp.ID, 0, txnBatch(pid+1, 0, 0, 1), 0, txn+10).Wait(ctx); !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("older epoch after a fencing marker not written: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	st, err := r.meta.PartitionState(ctx, tp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.NextOffset != 1 || len(st.Txns) != 1 || st.Producers[pid].EndedTxn != txn {
		t.Fatalf("partition state %+v: want next offset 1, only the next transaction open, ended transaction %d", st, txn)
	}
}
