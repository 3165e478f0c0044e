package agent

// KIP-848 consumer group members over time: session and rebalance timers
// and removal (consumer_group.go). Every function runs with g.mu held;
// timers take it themselves.

import (
	"bytes"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// touchConsumer restarts m's session timer: a member with no heartbeat
// for the session timeout is removed (a static member away with epoch -2
// too, its partitions freed).
func (g *group) touchConsumer(m *cmember) {
	if m.session != nil {
		m.session.Stop()
	}
	cg := g.cg
	d := cg.session
	if m.classic != nil {
		d = m.classic.session // its JoinGroup's
	}
	if d <= 0 {
		d = DefaultConsumerSessionTimeout
	}
	m.session = g.afterLocked(d, func() {
		if g.cg != cg || cg.members[m.id] != m {
			return
		}
		g.removeConsumer(m, "session timeout")
	})
}

// armRevocation starts m's rebalance timer while it has revocations to
// acknowledge (removed if they are not acknowledged in time), stops it
// otherwise.
func (g *group) armRevocation(m *cmember) {
	if m.rebal != nil {
		m.rebal.Stop()
		m.rebal = nil
	}
	if len(m.revoking) == 0 {
		return
	}
	cg, epoch := g.cg, m.epoch
	m.rebal = g.afterLocked(m.rebalance, func() {
		if g.cg != cg || cg.members[m.id] != m || m.epoch != epoch || len(m.revoking) == 0 {
			return
		}
		g.removeConsumer(m, "rebalance timeout: revocation not acknowledged")
	})
}

// afterLocked runs f with g.mu held after d, unless the group died.
func (g *group) afterLocked(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.state != stateDead && g.cg != nil {
			f()
		}
	})
}

// removeConsumer removes m from the group, frees its partitions and
// computes the new target of the others.
func (g *group) removeConsumer(m *cmember, why string) {
	cg := g.cg
	cg.fence(m)
	delete(cg.members, m.id)
	if m.instanceID != nil && cg.static[*m.instanceID] == m.id {
		delete(cg.static, *m.instanceID)
	}
	g.c.s.log.Info("consumer group member removed", "group", g.name, "member", m.id, "why", why, "group_epoch", cg.epoch)
	if g.maybeDowngrade(m) {
		return
	}
	cg.bump(g.c.cachedTopicView())
	g.syncGroupType()
	if cg.active() == 0 && len(cg.members) == 0 {
		g.emptySince = time.Now()
		g.idleSince = g.emptySince
	}
}

// killConsumers stops every consumer member's timers (the group is lost).
func (g *group) killConsumers() {
	if g.cg == nil {
		return
	}
	for _, m := range g.cg.members {
		g.cg.fence(m)
	}
	g.cg.members = map[string]*cmember{}
}

// consumerMembersLeft reports whether a consumer group still has members
// (away static members included).
func (g *group) consumerMembersLeft() bool {
	return g.cg != nil && len(g.cg.members) > 0
}

// commitCheck validates an OffsetCommit of a consumer group: the member
// must be known and its epoch not ahead of the member's; per partition,
// the epoch must not be older than the one at which the member got the
// partition, and the member must own it (or be revoking it).
// STALE_MEMBER_EPOCH otherwise, per partition in part. A classic member
// (consumer_group_migration.go) commits with a generation equal to its
// epoch, else ILLEGAL_GENERATION (Kafka's validateMemberEpoch).
func (cg *cgroup) commitCheck(memberID string, epoch int32) (*cmember, int16) {
	m := cg.members[memberID]
	if m == nil || m.epoch == -2 {
		return nil, kerr.UnknownMemberID.Code
	}
	if m.classic != nil {
		// A classic member commits with its generation, which must be its
		// epoch: ILLEGAL_GENERATION, the error classic clients handle.
		if epoch != m.epoch {
			return nil, kerr.IllegalGeneration.Code
		}
		return m, 0
	}
	if epoch > m.epoch {
		return nil, kerr.StaleMemberEpoch.Code
	}
	return m, 0
}

// partitionCommitCode is commitCheck's per-partition rule.
func (m *cmember) partitionCommitCode(id tid, p int32, epoch int32) int16 {
	if m.classic != nil {
		return 0 // its generation was checked (commitCheck)
	}
	e, ok := m.assignEpochs[id][p]
	if !ok || epoch < e {
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func cgTopicIDs(a map[tid][]int32) []tid {
	ids := make([]tid, 0, len(a))
	for id := range a {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y tid) int { return bytes.Compare(x[:], y[:]) })
	return ids
}
