package agent

// Consumer groups (the classic protocol): which agent coordinates a group,
// and the group registry of one agent. The state machine is in
// groups_state.go, the APIs in one file each (find_coordinator.go,
// join_group.go, sync_group.go, heartbeat.go, leave_group.go,
// offset_commit.go, offset_fetch.go, list_groups.go, describe_groups.go,
// delete_groups.go, offset_delete.go).
//
// # Coordinator
//
// A group has at most one coordinator agent at a time: the one holding
// etcd key groups/<g>/coordinator, created with CreateRevision == 0 under
// the agent's session lease (metastore.ClaimGroupCoordinator). The first
// group request an agent receives for a group nobody holds claims it;
// FindCoordinator names the holder, or, when nobody holds the group, the
// rendezvous-hash winner of the group ID over the live agents (which then
// claims it on the client's first request), so groups spread over agents.
// A non-holder answers NOT_COORDINATOR. When the holder dies its lease
// expires (the agent TTL) and the key with it; members then find and join
// another agent. An agent whose lease is lost drops every group it held
// (their waiting requests get NOT_COORDINATOR).
//
// A group that stays Empty (no member, no pending member) with no request
// for groupIdleRelease (5 min) is released: its coordinator, holding the
// group's lock, deletes the key (metastore.ReleaseGroupCoordinator,
// recording in etcd when the group became empty) and then forgets the
// group. A later request for it claims it again, on this agent or
// another, exactly as after a coordinator's death; a request that raced
// the release sees the group dead and claims afresh (lock), and a claim
// that raced one is repeated (acquire). When the delete returns an error,
// etcd may have applied it all the same (a timeout after the commit): the
// coordinator then reads the key back and forgets the group unless it
// still holds the key (also if the read fails: its members rejoin,
// whereas serving a group without its key could give it two
// coordinators). DeleteGroups does the same. Releasing is what lets offsets
// expire: the group-expiry lifecycle job (metastore.ExpireGroupOffsets)
// only touches groups nobody coordinates. A claim takes the empty-since
// record out of etcd (the group may get members now) and the release puts
// it back: the time the group lost its last member, or, if it had none
// while claimed, the record the claim took (else the claim's time).
//
// # State
//
// Membership, generations and assignments live in the coordinator's memory
// only: after a failover members rejoin (their old member IDs are unknown to
// the new coordinator, so clients start over with a new ID). Committed
// offsets live in etcd: an OffsetCommit is answered only after etcd has it,
// and the write is fenced by the coordinator key's lease, so an agent that
// lost a group can never write its offsets. OffsetFetch reads etcd and is
// served by any agent, coordinator or not (a linearizable read sees every
// acknowledged commit).
//
// # Failover
//
// Kafka's new coordinator loads a group's members from __consumer_offsets,
// so a member of the old generation keeps its partitions and its member
// ID across a failover. Here membership dies with the coordinator (State):
// the next coordinator starts empty, and a member of the old generation
// that has not yet noticed (its heartbeat has not failed yet) still
// consumes what it was given. Were the first member to rejoin given every
// partition at once, a partition would be consumed by two members at the
// same time (coordinatorFailover in tests/interop audits ownership through
// the members' callbacks: "partition 1 assigned to k1 while k2 owns it" in
// 2 of 3 runs before this hold). So the coordinator records in etcd that a
// classic group has members under it, and which (groups/<g>/members-session,
// metastore.MembersRecord: the largest session timeout they joined with and
// their member IDs, written fenced at the first join and rewritten when the
// members change — a join, a leave, an expiry, a rebalance that drops
// members, one write per change and none otherwise — deleted by the
// release; groups_failover.go). A new member is in the record before its
// join is answered, so before it can own a partition. A coordinator whose
// claim finds the record (the previous one died with members) holds the
// group's first join from Empty — no JoinGroup answered, so no leader and
// no SyncGroup assignment — until every member the record lists has heard
// of the failover: a Heartbeat, SyncGroup or LeaveGroup carrying its old
// member ID answered UNKNOWN_MEMBER_ID, on which franz-go and the Java
// client give up their partitions before they rejoin. A JoinGroup or an
// OffsetCommit answered so does not count: franz-go's cooperative
// consumer then rejoins with an empty member ID still consuming what it
// owned (TestGroupCoordinatorKill: "partition 0 assigned to k2 while k1
// owns it" in 2 of 3 runs when they counted); such a member is waited for
// until the session timeout unless its heartbeat reaches the new
// coordinator first. Told is not yet done: the client gives up its
// partitions only when the application's poll lets it, then rejoins under
// a new member ID (which cannot be matched to the old one). So the hold
// ends once every listed member has been told and as many members have
// joined here (endHold; a new member joining meanwhile counts as one of
// them, the approximation's gap): the held join is then answered after
// the group's initial delay (300 ms), time for the last ones to join the
// first generation (TestGroupFailoverToldEndsHold: still held with a told
// member not yet rejoined, answered 301 ms after it rejoined). The
// hold lasts one session timeout after the claim at the most: by then a
// member that never came has had its session end, as Kafka treats a
// member that stops heartbeating. The session timeout waited for is the largest one the old
// members joined with, recorded in the same key: not the members' of the
// new coordinator (one with a shorter session may rejoin first), and not
// the largest allowed (maxSessionTimeout, 30 minutes, would hold every
// takeover that long). A record that lists no member (all left, the group
// not yet released) holds nothing. A record of an older agent (the session
// alone), one whose IDs could not be listed (over 64 KiB, or an ID with a
// newline) and a corrupt record hold for the whole session timeout (a
// corrupt one for the largest session timeout of the members joining);
// while such a hold lasts, the new coordinator's own record lists nobody
// either, and while a listed hold lasts, its record lists the old members
// not yet told besides its own, so a coordinator that takes over from it
// waits for them too. The coordinator does not release a group (idle)
// before the hold's end, which would forget it. A group released empty
// (graceful stop of its members, then the idle release) has no record and
// waits for nothing; nor does a new group.
//
// The cost: the first join after a takeover waits until the old members
// have heard of the failover — with franz-go or the Java client, their next
// heartbeat to the new coordinator (the heartbeat interval, 3 s by default,
// after they found it) — where Kafka's would not; a whole session timeout
// (45 s by default) when an old member never comes back (its process died
// with the coordinator, or is partitioned away), when the record is an
// older agent's, and when an old member learns of the failover from a
// commit or a join instead of a heartbeat (TestGroupCoordinatorKill, agent
// TTL 3 s, session 6 s: the first commit after the kill 4.1-4.6 s when the
// heartbeats told the members, 8.2-8.9 s otherwise, 8.5-9.2 s with the
// whole hold always). A member whose rebalance timeout is shorter than the
// hold sees its JoinGroup time out and joins again. A
// record write that fails (logged, retried at the next change or
// heartbeat) leaves etcd without the newest member until then: a takeover
// meanwhile would not wait for it. Commits are not held: a member's
// commit with a generation from the old coordinator gets
// UNKNOWN_MEMBER_ID. KIP-848 groups have the same grace in their own form
// (consumer_group.go, Failover).
//
// # Differences from Kafka
//
//   - Session timeouts from 1s (group.min.session.timeout.ms is 6s in
//     Kafka) to 30 minutes; a new group waits groupInitialDelay (Kafka:
//     group.initial.rebalance.delay.ms, 3s) for more members.
//   - Protocol metadata and assignments are bounded (maxMemberBytes per
//     member); beyond it JoinGroup or SyncGroup answers INVALID_REQUEST.
//     A group holds at most maxGroupMembers (GROUP_MAX_SIZE_REACHED).
//   - Offsets expire as in Kafka (offsets.retention.minutes, KIP-211),
//     but per group, not per partition: once no agent coordinates a group
//     (it has been Empty for groupIdleRelease, or its coordinator died),
//     all its offsets go when its newest commit and the time it became
//     empty are both older than the agent flag --group-offsets-retention
//     (default 7 days; -1 keeps them forever). When the coordinator died
//     instead of releasing the group, its members may still be alive and
//     rejoining elsewhere: the time it became empty is then taken as the
//     first time the group-expiry job finds it uncoordinated (so it goes
//     up to one job interval more than a retention after that). The
//     retention time of OffsetCommit v2-v4 is ignored. Offsets also go
//     with DeleteGroups or OffsetDelete. An offset whose topic was deleted
//     and re-created reads as "no offset".
//   - KIP-848 consumer groups (consumer_group.go) share this coordinator,
//     lock and registry; a group is one type or the other, converted
//     online both ways while it has members (consumer_group.go, Online
//     migration; a consumer group's classic members are served from its
//     KIP-848 state). Their membership too lives in memory only.

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/internal/retry"
	"github.com/shale-dev/shale/metastore"
)

// Bounds of the group coordinator.
const (
	minSessionTimeout   = 6 * time.Second // Kafka's group.min.session.timeout.ms
	maxSessionTimeout   = 30 * time.Minute
	maxRebalanceTimeout = 30 * time.Minute
	groupInitialDelay   = 300 * time.Millisecond
	maxMemberBytes      = 1 << 20 // protocol metadata or assignment of one member
	maxGroupMembers     = 10000
	maxOffsetMetadata   = 4096 // offset.metadata.max.bytes
	// groupIdleRelease is how long a group stays Empty, with no request,
	// before its coordinator releases it (it is checked every
	// releaseSweep at most, so the release comes up to that much later).
	groupIdleRelease = 5 * time.Minute
	releaseSweep     = time.Second
	// claimAttempts bounds acquire's claims that raced a release, and
	// lock's retries of a group that died under it.
	claimAttempts = 3
	// recordTypeTimeout bounds the etcd write of a group's protocol type
	// at the join that sets it (group.recordType).
	recordTypeTimeout = 5 * time.Second
)

// coordinator is one agent's registry of the groups it coordinates.
type coordinator struct {
	s *Server

	mu     sync.Mutex
	groups map[string]*group // claimed under lease
	lease  clientv3.LeaseID  // the session lease the groups were claimed under
	// released counts groups that left the registry (idle releases,
	// deletes, losses): a claim that overlapped one may have seen the
	// key that was then deleted (acquire).
	released uint64
	// tv is the last topic view KIP-848 subscriptions were resolved
	// against (consumer_group_heartbeat.go).
	tv atomic.Pointer[topicView]
}

// The etcd calls of group coordination, as Server.groupMeta names them.
const (
	groupOpClaim       = "claim"       // ClaimGroup (acquire)
	groupOpRelease     = "release"     // ReleaseGroupCoordinator (maybeRelease)
	groupOpDelete      = "delete"      // DeleteGroup (deleteGroup)
	groupOpCoordinator = "coordinator" // GroupCoordinator (stillHeld)
	groupOpRecordType  = "record-type" // RecordGroupProtocolType (group.add)
)

// groupMeta runs call, the etcd call op of group, through the test hook
// when one is set (export_test.go), else directly.
func (s *Server) groupMeta(op, group string, call func() error) error {
	if h := s.groupMetaHook.Load(); h != nil {
		return (*h)(op, group, call)
	}
	return call()
}

// groups returns the server's group registry, creating it on first use.
func (s *Server) groups() *coordinator {
	s.coordOnce.Do(func() {
		s.coord = &coordinator{s: s, groups: map[string]*group{}}
		go s.coord.watchSession()
		go s.coord.releaseIdle()
	})
	return s.coord
}

// groupIdle is the idle threshold of releaseIdle: groupIdleRelease unless
// a test shortened it.
func (s *Server) groupIdle() time.Duration {
	if d := time.Duration(s.groupIdleOverride.Load()); d > 0 {
		return d
	}
	return groupIdleRelease
}

// releaseIdle releases, every releaseSweep (or sooner for a short
// threshold), the groups that stayed Empty and unused for groupIdle.
func (c *coordinator) releaseIdle() {
	for {
		idle := c.s.groupIdle()
		t := time.NewTimer(min(releaseSweep, max(idle/4, 5*time.Millisecond)))
		select {
		case <-c.s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		for _, g := range c.owned() {
			c.maybeRelease(g, idle)
		}
	}
}

// maybeRelease releases g if it is Empty, has no pending member and was
// not used for idle. It holds g.mu throughout: the key is deleted in etcd
// before the group leaves the registry, so a request that finds the group
// here waits for the lock, sees it Dead and claims afresh (lock), and a
// claim that saw the key before its deletion notices the release (acquire).
// If the delete returns an error, the group is forgotten all the same
// unless the key, read back, is still held (stillHeld).
func (c *coordinator) maybeRelease(g *group, idle time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateEmpty || len(g.members) > 0 || g.consumerMembersLeft() || len(g.pending) > 0 || g.share.active() || time.Since(g.idleSince) < idle ||
		time.Now().Before(g.takeoverEnd()) { // the release would forget the takeover (Failover)
		return
	}
	ctx, cancel := context.WithTimeout(c.s.ctx, requestTimeout)
	err := c.s.groupMeta(groupOpRelease, g.name, func() error {
		return c.s.meta.ReleaseGroup(ctx, g.name, g.lease, g.emptySince, g.protocolType)
	})
	cancel()
	if err != nil {
		if c.stillHeld(g) {
			if c.s.ctx.Err() == nil {
				c.s.log.Warn("release idle group failed; retrying later", "group", g.name, "err", err)
			}
			return
		}
		c.s.log.Warn("release idle group failed, and its coordinator key is not known to be held; forgetting the group", "group", g.name, "err", err)
		c.forgetLocked(g, kerr.NotCoordinator.Code)
		return
	}
	c.forgetLocked(g, kerr.NotCoordinator.Code)
	c.s.log.Info("released idle group", "group", g.name, "idle_for", time.Since(g.idleSince).Round(time.Millisecond))
}

// stillHeld reports, with g.mu held, whether this agent still holds g's
// coordinator key under g's lease, read back from etcd after a release or
// delete of the key returned an error (etcd may have applied it all the
// same). A failed read counts as not held: forgetting a group whose key is
// still held only makes its members rejoin (a request claims it here
// again), whereas serving one whose key is gone lets another agent claim
// and coordinate it too.
func (c *coordinator) stillHeld(g *group) bool {
	sess := c.s.currentSession()
	if sess == nil || sess.Lease() != g.lease {
		return false
	}
	ctx, cancel := context.WithTimeout(c.s.ctx, requestTimeout)
	defer cancel()
	var holder int32
	err := c.s.groupMeta(groupOpCoordinator, g.name, func() (err error) {
		holder, err = c.s.meta.GroupCoordinator(ctx, g.name)
		return err
	})
	if err != nil {
		if c.s.ctx.Err() == nil {
			c.s.log.Warn("reading back group coordinator failed; dropping the group", "group", g.name, "err", err)
		}
		return false
	}
	return holder == sess.NodeID()
}

// forgetLocked removes g from the registry and kills it, with g.mu held
// (so a request that found g waits, sees it Dead and claims afresh), after
// its coordinator key left etcd or may have: counted in released, so that
// a claim that overlapped the key's deletion is repeated (acquire).
func (c *coordinator) forgetLocked(g *group, code int16) {
	c.unregister(g)
	g.killLocked(code)
}

// unregister removes g from the registry and counts a release.
func (c *coordinator) unregister(g *group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups[g.name] == g {
		delete(c.groups, g.name)
	}
	c.released++
}

// session returns the agent's current session, nil before Start.
func (s *Server) currentSession() *metastore.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session
}

// watchSession drops every group when the session that claimed them ends,
// and all of them when the server closes.
func (c *coordinator) watchSession() {
	for {
		sess := c.s.currentSession()
		var done <-chan struct{}
		if sess != nil {
			done = sess.Done()
		}
		select {
		case <-c.s.ctx.Done():
			c.dropAll("agent closing")
			return
		case <-done:
			c.dropAll("agent lease lost")
			// Wait for keepRegistered to install a new session.
			for c.s.currentSession() == sess {
				if !retry.Sleep(c.s.ctx, 100*time.Millisecond) {
					return
				}
			}
		case <-time.After(time.Second):
			// No session yet (tests serving without Start): look again.
		}
	}
}

func (c *coordinator) dropAll(why string) {
	c.mu.Lock()
	gs := c.groups
	c.groups = map[string]*group{}
	c.released++
	c.mu.Unlock()
	for _, g := range gs {
		c.s.log.Info("dropping group", "group", g.name, "why", why)
		g.kill(kerr.NotCoordinator.Code)
	}
}

// drop forgets g (it was lost) and fails its waiters. Like an idle
// release it counts in released: a claim that overlapped the loss of the
// key is repeated (acquire).
func (c *coordinator) drop(g *group, code int16) {
	c.unregister(g)
	g.kill(code)
}

// lookup returns the group if this agent holds it now, without claiming.
func (c *coordinator) lookup(name string) *group {
	sess := c.s.currentSession()
	if sess == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[name]
	if g != nil && g.lease != sess.Lease() {
		return nil
	}
	return g
}

// lock acquires the group and locks it, marking it used (which postpones
// an idle release). A group that died meanwhile (released while idle,
// deleted, or its coordination lost) is acquired again, up to
// claimAttempts times; then it answers NOT_COORDINATOR. On success the
// caller unlocks g.mu.
func (c *coordinator) lock(ctx context.Context, name string) (*group, int16) {
	for range claimAttempts {
		g, code := c.acquire(ctx, name)
		if code != 0 {
			return nil, code
		}
		g.mu.Lock()
		if g.state != stateDead {
			g.idleSince = time.Now()
			return g, 0
		}
		g.mu.Unlock()
	}
	return nil, kerr.NotCoordinator.Code
}

// acquire returns the group if this agent coordinates it, claiming it in
// etcd when nobody does. Otherwise it returns an error code:
// NOT_COORDINATOR (another agent holds it), COORDINATOR_NOT_AVAILABLE (no
// session yet, etcd failed, or claims kept racing idle releases),
// INVALID_GROUP_ID (empty). The group may be Dead by the time the caller
// locks it (see lock).
func (c *coordinator) acquire(ctx context.Context, name string) (*group, int16) {
	if name == "" {
		return nil, kerr.InvalidGroupID.Code
	}
	sess := c.s.currentSession()
	if sess == nil {
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	select {
	case <-sess.Done():
		return nil, kerr.CoordinatorNotAvailable.Code
	default:
	}
	// emptySince and protocolType are the records a claim took from etcd;
	// a repeated claim finds the key held and returns none, so keep them.
	var emptySince time.Time
	var protocolType, groupType string
	var recorded, membersActive bool
	var members metastore.MembersRecord
	for range claimAttempts {
		c.mu.Lock()
		g, released := c.groups[name], c.released
		c.mu.Unlock()
		if g != nil && g.lease == sess.Lease() {
			return g, 0
		}
		var claim metastore.GroupClaim
		err := c.s.groupMeta(groupOpClaim, name, func() (err error) {
			claim, err = c.s.meta.ClaimGroup(ctx, name, sess.NodeID(), sess.Lease())
			return err
		})
		if err != nil {
			c.s.log.Warn("claim group coordinator failed", "group", name, "err", err)
			return nil, kerr.CoordinatorNotAvailable.Code
		}
		if !claim.Mine {
			c.s.log.Debug("not coordinator", "group", name, "holder", claim.Holder)
			return nil, kerr.NotCoordinator.Code
		}
		if !claim.EmptySince.IsZero() {
			emptySince = claim.EmptySince
		}
		if claim.HasProtocolType {
			protocolType, recorded = claim.ProtocolType, true
		}
		if claim.Type != "" {
			groupType = claim.Type
		}
		if claim.MembersActive {
			membersActive = true
			members = metastore.MembersRecord{Session: claim.MembersSession, Listed: claim.MembersListed, IDs: slices.Sorted(slices.Values(claim.MembersIDs))}
		}
		c.mu.Lock()
		if g := c.groups[name]; g != nil && g.lease == sess.Lease() {
			c.mu.Unlock()
			return g, 0
		}
		if c.released != released {
			// A group left the registry during the claim (released,
			// deleted or lost): the key the claim found held by this
			// agent may be the one that was deleted.
			c.mu.Unlock()
			continue
		}
		g = newGroup(c, name, sess.Lease(), emptySince)
		// As recorded (by a join or a release): a joining member resets it.
		g.protocolType, g.recordedType, g.recorded = protocolType, protocolType, recorded
		g.membersRecorded, g.membersRecord = membersActive, members
		if membersActive && (!members.Listed || len(members.IDs) > 0) {
			// Its coordinator died with classic members, which may
			// still own partitions until they hear of it (Failover).
			g.takeover = newTakeover(members)
		}
		if g.typeRecord = groupType; metastore.IsConsumerType(groupType) {
			// A KIP-848 group, empty here: it stays one (consumer_group.go).
			g.cg, g.protocolType = newCgroup(c.s.cfg.Metrics), "consumer"
			if active, ids, listed := metastore.ActiveMembers(groupType); active && (!listed || len(ids) > 0) {
				// Its coordinator died with members, which may still
				// own partitions until they hear of it.
				session, _ := c.s.consumerTimeouts(ctx, name)
				g.cg.graceUntil = time.Now().Add(session)
				g.cg.awaitUnlisted = !listed
				g.cg.awaiting = map[string]bool{}
				for _, id := range ids {
					g.cg.awaiting[id] = true
				}
			}
		}
		c.groups[name] = g
		c.mu.Unlock()
		c.s.log.Info("coordinating group", "group", name)
		return g, 0
	}
	return nil, kerr.CoordinatorNotAvailable.Code
}

// owned returns every group this agent holds now.
func (c *coordinator) owned() []*group {
	sess := c.s.currentSession()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		if sess != nil && g.lease == sess.Lease() {
			out = append(out, g)
		}
	}
	return out
}

// rendezvous returns the live agent with the highest hash of (group, node):
// the agent FindCoordinator names for a group nobody holds.
func rendezvous(agents []metastore.AgentInfo, group string) (metastore.AgentInfo, bool) {
	var best metastore.AgentInfo
	var bestH uint64
	found := false
	for _, a := range agents {
		h := fnv.New64a()
		h.Write([]byte(group))
		h.Write([]byte{0})
		h.Write([]byte(strconv.Itoa(int(a.NodeID))))
		if v := h.Sum64(); !found || v > bestH {
			best, bestH, found = a, v, true
		}
	}
	return best, found
}

// groupErr maps an etcd error of a group write to a Kafka error code.
func groupErr(s *Server, op string, err error) int16 {
	if errors.Is(err, metastore.ErrNotCoordinator) {
		return kerr.NotCoordinator.Code
	}
	return errCode(s.log, op, err)
}
