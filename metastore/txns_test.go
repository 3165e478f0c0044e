package metastore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/shale-dev/shale/metastore"
)

// TestTxnCoordinatorFencing proves that one agent at a time holds a
// transactional ID; that only the holder writes its state, and only from
// the revision it read; that pending transactional offsets are refused
// once the state moved, become the group's committed offsets at commit
// (once, even when finished twice) and are invisible before; and that the
// claim goes with the holder's lease.
func TestTxnCoordinatorFencing(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	a, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "a", Port: 1}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "b", Port: 2}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	const tid, g = "txn/odd%id", "group-1"
	if holder, mine, err := s.ClaimTxnCoordinator(ctx, tid, a.NodeID(), a.Lease()); err != nil || !mine || holder != a.NodeID() {
		t.Fatalf("a claims: %d %v %v", holder, mine, err)
	}
	if holder, mine, err := s.ClaimTxnCoordinator(ctx, tid, b.NodeID(), b.Lease()); err != nil || mine || holder != a.NodeID() {
		t.Fatalf("b claims a's id: %d %v %v", holder, mine, err)
	}
	st := metastore.TxnState{ProducerID: 5000, TimeoutMs: 60000, Phase: metastore.TxnOngoing, Groups: []string{g}}
	if _, err := s.PutTxnState(ctx, tid, b.Lease(), st); !errors.Is(err, metastore.ErrNotCoordinator) {
		t.Fatalf("b writes a's state: %v, want ErrNotCoordinator", err)
	}
	rev, err := s.PutTxnState(ctx, tid, a.Lease(), st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutTxnState(ctx, tid, a.Lease(), st); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("write from a stale revision: %v, want ErrConflict", err)
	}
	off := metastore.GroupOffset{Topic: "t", Partition: 1, Offset: 77}
	if err := s.PutTxnOffsets(ctx, tid, rev, g, st.ProducerID, []metastore.GroupOffset{off}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FetchGroupOffsets(ctx, g); err != nil || len(got) != 0 {
		t.Fatalf("pending offsets visible before commit: %+v %v", got, err)
	}
	if p, err := s.PendingTxnOffsets(ctx, g); err != nil || !p["t"][1] {
		t.Fatalf("pending: %v %v", p, err)
	}
	st.Revision, st.Phase = rev, metastore.TxnPrepareCommit
	if rev, err = s.PutTxnState(ctx, tid, a.Lease(), st); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTxnOffsets(ctx, tid, st.Revision, g, st.ProducerID, []metastore.GroupOffset{off}); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("offsets after the state moved: %v, want ErrConflict", err)
	}
	if err := s.FinishTxnOffsets(ctx, tid, b.Lease(), g, st.ProducerID, true); !errors.Is(err, metastore.ErrNotCoordinator) {
		t.Fatalf("b finishes a's offsets: %v, want ErrNotCoordinator", err)
	}
	for range 2 {
		if err := s.FinishTxnOffsets(ctx, tid, a.Lease(), g, st.ProducerID, true); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.FetchGroupOffsets(ctx, g); err != nil || len(got) != 1 || got[0].Offset != 77 {
		t.Fatalf("committed offsets: %+v %v", got, err)
	}
	if p, err := s.PendingTxnOffsets(ctx, g); err != nil || len(p) != 0 {
		t.Fatalf("pending after commit: %v %v", p, err)
	}
	got, ok, err := s.GetTxnState(ctx, tid)
	if err != nil || !ok || got.Phase != metastore.TxnPrepareCommit || got.Revision != rev {
		t.Fatalf("state: %+v %v %v", got, ok, err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if holder, mine, err := s.ClaimTxnCoordinator(ctx, tid, b.NodeID(), b.Lease()); err != nil || !mine || holder != b.NodeID() {
		t.Fatalf("b claims after a died: %d %v %v", holder, mine, err)
	}
}

// TestAbortedIndex proves that an abort committed with a chunk enters the
// partition's aborted-transaction index, that AbortedTxns answers by
// range, and that truncation (retention, DeleteRecords) drops the aborted
// transactions ending below the new log start.
func TestAbortedIndex(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	tp, err := s.CreateTopic(ctx, "aborts", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := metastore.PartitionState{}
	for i, a := range []metastore.AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 9}, {ProducerID: 2, FirstOffset: 5, LastOffset: 19}} {
		c := appendCommit(tp.ID, 0, st, "obj", 10)
		c.Aborted = []metastore.AbortedTxn{a}
		rev, err := s.CommitChunks(ctx, []metastore.ChunkCommit{c})
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		st = c.New
		st.Revision = rev
	}
	bad := appendCommit(tp.ID, 0, st, "obj", 1)
	bad.Aborted = []metastore.AbortedTxn{{ProducerID: 3, FirstOffset: 20, LastOffset: 25}}
	if _, err := s.CommitChunks(ctx, []metastore.ChunkCommit{bad}); !errors.Is(err, metastore.ErrInvalid) {
		t.Fatalf("abort past the new next offset: %v, want ErrInvalid", err)
	}
	if got, err := s.AbortedTxns(ctx, tp.ID, 0, 10, 19, 100); err != nil || len(got) != 1 || got[0].ProducerID != 2 {
		t.Fatalf("aborted in [10, 19]: %+v %v", got, err)
	}
	if got, err := s.AbortedTxns(ctx, tp.ID, 0, 0, 4, 100); err != nil || len(got) != 1 || got[0].ProducerID != 1 {
		t.Fatalf("aborted in [0, 4]: %+v %v", got, err)
	}
	if _, err := s.TruncateBefore(ctx, tp.ID, 0, 12); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AbortedTxns(ctx, tp.ID, 0, 0, 100, 100); err != nil || len(got) != 1 || got[0].ProducerID != 2 {
		t.Fatalf("aborted after truncating to 12: %+v %v", got, err)
	}
}
