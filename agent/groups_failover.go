package agent

// The takeover of a classic group whose coordinator died with members
// (groups.go, Failover): the record that says so, and the hold of the
// new coordinator's first join.

import (
	"context"
	"time"
)

// takeover is what a claim learnt of the group's previous coordinator:
// whether it died with classic members (etcd's members-session record was
// there), when this agent claimed the group, and the largest session
// timeout those members joined with (zero: unknown, the record was
// corrupt).
type takeover struct {
	active  bool
	claimed time.Time
	session time.Duration
}

// takeoverEnd is when every member of the previous coordinator has either
// heard of the failover or had its session end: one session timeout after
// the claim (the session of the joining members when the record gave
// none). Zero when the previous coordinator released the group, or the
// first generation here has formed.
func (g *group) takeoverEnd() time.Time {
	if !g.takeover.active {
		return time.Time{}
	}
	s := g.takeover.session
	if s == 0 {
		for _, m := range g.members {
			s = max(s, m.session)
		}
	}
	return g.takeover.claimed.Add(s)
}

// holdFirstJoin lengthens the wait of a join from Empty, timeout, to the
// end of the takeover (Failover).
func (g *group) holdFirstJoin(timeout time.Duration) time.Duration {
	left := time.Until(g.takeoverEnd())
	if left <= timeout {
		return timeout
	}
	g.c.s.log.Info("holding the first join of a group taken over from a coordinator that died with members",
		"group", g.name, "for", left.Round(time.Millisecond))
	return left
}

// recordMembers writes to etcd that the group has classic members here,
// with the largest session timeout they joined with, when etcd holds no
// record or a smaller session (metastore.RecordMembersSession): a write at
// the first join under this coordinator, and at a join with a longer
// session. It runs under g.mu. A failure is logged and retried at the next
// join; the group works without it, but a coordinator that takes it over
// meanwhile would not wait for its members (Failover).
func (g *group) recordMembers(session time.Duration) {
	session = max(session, g.membersSession)
	if g.membersRecorded && g.membersSession == session {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTypeTimeout)
	defer cancel()
	err := g.c.s.groupMeta(groupOpRecordType, g.name, func() error {
		return g.c.s.meta.RecordMembersSession(ctx, g.name, g.lease, session)
	})
	if err != nil {
		g.c.s.log.Warn("record group members failed", "group", g.name, "session", session, "err", err)
		return
	}
	g.membersRecorded, g.membersSession = true, session
}
