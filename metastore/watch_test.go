package metastore_test

import (
	"context"
	"testing"
	"time"
)

// recv receives one event or fails the test after a generous bound (a hang
// guard, not a timing assertion).
func recv[E any](t *testing.T, ch <-chan E) E {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed early")
		}
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no watch event within 30s")
	}
	panic("unreachable")
}

// TestWatchesDeliverCommitsInOrder proves state and index watches deliver
// every commit after afterRev, in revision order, with decoded values, and
// report the deletes of DeleteTopic.
func TestWatchesDeliverCommitsInOrder(t *testing.T) {
	s, _, _ := newStore(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	tp := mustCreateTopic(t, s, "t", 3)
	mustCommit(t, s, tp.ID, 0, 1) // before afterRev: must not be seen
	start, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := s.WatchStates(ctx, start)
	index := s.WatchIndex(ctx, start)

	const commits = 30
	var revs []int64
	for i := range commits {
		revs = append(revs, mustCommit(t, s, tp.ID, int32(i%3), 1, 2))
	}
	wantNext := map[int32]int64{0: 1}
	for i, rev := range revs {
		p := int32(i % 3)
		wantNext[p] += 3
		e := recv(t, states)
		if e.Resync || e.Deleted || e.Revision != rev || e.TopicID != tp.ID || e.Partition != p ||
			e.State.NextOffset != wantNext[p] || e.State.Revision != rev {
			t.Fatalf("state event %d = %+v, want partition %d next %d at revision %d", i, e, p, wantNext[p], rev)
		}
		for j := range 2 {
			ie := recv(t, index)
			if ie.Resync || ie.Deleted || ie.Revision != rev || ie.Partition != p || ie.Entry.LastOffset != wantNext[p]-1-int64(1-j)*2 {
				t.Fatalf("index event %d.%d = %+v at revision %d", i, j, ie, rev)
			}
		}
	}

	if _, err := s.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if e := recv(t, states); !e.Deleted || e.TopicID != tp.ID {
			t.Fatalf("after delete: state event %+v, want a deletion", e)
		}
	}
	cancel()
	for range states { // drains, then closes because ctx ended
	}
	for range index {
	}
}

// TestWatchResyncAfterCompaction proves a watch from a compacted revision
// sends a Resync event and then keeps delivering new commits.
func TestWatchResyncAfterCompaction(t *testing.T) {
	s, cli, _ := newStore(t)
	ctx := testCtx(t)
	tp := mustCreateTopic(t, s, "t", 1)
	first := mustCommit(t, s, tp.ID, 0, 1)
	last := mustCommit(t, s, tp.ID, 0, 1)
	if _, err := cli.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	states := s.WatchStates(ctx, first-1)
	e := recv(t, states)
	if !e.Resync || e.Revision < last {
		t.Fatalf("first event %+v, want Resync at revision >= %d", e, last)
	}
	rev := mustCommit(t, s, tp.ID, 0, 1)
	if e := recv(t, states); e.Resync || e.Revision != rev || e.State.NextOffset != 3 {
		t.Fatalf("event after resync %+v, want next 3 at revision %d", e, rev)
	}
}
