package agent

// The classic group state machine, as Kafka's GroupCoordinator runs it:
//
//	Empty --join--> PreparingRebalance --all joined / timeout--> CompletingRebalance
//	CompletingRebalance --leader's SyncGroup--> Stable
//	Stable or CompletingRebalance --join of a new member, leave, session expiry--> PreparingRebalance
//	PreparingRebalance --last member gone--> Empty
//	Empty --no member and no request for groupIdleRelease--> Dead (released; groups.go)
//
// Every method of group runs with g.mu held (the handlers take it); timers
// take it themselves. Waiting JoinGroup and SyncGroup requests wait on a
// channel of capacity 1 per member, which every path that ends the wait
// fills exactly once (completion, removal, a new rebalance, loss of the
// group), so no waiter outlives its rebalance timeout.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
)

type groupState int8

const (
	stateEmpty groupState = iota
	statePreparing
	stateCompleting
	stateStable
	stateDead
)

func (st groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[st]
}

// joinResult ends a waiting JoinGroup: a response, or an error code.
type joinResult struct {
	resp *kmsg.JoinGroupResponse
	code int16
}

type member struct {
	id         string
	instanceID *string
	clientID   string
	clientHost string
	protoType  string
	protocols  []kmsg.JoinGroupRequestProtocol
	session    time.Duration
	rebalance  time.Duration
	assignment []byte

	joinCh chan joinResult // non-nil while a JoinGroup waits
	syncCh chan syncResult // non-nil while a SyncGroup waits
	expiry *time.Timer
}

type syncResult struct {
	assignment []byte
	code       int16
}

type group struct {
	c     *coordinator
	name  string
	lease clientv3.LeaseID

	mu           sync.Mutex
	state        groupState
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	static       map[string]string      // instance ID -> member ID
	pending      map[string]*time.Timer // member IDs handed out with MEMBER_ID_REQUIRED
	timer        *time.Timer            // rebalance or pending-sync deadline
	timerGen     int                    // invalidates fired timers
	initialDelay bool                   // a new group still waiting for more members
	// idleSince is when the group last became Empty or was last locked by
	// a request; an Empty group is released once it is older than the
	// idle threshold (groups.go, releaseIdle).
	idleSince time.Time
	// cg is the KIP-848 state while the group is a consumer group
	// (consumer_group.go); nil for a classic group.
	cg *cgroup
	// emptySince is when the group last lost its last member or, if it
	// has had none since this agent claimed it, the empty-since record the
	// claim took from etcd, else the claim's time (any member it had
	// before would have rejoined here); the release records it in etcd
	// for offset expiry.
	emptySince time.Time
	// recordedType is the protocol type etcd holds for the group
	// (groups/<g>/protocol-type), if recorded: what the claim read, then
	// what add wrote.
	recordedType string
	recorded     bool
	// typeRecord is the group type etcd holds (groups/<g>/type,
	// metastore.RecordGroupType): "consumer" for a KIP-848 group, "" for
	// none; what the claim read, then what syncGroupType wrote.
	typeRecord string
	// membersRecorded: etcd holds the members-session record (the group
	// had classic members under a coordinator that did not release it
	// since), membersRecord its value (groups_failover.go): what the
	// claim read, then what recordMembers wrote; membersStale: the last
	// write failed (retried at the next heartbeat).
	membersRecorded bool
	membersRecord   metastore.MembersRecord
	membersStale    bool
	// takeover: the claim found the previous coordinator died with
	// classic members (groups.go, Failover).
	takeover takeover
	// share is the group's share membership when it is a share group
	// (share_groups.go), nil otherwise.
	share *shareMembers
}

// newGroup makes a group just claimed; emptySince is the empty-since
// record the claim took from etcd (zero: none).
func newGroup(c *coordinator, name string, lease clientv3.LeaseID, emptySince time.Time) *group {
	now := time.Now()
	if emptySince.IsZero() {
		emptySince = now
	}
	return &group{c: c, name: name, lease: lease, members: map[string]*member{},
		static: map[string]string{}, pending: map[string]*time.Timer{}, idleSince: now, emptySince: emptySince}
}

func newMemberID(clientID string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	if len(clientID) > 64 {
		clientID = clientID[:64]
	}
	return clientID + "-" + hex.EncodeToString(b[:])
}

// kill ends the group on this agent: every waiter gets code.
func (g *group) kill(code int16) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.killLocked(code)
}

// killLocked is kill with g.mu held.
func (g *group) killLocked(code int16) {
	g.state = stateDead
	g.stopTimer()
	g.killConsumers()
	for _, m := range g.members {
		g.answerWaiters(m, code)
		if m.expiry != nil {
			m.expiry.Stop()
		}
	}
	for _, t := range g.pending {
		t.Stop()
	}
	g.members, g.pending, g.static = map[string]*member{}, map[string]*time.Timer{}, map[string]string{}
	g.share.kill()
	g.share = nil
}

func (g *group) answerWaiters(m *member, code int16) {
	if m.joinCh != nil {
		m.joinCh <- joinResult{code: code}
		m.joinCh = nil
	}
	if m.syncCh != nil {
		m.syncCh <- syncResult{code: code}
		m.syncCh = nil
	}
}

func (g *group) stopTimer() {
	g.timerGen++
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}

// setTimer runs f under g.mu after d unless another timer replaces it.
func (g *group) setTimer(d time.Duration, f func()) {
	g.stopTimer()
	gen := g.timerGen
	g.timer = time.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.timerGen == gen && g.state != stateDead {
			g.timer = nil
			f()
		}
	})
}

// touch restarts m's session timer.
func (g *group) touch(m *member) {
	if m.expiry != nil {
		m.expiry.Stop()
	}
	id := m.id
	m.expiry = time.AfterFunc(m.session, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		cur := g.members[id]
		if cur != m || cur.joinCh != nil { // a waiting join is alive by definition
			return
		}
		g.c.s.log.Info("group member session expired", "group", g.name, "member", id)
		g.remove(m, kerr.UnknownMemberID.Code)
	})
}

// add makes m a member and starts (or joins) a rebalance.
func (g *group) add(m *member) {
	g.members[m.id] = m
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	if g.state == stateEmpty {
		g.protocolType = ""
	}
	if g.protocolType == "" {
		g.protocolType = m.protoType
	}
	g.recordType()
	g.recordMembers()
	g.syncGroupType()
	g.rebalance()
}

// syncGroupType records in etcd whether g is a KIP-848 consumer group
// (g.cg set), and which members it has had since this coordinator gave
// it one, when etcd holds otherwise (a write per join and leave): a consumer group stays one, with or without
// members and across coordinators, until it is deleted or converted
// (metastore.RecordGroupType), and a coordinator that claims it while it
// is recorded active withholds its partitions for a session timeout
// (consumer_group.go, Failover). It runs under g.mu, once per change; a
// failure is logged and retried at the next heartbeat or join.
func (g *group) syncGroupType() {
	want := ""
	if g.cg != nil {
		want = metastore.GroupTypeConsumer
		if active, _, _ := metastore.ActiveMembers(g.typeRecord); active || len(g.cg.members) > 0 {
			// Active until the release, listing who may own partitions.
			want = metastore.ActiveRecord(slices.Sorted(maps.Keys(g.cg.members)))
		}
	}
	if g.typeRecord == want {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTypeTimeout)
	defer cancel()
	err := g.c.s.groupMeta(groupOpRecordType, g.name, func() error {
		return g.c.s.meta.RecordGroupType(ctx, g.name, g.lease, want)
	})
	if err != nil {
		g.c.s.log.Warn("record group type failed", "group", g.name, "type", want, "err", err)
		return
	}
	g.typeRecord = want
}

// recordType writes the group's protocol type to etcd when it differs
// from what etcd holds, so that whoever answers for the group after this
// agent dies (before any release) describes it as Kafka does: "consumer"
// for a group whose members left, "" only for a group no member ever
// joined. It runs under g.mu, once per change of type. A failure is
// logged and retried at the next join; the group works without it.
func (g *group) recordType() {
	if g.recorded && g.recordedType == g.protocolType {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTypeTimeout)
	defer cancel()
	pt := g.protocolType
	err := g.c.s.groupMeta(groupOpRecordType, g.name, func() error {
		return g.c.s.meta.RecordGroupProtocolType(ctx, g.name, g.lease, pt)
	})
	if err != nil {
		g.c.s.log.Warn("record group protocol type failed", "group", g.name, "protocol_type", pt, "err", err)
		return
	}
	g.recordedType, g.recorded = pt, true
}

// remove drops m, answering its waiters with code, and rebalances the rest.
func (g *group) remove(m *member, code int16) {
	delete(g.members, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if m.expiry != nil {
		m.expiry.Stop()
	}
	g.answerWaiters(m, code)
	g.recordMembers()
	switch g.state {
	case stateStable, stateCompleting:
		g.rebalance()
	case statePreparing:
		g.maybeCompleteJoin()
	}
}

// rebalance moves to PreparingRebalance: waiting syncs are told to rejoin,
// and the join completes when every member has rejoined or the largest
// rebalance timeout passes.
func (g *group) rebalance() {
	if g.state == statePreparing {
		g.endHold() // a takeover's held first join (Failover)
		g.maybeCompleteJoin()
		return
	}
	for _, m := range g.members {
		if m.syncCh != nil {
			m.syncCh <- syncResult{code: kerr.RebalanceInProgress.Code}
			m.syncCh = nil
		}
	}
	wasEmpty := g.state == stateEmpty
	g.state = statePreparing
	timeout := time.Duration(0)
	for _, m := range g.members {
		timeout = max(timeout, m.rebalance)
	}
	if wasEmpty {
		g.initialDelay = true
		timeout = min(timeout, groupInitialDelay)
		// A group taken over from a coordinator that died with members
		// forms its first generation once they are all gone (Failover).
		timeout = g.holdFirstJoin(timeout)
	}
	g.setTimer(timeout, func() { g.initialDelay = false; g.completeJoin() })
	g.maybeCompleteJoin()
}

func (g *group) maybeCompleteJoin() {
	if g.state != statePreparing || g.initialDelay {
		return
	}
	for _, m := range g.members {
		if m.joinCh == nil {
			return
		}
	}
	g.completeJoin()
}

// completeJoin ends PreparingRebalance: members that did not rejoin are
// removed, the generation advances, a protocol is chosen and every waiting
// JoinGroup is answered (the leader with the members' metadata).
func (g *group) completeJoin() {
	g.stopTimer()
	g.initialDelay = false
	for _, m := range g.members {
		if m.joinCh == nil {
			delete(g.members, m.id)
			if m.instanceID != nil && g.static[*m.instanceID] == m.id {
				delete(g.static, *m.instanceID)
			}
			if m.expiry != nil {
				m.expiry.Stop()
			}
			g.answerWaiters(m, kerr.UnknownMemberID.Code)
		}
	}
	g.generation++
	g.c.s.cfg.Metrics.GroupRebalance(metrics.GroupClassic)
	g.takeover.held = 0
	if len(g.members) == 0 {
		// As Kafka, an Empty group keeps its protocol type ("consumer")
		// until a member of another type joins it.
		g.state, g.protocol, g.leader = stateEmpty, "", ""
		g.emptySince = time.Now()
		g.idleSince = g.emptySince
		g.recordMembers()
		return
	}
	g.takeover.active = false // its first generation formed
	g.recordMembers()         // without the members that did not rejoin, and the previous coordinator's
	g.protocol = g.selectProtocol()
	if _, ok := g.members[g.leader]; !ok {
		ids := make([]string, 0, len(g.members))
		for id := range g.members {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		g.leader = ids[0]
	}
	g.state = stateCompleting
	var all []kmsg.JoinGroupResponseMember
	for _, m := range g.sortedMembers() {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID, jm.InstanceID, jm.ProtocolMetadata = m.id, m.instanceID, m.metadata(g.protocol)
		all = append(all, jm)
	}
	for _, m := range g.members {
		resp := g.joinResponse(m)
		if m.id == g.leader {
			resp.Members = all
		}
		m.joinCh <- joinResult{resp: resp}
		m.joinCh = nil
		m.assignment = nil
		g.touch(m)
	}
	// The leader has a rebalance timeout to send its assignment.
	lt := g.members[g.leader].rebalance
	g.setTimer(lt, func() {
		if g.state == stateCompleting {
			g.c.s.log.Info("group leader sent no assignment in time; rebalancing", "group", g.name)
			g.rebalance()
		}
	})
}

func (g *group) joinResponse(m *member) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Generation = g.generation
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	resp.LeaderID, resp.MemberID = g.leader, m.id
	return resp
}

func (g *group) sortedMembers() []*member {
	out := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// selectProtocol picks, among the protocols every member supports, the one
// most members prefer (Kafka's vote), ties to the first candidate in the
// leader-or-first member's order.
func (g *group) selectProtocol() string {
	members := g.sortedMembers()
	var candidates []string
	for _, p := range members[0].protocols {
		if g.supportedByAll(p.Name) {
			candidates = append(candidates, p.Name)
		}
	}
	votes := map[string]int{}
	for _, m := range members {
		for _, p := range m.protocols {
			if contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func (g *group) supportedByAll(name string) bool {
	for _, m := range g.members {
		if m.metadata(name) == nil {
			return false
		}
	}
	return true
}

// accepts reports whether a joining member with these protocols fits the
// group: same protocol type and at least one protocol every member supports.
func (g *group) accepts(protocolType string, protocols []kmsg.JoinGroupRequestProtocol, except string) bool {
	if len(g.members) == 0 || (len(g.members) == 1 && g.members[except] != nil) {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		ok := true
		for id, m := range g.members {
			if id != except && m.metadata(p.Name) == nil {
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

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// metadata returns m's metadata for protocol name, nil if m lacks it.
func (m *member) metadata(name string) []byte {
	for _, p := range m.protocols {
		if p.Name == name {
			if p.Metadata == nil {
				return []byte{}
			}
			return p.Metadata
		}
	}
	return nil
}

func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Metadata, b[i].Metadata) {
			return false
		}
	}
	return true
}

// fenced checks a request's member and instance IDs against the group:
// UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID, or the member.
func (g *group) fenced(memberID string, instanceID *string) (*member, int16) {
	if instanceID != nil {
		if cur, ok := g.static[*instanceID]; ok && cur != memberID {
			return nil, kerr.FencedInstanceID.Code
		}
	}
	m := g.members[memberID]
	if m == nil {
		return nil, kerr.UnknownMemberID.Code
	}
	return m, 0
}
