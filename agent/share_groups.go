package agent

// Share groups (KIP-932): the work queue. Consumers of a share group share
// the records of the partitions assigned to them; each record is acquired
// by one member under a lock, acknowledged (ACCEPT, RELEASE, REJECT) per
// record, redelivered after a release or a lock expiry until the delivery
// limit archives it. The APIs are in share_group_heartbeat.go,
// share_group_describe.go, share_fetch.go, share_acknowledge.go and
// share_offsets.go; the per-record state machine is package share.
//
// # Membership
//
// A share group has one coordinator agent, the same as a classic group's
// (groups.go: groups/<g>/coordinator under the agent's lease, found with
// FindCoordinator key type 0); its members, epochs and assignment live in
// the coordinator's memory, on the classic group object (group.share), and
// are rebuilt by members rejoining after a failover (UNKNOWN_MEMBER_ID
// makes them rejoin with epoch 0 and the same member ID). A group is of one
// type: share-groups/<g>/group in etcd records a share group (written at
// its first join); ShareGroupHeartbeat for a group with classic members is
// GROUP_ID_NOT_FOUND, and JoinGroup for a share group
// INCONSISTENT_GROUP_PROTOCOL. The assignor spreads each subscribed
// topic's partitions over its subscribers (every partition to at least one
// member; with more members than partitions, members share partitions
// round-robin); it is recomputed at each heartbeat, and a change bumps the
// group epoch. Members leave with epoch -1 or after
// share.session.timeout.ms without a heartbeat; their acquired records are
// then released.
//
// # Share-partition state: compare-and-swap, any agent
//
// Kafka hosts a share-partition on its partition's leader. In shale any
// agent serves any partition, and Metadata's "leader" is only a hash, so
// two agents may serve one share-partition at once (a client following
// stale metadata, an agent joining or dying). The choice: no owner at all.
// The state (share.Partition: start offset, in-flight records with state,
// delivery count, holder and lock deadline) is one etcd value per
// share-partition, and every change — one request's acknowledgements and
// acquisitions for that partition together — is a compare-and-swap on its
// ModRevision (metastore.PutShareState). An agent caches the state with
// its revision; a lost race re-reads and recomputes, so two agents never
// acquire the same record from one state, and no answer is sent before
// etcd has its change: an acknowledged (accepted) record is never
// delivered again, whichever agent dies. Lock expiry needs no timer: the
// deadlines are in the state and every agent applies them when it loads
// it. The etcd cost is one transaction per request and partition that
// changes something, whatever the number of records it acquires or
// acknowledges (up to max.poll.records, 500 by default).
//
// # Share sessions
//
// Per agent and (group, member), as Kafka keeps them per broker: epoch 0
// opens one (acknowledgements then are INVALID_REQUEST), each ShareFetch
// or ShareAcknowledge must carry the session's epoch
// (INVALID_SHARE_SESSION_EPOCH) and advances it, -1 closes it and releases
// the member's records of the session's partitions. The close of the
// connection that last used a session does the same (Kafka ends a share
// session on disconnect): a consumer that dies with records acquired has
// them redelivered at once, not when their locks expire; only a member
// that vanishes with its connection still open (a network partition, a
// hung process) holds them until then. An unknown session is
// SHARE_SESSION_NOT_FOUND; clients then open a new one.
//
// # Isolation
//
// share.isolation.level=read_committed (a group config) acquires nothing
// at or past the partition's last stable offset and archives the records
// of aborted transactions as it acquires them, so they are never
// delivered (KIP-932); control batches are in the acquired ranges and
// clients acknowledge them as gaps, as with Kafka. read_uncommitted (the
// default) acquires up to the high watermark.
//
// # Differences from Kafka
//
//   - ShareFetch and ShareAcknowledge are served by any agent, never
//     NOT_LEADER_OR_FOLLOWER.
//   - A share-partition is initialized at the first ShareFetch of it (Kafka:
//     when first assigned); share.auto.offset.reset is earliest, latest or
//     by_duration:<ISO-8601 duration> (the first record that recent, else
//     latest).
//   - An acknowledgement arriving after its lock expired is refused
//     (INVALID_RECORD_STATE) even if nobody acquired the record meanwhile,
//     as Kafka's timer would have released it.

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
)

// maxShareMembers bounds a share group's members (Kafka's
// group.share.max.size is 200).
const maxShareMembers = 200

// shareMembers is a share group's membership, on the coordinator's group
// object, guarded by the group's mu.
type shareMembers struct {
	epoch   int32
	members map[string]*shareMember
}

type shareMember struct {
	id, clientID, host string
	rack               *string
	epoch, prevEpoch   int32
	topics             []string // sorted
	assignment         map[metastore.TopicID][]int32
	last               time.Time
	timer              *time.Timer
}

// active reports whether the share group has members (nil-safe).
func (sm *shareMembers) active() bool { return sm != nil && len(sm.members) > 0 }

// isShareGroup reports, with g.mu held, whether g is a share group: it
// has share members, or etcd records it as one.
func (s *Server) isShareGroup(ctx context.Context, g *group) bool {
	if g.share != nil {
		return true
	}
	ok, err := s.meta.IsShareGroup(ctx, g.name)
	if err != nil {
		s.log.Warn("read share group record", "group", g.name, "err", err)
	}
	return ok
}

// shareAssign computes every member's assignment: per topic, its
// partitions spread over its subscribers, sorted by member ID.
func (s *Server) shareAssign(ctx context.Context, sm *shareMembers) map[string]map[metastore.TopicID][]int32 {
	out := map[string]map[metastore.TopicID][]int32{}
	subs := map[string][]string{}
	for id, m := range sm.members {
		out[id] = map[metastore.TopicID][]int32{}
		for _, t := range m.topics {
			subs[t] = append(subs[t], id)
		}
	}
	for topic, ids := range subs {
		if _, internal := lookupInternal(topic); internal {
			continue
		}
		t, err := s.topics.get(ctx, topic)
		if err != nil || t.Partitions <= 0 {
			continue
		}
		sort.Strings(ids)
		n, m := int(t.Partitions), len(ids)
		for i := range max(n, m) {
			id := ids[i%m]
			p := int32(i % n)
			if !slices.Contains(out[id][t.ID], p) {
				out[id][t.ID] = append(out[id][t.ID], p)
			}
		}
	}
	return out
}

func sameAssignment(a, b map[metastore.TopicID][]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for id, ps := range a {
		if !slices.Equal(ps, b[id]) {
			return false
		}
	}
	return true
}

// rebalanceShare recomputes the assignment and bumps the group epoch if
// it changed (with g.mu held).
func (s *Server) rebalanceShare(ctx context.Context, sm *shareMembers) {
	next := s.shareAssign(ctx, sm)
	changed := false
	for id, m := range sm.members {
		if !sameAssignment(m.assignment, next[id]) {
			m.assignment = next[id]
			changed = true
		}
	}
	if changed {
		sm.epoch++
		s.cfg.Metrics.GroupRebalance(metrics.GroupShare)
	}
}

// shareAssignment is a member's assignment as the heartbeat answers it.
func shareAssignment(m *shareMember) *kmsg.ShareGroupHeartbeatResponseAssignment {
	a := new(kmsg.ShareGroupHeartbeatResponseAssignment)
	for _, id := range sortedTopicIDs(m.assignment) {
		tp := kmsg.NewShareGroupHeartbeatResponseAssignmentTopicPartition()
		tp.TopicID, tp.Partitions = id, m.assignment[id]
		a.TopicPartitions = append(a.TopicPartitions, tp)
	}
	return a
}

func sortedTopicIDs(m map[metastore.TopicID][]int32) []metastore.TopicID {
	ids := make([]metastore.TopicID, 0, len(m))
	for id, ps := range m {
		slices.Sort(ps)
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b metastore.TopicID) int { return slices.Compare(a[:], b[:]) })
	return ids
}

// removeShareMember takes m out of the group (it left or timed out), with
// g.mu held, and releases its records in the background.
func (s *Server) removeShareMember(g *group, m *shareMember, why string) {
	sm := g.share
	if m.timer != nil {
		m.timer.Stop()
	}
	delete(sm.members, m.id)
	sm.epoch++
	s.cfg.Metrics.GroupRebalance(metrics.GroupShare)
	if len(sm.members) > 0 {
		s.rebalanceShare(s.ctx, sm)
	}
	s.log.Info("share group member left", "group", g.name, "member", m.id, "why", why)
	group, member := g.name, m.id
	s.shareReg().dropSessions(group, member)
	go s.shareReg().releaseMember(group, member)
}

// shareSessionTimer (re)arms m's session timeout.
func (s *Server) shareSessionTimer(g *group, m *shareMember, timeout time.Duration) {
	if m.timer != nil {
		m.timer.Stop()
	}
	m.last = time.Now()
	m.timer = time.AfterFunc(timeout, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.share == nil || g.share.members[m.id] != m || time.Since(m.last) < timeout {
			return
		}
		s.removeShareMember(g, m, "session timeout")
	})
}

// killShare stops the timers of a group being dropped (with g.mu held).
func (sm *shareMembers) kill() {
	if sm == nil {
		return
	}
	for _, m := range sm.members {
		if m.timer != nil {
			m.timer.Stop()
		}
	}
}

// shareRegistry is one agent's share-partition cache and share sessions.
type shareRegistry struct {
	s *Server

	mu       sync.Mutex
	parts    map[sharePartKey]*sharePart
	sessions map[shareSessKey]*shareSession
	// changed is closed (and replaced) when this agent released records,
	// waking its waiting ShareFetches.
	changed chan struct{}
}

func (s *Server) shareReg() *shareRegistry {
	s.shareOnce.Do(func() {
		s.shares = &shareRegistry{s: s, parts: map[sharePartKey]*sharePart{},
			sessions: map[shareSessKey]*shareSession{}, changed: make(chan struct{})}
	})
	return s.shares
}

// wake wakes the ShareFetches waiting on this agent.
func (r *shareRegistry) wake() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *shareRegistry) wakeCh() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// shareGroupCode answers a ShareFetch or ShareAcknowledge for a group
// that is not a share group: GROUP_ID_NOT_FOUND, as Kafka does.
func (s *Server) shareGroupCode(ctx context.Context, group string) int16 {
	ok, err := s.meta.IsShareGroup(ctx, group)
	if err != nil {
		return errCode(s.log, "share: read group", err)
	}
	if !ok {
		return kerr.GroupIDNotFound.Code
	}
	return 0
}

// deleteShareGroup deletes g's share group record and states from etcd
// when g is a share group without members (with g.mu held, for
// DeleteGroups). It reports whether g was a share group.
func (s *Server) deleteShareGroup(ctx context.Context, g *group) (bool, int16) {
	if !s.isShareGroup(ctx, g) {
		return false, 0
	}
	if g.share.active() {
		return true, kerr.NonEmptyGroup.Code
	}
	if err := s.meta.DeleteShareGroup(ctx, g.name); err != nil {
		return true, errCode(s.log, "delete share group", err)
	}
	g.share = nil
	s.shareReg().forgetTopic(g.name, metastore.TopicID{})
	return true, 0
}
