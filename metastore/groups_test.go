package metastore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/shale-dev/shale/metastore"
)

// TestGroupCoordinatorFencing proves that one agent at a time holds a
// group, that only the holder can commit or delete its offsets, and that
// the claim goes with the holder's lease so another agent can take over.
func TestGroupCoordinatorFencing(t *testing.T) {
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
	const g = "group/with%odd chars"
	if holder, mine, err := s.ClaimGroupCoordinator(ctx, g, a.NodeID(), a.Lease()); err != nil || !mine || holder != a.NodeID() {
		t.Fatalf("a claims: holder %d mine %v err %v", holder, mine, err)
	}
	if holder, mine, err := s.ClaimGroupCoordinator(ctx, g, b.NodeID(), b.Lease()); err != nil || mine || holder != a.NodeID() {
		t.Fatalf("b claims a's group: holder %d mine %v err %v", holder, mine, err)
	}
	off := metastore.GroupOffset{Topic: "t", Partition: 3, Offset: 42, Metadata: "md"}
	if err := s.CommitGroupOffsets(ctx, g, b.Lease(), []metastore.GroupOffset{off}); !errors.Is(err, metastore.ErrNotCoordinator) {
		t.Fatalf("b commits a's group: %v, want ErrNotCoordinator", err)
	}
	if err := s.CommitGroupOffsets(ctx, g, a.Lease(), []metastore.GroupOffset{off}); err != nil {
		t.Fatal(err)
	}
	got, err := s.FetchGroupOffsets(ctx, g)
	if err != nil || len(got) != 1 || got[0].Offset != 42 || got[0].Metadata != "md" {
		t.Fatalf("fetch: %+v %v", got, err)
	}
	ls, err := s.ListGroups(ctx)
	if err != nil || len(ls) != 1 || ls[0].Name != g || ls[0].Coordinator != a.NodeID() || !ls[0].HasOffsets {
		t.Fatalf("list: %+v %v", ls, err)
	}
	if err := a.Close(ctx); err != nil { // a dies: its claim goes with its lease
		t.Fatal(err)
	}
	if holder, mine, err := s.ClaimGroupCoordinator(ctx, g, b.NodeID(), b.Lease()); err != nil || !mine || holder != b.NodeID() {
		t.Fatalf("b takes over: holder %d mine %v err %v", holder, mine, err)
	}
	if err := s.DeleteGroup(ctx, g, a.Lease()); !errors.Is(err, metastore.ErrNotCoordinator) {
		t.Fatalf("dead a deletes: %v", err)
	}
	if got, _ := s.FetchGroupOffsets(ctx, g); len(got) != 1 {
		t.Fatalf("offsets lost at takeover: %+v", got)
	}
	if err := s.DeleteGroup(ctx, g, b.Lease()); err != nil {
		t.Fatal(err)
	}
	if ls, _ := s.ListGroups(ctx); len(ls) != 0 {
		t.Fatalf("after delete: %+v", ls)
	}
}
