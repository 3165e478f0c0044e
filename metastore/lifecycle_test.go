package metastore_test

import (
	"context"
	"testing"
	"time"

	"github.com/shale-dev/shale/metastore"
)

// TestReplaceEntries proves the compaction swap: it replaces a run with one
// entry in one transaction, and refuses (ErrConflict, nothing written) when
// an entry of the run changed after the read or the topic was deleted.
func TestReplaceEntries(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	tp := mustCreateTopic(t, s, "swap", 1)
	for range 5 {
		mustCommit(t, s, tp.ID, 0, 10)
	}
	var es []metastore.IndexEntry
	_, rev, err := s.ScanIndex(ctx, tp.ID, 0, func(e metastore.IndexEntry) bool { es = append(es, e); return true })
	if err != nil || len(es) != 5 {
		t.Fatalf("scan: %d entries, %v", len(es), err)
	}
	seg := metastore.IndexEntry{Kind: metastore.EntrySegment, BaseOffset: 10, LastOffset: 39, ObjectKey: "seg/x", Pos: 1000, Size: 97,
		StoredBase: 10, Batches: 3, DataBytes: 984, CommittedMs: 1}
	if err := s.ReplaceEntries(ctx, tp.ID, 0, rev, es[1], es[3], seg); err != nil {
		t.Fatal(err)
	}
	got, _ := s.FindEntries(ctx, tp.ID, 0, 0, 10)
	if len(got) != 3 || got[1] != seg || got[2].BaseOffset != 40 {
		t.Fatalf("entries after swap: %+v", got)
	}
	// The same swap again, at the old revision: the run changed.
	wantErr(t, s.ReplaceEntries(ctx, tp.ID, 0, rev, es[1], es[3], seg), metastore.ErrConflict)
	// A run whose entries moved on (retention deleted the first) is refused.
	if _, err := s.TruncateBefore(ctx, tp.ID, 0, 10); err != nil {
		t.Fatal(err)
	}
	_, rev2, _ := s.ScanIndex(ctx, tp.ID, 0, func(metastore.IndexEntry) bool { return false })
	wantErr(t, s.ReplaceEntries(ctx, tp.ID, 0, rev2, es[0], es[4], metastore.IndexEntry{Kind: metastore.EntrySegment, BaseOffset: 0, LastOffset: 49,
		ObjectKey: "seg/y", Pos: 1000, Size: 97, StoredBase: 0, Batches: 5, DataBytes: 984, CommittedMs: 1}), metastore.ErrConflict)
	if _, err := s.DeleteTopic(ctx, "swap"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.ReplaceEntries(ctx, tp.ID, 0, rev2, es[4], es[4], es[4]), metastore.ErrConflict)
	if n, _ := s.CountEntries(ctx, tp.ID, 0); n != 0 {
		t.Fatalf("%d entries resurrected for a deleted topic", n)
	}
}

// TestTruncateBefore proves the log start only moves forward, deletes whole
// entries below it only, and refuses offsets past the end.
func TestTruncateBefore(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	tp := mustCreateTopic(t, s, "trunc", 1)
	mustCommit(t, s, tp.ID, 0, 10, 10, 10)
	start, err := s.TruncateBefore(ctx, tp.ID, 0, 15)
	if err != nil || start != 15 {
		t.Fatalf("truncate before 15: %d %v", start, err)
	}
	if n, _ := s.CountEntries(ctx, tp.ID, 0); n != 2 {
		t.Fatalf("%d entries left, want 2 (the straddling one stays)", n)
	}
	if start, _ := s.TruncateBefore(ctx, tp.ID, 0, 5); start != 15 {
		t.Fatalf("truncate backwards moved the start to %d", start)
	}
	_, err = s.TruncateBefore(ctx, tp.ID, 0, 31)
	wantErr(t, err, metastore.ErrOffsetOutOfRange)
	if start, err := s.TruncateBefore(ctx, tp.ID, 0, 30); err != nil || start != 30 {
		t.Fatalf("truncate everything: %d %v", start, err)
	}
	if n, _ := s.CountEntries(ctx, tp.ID, 0); n != 0 {
		t.Fatalf("%d entries left after truncating everything", n)
	}
}

// TestCampaignJob proves one leader per job: a second candidate waits until
// the first resigns, and takes over when the first one's lease is gone.
func TestCampaignJob(t *testing.T) {
	s, _, eps := newStore(t)
	other := metastore.New(testenvClient(t, eps), testNS)
	ctx := testCtx(t)
	a, err := s.CampaignJob(ctx, "gc", "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *metastore.JobLease, 1)
	go func() {
		b, err := other.CampaignJob(ctx, "gc", "b", time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	select {
	case <-got:
		t.Fatal("second candidate leads while the first holds the job")
	case <-time.After(300 * time.Millisecond):
	}
	if h, _ := s.JobLeader(ctx, "gc"); h != "a" {
		t.Fatalf("leader %q, want a", h)
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if h, _ := s.JobLeader(ctx, "gc"); h != "b" {
			t.Fatalf("leader %q after a resigned, want b", h)
		}
		_ = b.Close(context.Background())
	case <-time.After(5 * time.Second):
		t.Fatal("second candidate did not take over")
	}
}
