package agent_test

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConsumerGroupMigrationFailoverOwnedRejoin proves a converted group's
// next coordinator keeps the partitions its classic members still own
// when they rejoin it under their old member IDs, as franz-go's
// cooperative consumer does after a failover: a and b (classic, owning 0-1
// and 2-3) and x (KIP-848, the upgrade) are members when the coordinator
// stops; a and b rejoin the next one reporting what they own, x rejoins
// with epoch 0, and x gets none of those partitions until their owner
// revoked it (SyncGroup, then a rejoin without it). Without adoptOwned x
// was given one of them at its first heartbeat, and without the topic view
// read for a group claimed by the join itself (join_group.go) the
// first rejoin's owned partitions did not resolve at all.
func TestConsumerGroupMigrationFailoverOwnedRejoin(t *testing.T) {
	a, b, x, next := convertedGroupFailover(t, "cg-mig-rejoin")
	ctx := next.ctx
	a.c, b.c = next, next
	var r *kmsg.JoinGroupResponse
	for { // until the stopped agent's claim is gone
		if r = a.join(a.owned); r.ErrorCode != kerr.NotCoordinator.Code || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.ErrorCode != 0 {
		t.Fatalf("a's rejoin owning %v: %v", a.owned, kerr.ErrorForCode(r.ErrorCode))
	}
	if r = b.join(b.owned); r.ErrorCode != 0 {
		t.Fatalf("b's rejoin owning %v: %v", b.owned, kerr.ErrorForCode(r.ErrorCode))
	}
	if h := next.hb("member-x", x.MemberEpoch, []int32{}, nil); h.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("x's heartbeat to the new coordinator: %v", kerr.ErrorForCode(h.ErrorCode))
	}
	// x's partitions, checked against what a and b own at each step.
	var xs []int32
	heartbeatX := func(epoch int32, owned []int32, step string) int32 {
		t.Helper()
		h := next.hb("member-x", epoch, owned, nil)
		if h.ErrorCode != 0 {
			t.Fatalf("%s: x's heartbeat: %v", step, kerr.ErrorForCode(h.ErrorCode))
		}
		if h.Assignment != nil {
			xs = assigned(h)
		}
		for _, p := range xs {
			if slices.Contains(a.owned, p) || slices.Contains(b.owned, p) {
				t.Fatalf("%s: x given partition %d while a owns %v and b %v", step, p, a.owned, b.owned)
			}
		}
		return h.MemberEpoch
	}
	epoch := heartbeatX(0, nil, "x rejoins")
	epoch = heartbeatX(epoch, xs, "x heartbeats")
	// a and b learn what they keep (rejoining first when the group moved
	// on: REBALANCE_IN_PROGRESS); until they rejoin they own the rest.
	for _, m := range []*classicRaw{a, b} {
		before := m.owned
		s := m.sync(nil)
		for i := 0; i < 3 && s.ErrorCode == kerr.RebalanceInProgress.Code; i++ {
			if r := m.join(m.owned); r.ErrorCode != 0 {
				t.Fatalf("rejoin: %v", kerr.ErrorForCode(r.ErrorCode))
			}
			epoch = heartbeatX(epoch, xs, "a classic member rejoined owning its partitions")
			s = m.sync(nil)
		}
		if s.ErrorCode != 0 {
			t.Fatalf("sync: %v", kerr.ErrorForCode(s.ErrorCode))
		}
		kept := m.owned
		m.owned = before
		epoch = heartbeatX(epoch, xs, "before the classic members revoked")
		m.owned = kept
	}
	for _, m := range []*classicRaw{a, b} {
		if r := m.join(m.owned); r.ErrorCode != 0 {
			t.Fatalf("rejoin after revoking: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		if s := m.sync(nil); s.ErrorCode != 0 {
			t.Fatalf("sync after revoking: %v", kerr.ErrorForCode(s.ErrorCode))
		}
	}
	for range 3 {
		epoch = heartbeatX(epoch, xs, "after the classic members revoked")
	}
	if len(xs) == 0 || len(xs)+len(a.owned)+len(b.owned) != 4 {
		t.Fatalf("at the end: x owns %v, a %v, b %v; want the 4 partitions among them, x some", xs, a.owned, b.owned)
	}
}
