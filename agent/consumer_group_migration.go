package agent

// Online migration of a live group between the classic protocol and
// KIP-848 (consumer_group.go, "Online migration between the protocols"),
// as Kafka 4's GroupMetadataManager does it: the conversions both ways
// (upgradeToConsumer, downgradeToClassic) and the classic members of a
// consumer group, served from its KIP-848 state (classicJoin, classicSync,
// classicHeartbeat, classicLeave). Every function runs with g.mu held.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MigrationPolicy is Kafka's group.consumer.migration.policy: which way a
// group with members may change protocol online.
type MigrationPolicy string

// The migration policies; the zero value is MigrationBidirectional.
const (
	MigrationBidirectional MigrationPolicy = "bidirectional"
	MigrationUpgrade       MigrationPolicy = "upgrade"
	MigrationDowngrade     MigrationPolicy = "downgrade"
	MigrationDisabled      MigrationPolicy = "disabled"
)

// ParseMigrationPolicy reads a policy as Kafka does (case-insensitive);
// another value is refused with Kafka's message.
func ParseMigrationPolicy(s string) (MigrationPolicy, error) {
	switch p := MigrationPolicy(strings.ToLower(s)); p {
	case MigrationBidirectional, MigrationUpgrade, MigrationDowngrade, MigrationDisabled:
		return p, nil
	}
	return "", fmt.Errorf("invalid value %s for configuration group.consumer.migration.policy: String must be one of (case insensitive): DISABLED, DOWNGRADE, UPGRADE, BIDIRECTIONAL", s)
}

func (p MigrationPolicy) upgrade() bool {
	return p == "" || p == MigrationBidirectional || p == MigrationUpgrade
}

func (p MigrationPolicy) downgrade() bool {
	return p == "" || p == MigrationBidirectional || p == MigrationDowngrade
}

// classicMember is what a consumer group keeps of a member that speaks
// the classic protocol: its JoinGroup protocols and session timeout, and
// the timers of its join (after REBALANCE_IN_PROGRESS) and its sync
// (after a JoinGroup), each its rebalance timeout.
type classicMember struct {
	protocols []kmsg.JoinGroupRequestProtocol
	session   time.Duration
	join      *time.Timer
	sync      *time.Timer
}

// protocol is the protocol name a classic member is answered with: the
// first it offered (Kafka's).
func (c *classicMember) protocol() string {
	if len(c.protocols) == 0 {
		return ""
	}
	return c.protocols[0].Name
}

func (c *classicMember) stop() {
	if c.join != nil {
		c.join.Stop()
		c.join = nil
	}
	if c.sync != nil {
		c.sync.Stop()
		c.sync = nil
	}
}

// decodeSubscription reads the ConsumerMemberMetadata of the first
// protocol (all carry the same subscription).
func decodeSubscription(protocols []kmsg.JoinGroupRequestProtocol) (kmsg.ConsumerMemberMetadata, error) {
	md := kmsg.NewConsumerMemberMetadata()
	if len(protocols) == 0 {
		return md, fmt.Errorf("no protocol")
	}
	err := md.ReadFrom(protocols[0].Metadata)
	return md, err
}

// namedToIDs maps topic names and partitions to topic IDs; topics the view
// does not know are left out.
func namedToIDs(tv *topicView, add func(yield func(string, []int32))) map[tid][]int32 {
	out := map[tid][]int32{}
	add(func(name string, parts []int32) {
		t, ok := tv.byName[name]
		if !ok {
			return
		}
		for _, p := range parts {
			if p >= 0 && p < t.Partitions && !slices.Contains(out[tid(t.ID)], p) {
				out[tid(t.ID)] = append(out[tid(t.ID)], p)
			}
		}
		slices.Sort(out[tid(t.ID)])
	})
	return out
}

func ownedOf(tv *topicView, md kmsg.ConsumerMemberMetadata) []ownedTopic {
	a := namedToIDs(tv, func(yield func(string, []int32)) {
		for _, o := range md.OwnedPartitions {
			yield(o.Topic, o.Partitions)
		}
	})
	out := make([]ownedTopic, 0, len(a))
	for _, id := range cgTopicIDs(a) {
		out = append(out, ownedTopic{id: id, parts: a[id]})
	}
	return out
}

// encodeAssignment encodes a as a ConsumerMemberAssignment of the version
// of the member's first protocol metadata.
func encodeAssignment(a map[tid][]int32, names map[tid]string, protocols []kmsg.JoinGroupRequestProtocol) []byte {
	ma := kmsg.NewConsumerMemberAssignment()
	if md, err := decodeSubscription(protocols); err == nil {
		ma.Version = min(md.Version, 3)
	}
	for _, id := range cgTopicIDs(a) {
		n, ok := names[id]
		if !ok {
			continue
		}
		t := kmsg.NewConsumerMemberAssignmentTopic()
		t.Topic, t.Partitions = n, slices.Clone(a[id])
		ma.Topics = append(ma.Topics, t)
	}
	return ma.AppendTo(nil)
}

// upgradeToConsumer converts a classic group with members into a consumer
// group, for a ConsumerGroupHeartbeat joining it: its members become
// KIP-848 members marked classic, each at the generation with its current
// assignment (owned in cg.owners) as its target. It returns the error code
// to answer instead when the group cannot be converted: GROUP_ID_NOT_FOUND
// (policy, protocol type, size, undecodable metadata), or
// COORDINATOR_LOAD_IN_PROGRESS while a rebalance is completing (the
// members' assignments are then being replaced: the client retries).
func (g *group) upgradeToConsumer(policy MigrationPolicy, tv *topicView, session time.Duration) (int16, string) {
	notConsumer := "Group " + g.name + " is not a consumer group."
	switch {
	case !policy.upgrade():
		return kerr.GroupIDNotFound.Code, notConsumer + " (online upgrade disabled by group.consumer.migration.policy)"
	case g.protocolType != "consumer":
		return kerr.GroupIDNotFound.Code, notConsumer + " (protocol type " + g.protocolType + ")"
	case len(g.members) >= maxGroupMembers:
		return kerr.GroupIDNotFound.Code, notConsumer + " (too many members to upgrade)"
	case g.state == stateCompleting || g.takeover.active:
		msg := "Group " + g.name + " is completing a rebalance; retry the upgrade."
		return kerr.CoordinatorLoadInProgress.Code, msg
	}
	cg := newCgroup(g.c.s.cfg.Metrics)
	cg.epoch, cg.targetEpoch, cg.session = g.generation, g.generation, session
	for _, m := range g.members {
		md, err := decodeSubscription(m.protocols)
		if err != nil {
			return kerr.GroupIDNotFound.Code, notConsumer + " (member " + m.id + "'s metadata does not decode: " + err.Error() + ")"
		}
		ma := kmsg.NewConsumerMemberAssignment()
		if len(m.assignment) > 0 {
			if err := ma.ReadFrom(m.assignment); err != nil {
				return kerr.GroupIDNotFound.Code, notConsumer + " (member " + m.id + "'s assignment does not decode: " + err.Error() + ")"
			}
		}
		assigned := namedToIDs(tv, func(yield func(string, []int32)) {
			for _, t := range ma.Topics {
				yield(t.Topic, t.Partitions)
			}
		})
		topics := slices.Clone(md.Topics)
		slices.Sort(topics)
		cm := &cmember{id: m.id, instanceID: m.instanceID, rackID: md.Rack, clientID: m.clientID, clientHost: m.clientHost,
			epoch: g.generation, prevEpoch: g.generation, rebalance: m.rebalance, topics: slices.Compact(topics),
			target: cloneAssignment(assigned), assigned: assigned, revoking: map[tid][]int32{},
			classic: &classicMember{protocols: m.protocols, session: m.session}}
		cm.stampAssignEpochs()
		cg.members[m.id] = cm
		if m.instanceID != nil {
			cg.static[*m.instanceID] = m.id
		}
	}
	// Converted: the classic state machine stops.
	for _, m := range g.members {
		if m.expiry != nil {
			m.expiry.Stop()
		}
		g.answerWaiters(m, kerr.RebalanceInProgress.Code)
	}
	for _, t := range g.pending {
		t.Stop()
	}
	g.stopTimer()
	n := len(g.members)
	g.members, g.static, g.pending = map[string]*member{}, map[string]string{}, map[string]*time.Timer{}
	g.state, g.leader, g.protocol, g.initialDelay = stateEmpty, "", "", false
	g.cg, g.protocolType = cg, "consumer"
	for _, m := range cg.members {
		cg.claim(m.assigned, m.id, m.epoch)
		g.touchConsumer(m)
	}
	cg.topicSig = cg.signature(tv)
	g.recordMembers() // the classic members record now lists nobody; the type record lists them (syncGroupType)
	g.c.s.log.Info("classic group upgraded to a consumer group", "group", g.name, "members", n, "epoch", cg.epoch)
	return 0, ""
}

// downgradeToClassic converts a consumer group whose members all speak
// the classic protocol back into a classic group at the group epoch, each
// member with its current assignment, and prepares a rebalance: every
// member rejoins and a client-side assignor takes over (Kafka's
// convertToClassicGroup).
func (g *group) downgradeToClassic() {
	cg := g.cg
	names := g.c.topicNames()
	members := map[string]*member{}
	static := map[string]string{}
	for _, cm := range cg.members {
		m := &member{id: cm.id, instanceID: cm.instanceID, clientID: cm.clientID, clientHost: cm.clientHost,
			protoType: "consumer", protocols: cm.classic.protocols, session: cm.classic.session, rebalance: cm.rebalance,
			assignment: encodeAssignment(cm.assigned, names, cm.classic.protocols)}
		members[m.id] = m
		if m.instanceID != nil {
			static[*m.instanceID] = m.id
		}
	}
	g.killConsumers()
	g.cg = nil
	g.members, g.static = members, static
	g.generation, g.protocolType, g.leader = cg.epoch, "consumer", ""
	g.protocol = g.selectProtocol()
	g.state = stateStable
	for _, m := range g.members {
		g.touch(m)
	}
	g.recordMembers()
	g.syncGroupType()
	g.c.s.log.Info("consumer group downgraded to a classic group", "group", g.name, "members", len(members), "generation", g.generation)
	g.rebalance()
}

// maybeDowngrade downgrades g after the removal of a KIP-848 member when
// every remaining member speaks the classic protocol and the policy allows
// it; it reports whether it did.
func (g *group) maybeDowngrade(removed *cmember) bool {
	cg := g.cg
	if removed.classic != nil || len(cg.members) == 0 || !g.c.s.cfg.ConsumerMigrationPolicy.downgrade() || !cg.allClassic() {
		return false
	}
	g.downgradeToClassic()
	return true
}

// classicMemberOf finds the classic member a request names (by instance
// ID when it has one): UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID when the
// instance belongs to another member ID.
func (cg *cgroup) classicMemberOf(memberID string, instanceID *string) (*cmember, int16) {
	id := memberID
	if instanceID != nil {
		owner, ok := cg.static[*instanceID]
		if !ok {
			return nil, kerr.UnknownMemberID.Code
		}
		if memberID != "" && owner != memberID {
			return nil, kerr.FencedInstanceID.Code
		}
		id = owner
	}
	m := cg.members[id]
	if m == nil || m.classic == nil || m.epoch == -2 {
		return nil, kerr.UnknownMemberID.Code
	}
	return m, 0
}

// supportsClassic reports whether a classic member with these protocols
// fits the group: protocol type "consumer" and a protocol every other
// classic member offered.
func (cg *cgroup) supportsClassic(protocolType string, protocols []kmsg.JoinGroupRequestProtocol, except string) bool {
	if protocolType != "consumer" || len(protocols) == 0 {
		return false
	}
	for _, p := range protocols {
		ok := true
		for id, m := range cg.members {
			if id == except || m.classic == nil {
				continue
			}
			if !slices.ContainsFunc(m.classic.protocols, func(q kmsg.JoinGroupRequestProtocol) bool { return q.Name == p.Name }) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// armJoinTimeout removes m unless it rejoins within its rebalance timeout
// (it was told REBALANCE_IN_PROGRESS); an armed timer is kept.
func (g *group) armJoinTimeout(m *cmember) {
	if m.classic.join != nil {
		return
	}
	cg := g.cg
	m.classic.join = g.afterLocked(m.rebalance, func() {
		if g.cg != cg || cg.members[m.id] != m {
			return
		}
		g.removeConsumer(m, "rebalance timeout: the classic member did not rejoin")
	})
}

// armSyncTimeout removes m unless its SyncGroup comes within its
// rebalance timeout after its JoinGroup.
func (g *group) armSyncTimeout(m *cmember) {
	if m.classic.sync != nil {
		m.classic.sync.Stop()
	}
	cg := g.cg
	m.classic.sync = g.afterLocked(m.rebalance, func() {
		if g.cg != cg || cg.members[m.id] != m {
			return
		}
		g.removeConsumer(m, "rebalance timeout: the classic member sent no SyncGroup")
	})
}

// classicJoin answers a JoinGroup to a consumer group with members
// (Kafka's classicGroupJoinToConsumerGroup): at once, with the member's
// epoch as generation, no leader and no member list.
func (g *group) classicJoin(rc *reqCtx, req *kmsg.JoinGroupRequest, session, rebalance time.Duration, tv *topicView) *kmsg.JoinGroupResponse {
	cg := g.cg
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	empty := ""
	resp.Generation, resp.Protocol, resp.MemberID = -1, &empty, req.MemberID
	id := req.MemberID
	unknown := id == ""
	if unknown {
		id = newMemberID(rc.clientID)
	}
	if !cg.supportsClassic(req.ProtocolType, req.Protocols, id) {
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return resp
	}
	if cg.active() >= maxGroupMembers && cg.members[id] == nil {
		resp.ErrorCode = kerr.GroupMaxSizeReached.Code
		return resp
	}
	if unknown && req.InstanceID == nil && req.Version >= 4 {
		resp.MemberID, resp.ErrorCode = id, kerr.MemberIDRequired.Code
		return resp
	}
	md, err := decodeSubscription(req.Protocols)
	if err != nil {
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return resp
	}
	m := cg.members[id]
	replaced848 := false // a KIP-848 static member replaced by this classic one
	if req.InstanceID != nil {
		if owner, ok := cg.static[*req.InstanceID]; ok && owner != id {
			old := cg.members[owner]
			if !unknown {
				resp.ErrorCode = kerr.FencedInstanceID.Code
				return resp
			}
			// A new incarnation of the instance: it inherits what the old
			// one held (Kafka's static member replacement).
			m = &cmember{id: id, instanceID: req.InstanceID, target: map[tid][]int32{}, assigned: map[tid][]int32{}, revoking: map[tid][]int32{}}
			if old != nil {
				m.target, m.assigned, m.assignEpochs = cloneAssignment(old.target), cloneAssignment(old.assigned), old.assignEpochs
				m.topics, replaced848 = old.topics, old.classic == nil
				cg.fence(old)
				delete(cg.members, owner)
				cg.claim(m.assigned, m.id, m.epoch)
			}
			cg.members[id] = m
		}
		cg.static[*req.InstanceID] = id
	}
	isNew := m == nil
	if isNew {
		m = &cmember{id: id, instanceID: req.InstanceID, target: map[tid][]int32{}, assigned: map[tid][]int32{}, revoking: map[tid][]int32{}}
		cg.members[id] = m
		cg.adoptOwned(m, ownedOf(tv, md))
	}
	cg.told(id)
	if m.classic == nil {
		m.classic = &classicMember{}
	}
	m.classic.protocols, m.classic.session = req.Protocols, session
	m.rebalance, m.clientID, m.clientHost = rebalance, rc.clientID, clientHost(rc)
	if md.Rack != nil {
		m.rackID = md.Rack
	}
	topics := slices.Clone(md.Topics)
	slices.Sort(topics)
	topics = slices.Compact(topics)
	changed := isNew || !slices.Equal(topics, m.topics)
	m.topics = topics
	if changed || cg.signature(tv) != cg.topicSig {
		cg.bump(tv)
	}
	cg.reconcile(m, ownedOf(tv, md), true)
	if m.classic.join != nil {
		m.classic.join.Stop()
		m.classic.join = nil
	}
	g.touchConsumer(m)
	g.armSyncTimeout(m)
	g.armRevocation(m)
	g.syncGroupType()
	pt, p := "consumer", m.classic.protocol()
	resp.MemberID, resp.Generation, resp.ProtocolType, resp.Protocol = id, m.epoch, &pt, &p
	g.c.s.log.Info("classic member joined a consumer group", "group", g.name, "member", id, "epoch", m.epoch, "group_epoch", cg.epoch, "state", m.state)
	if replaced848 && g.c.s.cfg.ConsumerMigrationPolicy.downgrade() && cg.allClassic() {
		// The last KIP-848 member was a static one, replaced by this
		// classic incarnation (Kafka's validateOnlineDowngradeWithReplacedMemberId):
		// classic again. The rebalance that follows answers this
		// member's SyncGroup REBALANCE_IN_PROGRESS, and it rejoins.
		g.downgradeToClassic()
		resp.Generation = g.generation
	}
	return resp
}

// adoptOwned gives a classic member new to this coordinator what its
// JoinGroup says it owns and nobody here holds: its assignment and target
// at the group epoch, claimed, as the upgrade does for the members of a
// classic group. A member the coordinator does not know may still own
// partitions: a member of the previous coordinator after a failover
// (membership is in memory), which franz-go's cooperative consumer
// rejoins with its member ID, or, answered UNKNOWN_MEMBER_ID, with a new
// one, keeping what it owns either way. Left free, they went to another
// member before it gave them up (TestConsumerGroupMigrationFailoverOwnedRejoin;
// TestGroupMigrationKillDuringRevocation in tests/interop); claimed, they
// go only once it revoked them and rejoined without them. Partitions
// another member holds stay that member's. (Kafka keeps membership across
// a coordinator's failover, and creates an unknown member owning nothing.)
func (cg *cgroup) adoptOwned(m *cmember, owned []ownedTopic) {
	a := map[tid][]int32{}
	for _, t := range owned {
		for _, p := range t.parts {
			if _, held := cg.owners[t.id][p]; !held {
				a[t.id] = append(a[t.id], p)
			}
		}
	}
	if len(a) == 0 {
		return
	}
	m.epoch, m.prevEpoch = cg.epoch, cg.epoch
	m.assigned, m.target = a, cloneAssignment(a)
	cg.claim(a, m.id, m.epoch)
	m.stampAssignEpochs()
}

// allClassic reports whether every member speaks the classic protocol.
func (cg *cgroup) allClassic() bool {
	for _, m := range cg.members {
		if m.classic == nil {
			return false
		}
	}
	return true
}

// classicSync answers a SyncGroup of a classic member of a consumer group
// with its current assignment (what it sent is ignored).
func (g *group) classicSync(req *kmsg.SyncGroupRequest, resp *kmsg.SyncGroupResponse) {
	cg := g.cg
	m, code := cg.classicMemberOf(req.MemberID, req.InstanceID)
	switch {
	case code != 0:
		resp.ErrorCode = code
		return
	case req.Generation != m.epoch:
		resp.ErrorCode = kerr.IllegalGeneration.Code
		return
	case req.ProtocolType != nil && *req.ProtocolType != "consumer", req.Protocol != nil && *req.Protocol != m.classic.protocol():
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return
	case cg.epoch > m.epoch && m.state != cmUnrevoked:
		g.armJoinTimeout(m)
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		return
	}
	if m.classic.sync != nil {
		m.classic.sync.Stop()
		m.classic.sync = nil
	}
	g.touchConsumer(m)
	pt, p := "consumer", m.classic.protocol()
	resp.ProtocolType, resp.Protocol = &pt, &p
	resp.MemberAssignment = encodeAssignment(m.assigned, g.c.topicNames(), m.classic.protocols)
}

// classicHeartbeat answers a Heartbeat of a classic member of a consumer
// group: REBALANCE_IN_PROGRESS when it must rejoin — the group epoch moved
// past its epoch, it has revocations to acknowledge, or partitions it
// waited for are free now (the classic protocol reports owned partitions
// only in JoinGroup).
func (g *group) classicHeartbeat(req *kmsg.HeartbeatRequest) int16 {
	cg := g.cg
	m, code := cg.classicMemberOf(req.MemberID, req.InstanceID)
	if code != 0 {
		if code == kerr.UnknownMemberID.Code {
			cg.told(req.MemberID)
		}
		return code
	}
	if req.Generation != m.epoch {
		return kerr.IllegalGeneration.Code
	}
	g.touchConsumer(m)
	if m.epoch < cg.epoch || m.state == cmUnrevoked || m.state == cmUnreleased && !cg.waitingOnUnreleased(m) {
		g.armJoinTimeout(m)
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// waitingOnUnreleased reports whether a partition of m's target it does
// not have is still held by another member.
func (cg *cgroup) waitingOnUnreleased(m *cmember) bool {
	for id, parts := range m.target {
		for _, p := range parts {
			if slices.Contains(m.assigned[id], p) {
				continue
			}
			if _, held := cg.owners[id][p]; held {
				return true
			}
		}
	}
	return false
}

// classicLeave removes one classic member of a consumer group, named by
// ID, instance or both.
func (g *group) classicLeave(memberID string, instanceID *string) int16 {
	m, code := g.cg.classicMemberOf(memberID, instanceID)
	if code != 0 {
		if code == kerr.UnknownMemberID.Code {
			g.cg.told(memberID)
		}
		return code
	}
	g.removeConsumer(m, "left")
	return 0
}
