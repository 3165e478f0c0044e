package agent

// The takeover of a classic group whose coordinator died with members
// (groups.go, Failover): the record that says so and lists them, the
// hold of the new coordinator's first join, and its end once every
// listed member has heard of the failover.

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/metastore"
)

// takeover is what a claim learnt of the group's previous coordinator:
// whether it died with classic members (etcd's members-session record was
// there and listed some, or did not say), when this agent claimed the
// group, and the largest session timeout those members joined with
// (zero: unknown, the record was corrupt). When the record listed the
// members (listed), awaiting holds those not yet told of the failover.
type takeover struct {
	active   bool
	claimed  time.Time
	session  time.Duration
	listed   bool
	awaiting map[string]bool
	// rejoins is how many members the first generation waits for: one
	// per member the record listed (each told member rejoins under a new
	// ID once it has given up its partitions).
	rejoins int
	// held is the initial delay the held first join would have waited
	// without the hold (zero: no join held).
	held time.Duration
}

func newTakeover(r metastore.MembersRecord) takeover {
	t := takeover{active: true, claimed: time.Now(), session: r.Session, listed: r.Listed, awaiting: map[string]bool{}}
	for _, id := range r.IDs {
		t.awaiting[id] = true
	}
	t.rejoins = len(t.awaiting)
	return t
}

// takeoverEnd is when every member of the previous coordinator has either
// heard of the failover or had its session end: one session timeout after
// the claim (the session of the joining members when the record gave
// none), or at once when the record listed the members and each has been
// told (told) and as many members joined here (endHold). Zero when the
// previous coordinator released the group, or
// the first generation here has formed.
func (g *group) takeoverEnd() time.Time {
	t := &g.takeover
	if !t.active || t.listed && len(t.awaiting) == 0 && len(g.members) >= t.rejoins {
		return time.Time{}
	}
	s := t.session
	if s == 0 {
		for _, m := range g.members {
			s = max(s, m.session)
		}
	}
	return t.claimed.Add(s)
}

// holdFirstJoin lengthens the wait of a join from Empty, timeout, to the
// end of the takeover (Failover).
func (g *group) holdFirstJoin(timeout time.Duration) time.Duration {
	left := time.Until(g.takeoverEnd())
	if left <= timeout {
		return timeout
	}
	g.takeover.held = max(timeout, time.Nanosecond)
	g.c.s.log.Info("holding the first join of a group taken over from a coordinator that died with members",
		"group", g.name, "for", left.Round(time.Millisecond), "awaiting", len(g.takeover.awaiting), "listed", g.takeover.listed)
	return left
}

// known is fenced for a Heartbeat or a SyncGroup: a member ID it does not
// know is answered UNKNOWN_MEMBER_ID, on which franz-go and the Java
// client give up their partitions (onLost / onPartitionsLost) before they
// rejoin, so it is told of the failover (told). Not for a JoinGroup or an
// OffsetCommit: franz-go's cooperative consumer answered UNKNOWN_MEMBER_ID
// to either rejoins with an empty member ID keeping its partitions
// (TestGroupCoordinatorKill: a partition assigned to k2 while k1 owned it
// in 2 of 3 runs when they counted).
func (g *group) known(memberID string, instanceID *string) (*member, int16) {
	m, code := g.fenced(memberID, instanceID)
	if code == kerr.UnknownMemberID.Code {
		g.told(memberID)
	}
	return m, code
}

// told notes that the member id of the previous coordinator was answered
// UNKNOWN_MEMBER_ID: it is to give up what it owned (endHold).
func (g *group) told(id string) {
	t := &g.takeover
	if !t.active || !t.listed || !t.awaiting[id] {
		return
	}
	delete(t.awaiting, id)
	if len(t.awaiting) == 0 {
		g.c.s.log.Info("every member of the previous coordinator heard of the failover",
			"group", g.name, "after", time.Since(t.claimed).Round(time.Millisecond), "join_held", t.held > 0)
	}
	g.endHold()
}

// endHold answers the held first join early, after the group's initial
// delay (300 ms, for members joining meanwhile), once every member the
// record listed has been told of the failover and as many members have
// joined here. Being told is not enough: franz-go and the Java client
// give up their partitions (onLost / onPartitionsLost) only when the
// application's poll lets them, and then rejoin under a new member ID, so
// a told member's rejoin is the sign it owns nothing; the new IDs cannot
// be matched to the old, so the joins are counted (a new member joining
// meanwhile counts too: one of the told may then still be giving up its
// partitions when the generation forms). Called when a member is told
// and at each join while the hold lasts.
func (g *group) endHold() {
	t := &g.takeover
	if !t.active || !t.listed || len(t.awaiting) > 0 || t.held == 0 ||
		g.state != statePreparing || !g.initialDelay || len(g.members) < t.rejoins {
		return
	}
	g.c.s.log.Info("the members of the previous coordinator rejoined: ending the hold of the first join",
		"group", g.name, "after", time.Since(t.claimed).Round(time.Millisecond), "members", len(g.members))
	wait := t.held
	t.held = 0
	g.setTimer(wait, func() { g.initialDelay = false; g.completeJoin() })
}

// recordedMembers is the record etcd should hold for g: the largest
// session timeout of its members (and of the record it had), and the IDs
// that may own partitions — its members and, during a takeover, the
// previous coordinator's not yet told. During a takeover from a record
// that listed nobody, it lists nobody either: the previous members are
// unknown, so would be to a coordinator taking over from this one.
func (g *group) recordedMembers() metastore.MembersRecord {
	r := metastore.MembersRecord{Session: g.membersRecord.Session, Listed: true}
	ids := map[string]bool{}
	for id, m := range g.members {
		r.Session = max(r.Session, m.session)
		ids[id] = true
	}
	if t := &g.takeover; t.active {
		r.Listed = t.listed
		for id := range t.awaiting {
			ids[id] = true
		}
	}
	if r.Listed {
		r.IDs = slices.Sorted(maps.Keys(ids))
	}
	return r
}

// recordMembers writes to etcd that the group has classic members here,
// with the largest session timeout they joined with and their IDs
// (metastore.RecordMembers), when etcd holds otherwise: at the first join
// under this coordinator, and whenever its members change (a join, a
// leave, an expiry, a rebalance that drops members), one write per change.
// A new member is recorded before its join is answered, so before it can
// own a partition. It runs under g.mu. A failure is logged and retried at
// the next change or heartbeat (membersStale); the group works without
// it, but a coordinator that takes it over meanwhile would not know the
// members it lacks (Failover).
func (g *group) recordMembers() {
	want := g.recordedMembers()
	if !g.membersRecorded && len(g.members) == 0 {
		return // never had classic members here: nothing to say
	}
	if g.membersRecorded && g.membersRecord.Session == want.Session && g.membersRecord.Listed == want.Listed &&
		slices.Equal(g.membersRecord.IDs, want.IDs) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTypeTimeout)
	defer cancel()
	err := g.c.s.groupMeta(groupOpRecordType, g.name, func() error {
		return g.c.s.meta.RecordMembers(ctx, g.name, g.lease, want)
	})
	if err != nil {
		g.membersStale = true
		g.c.s.log.Warn("record group members failed", "group", g.name, "session", want.Session, "members", len(want.IDs), "err", err)
		return
	}
	g.membersRecorded, g.membersRecord, g.membersStale = true, want, false
}
