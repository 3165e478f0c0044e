package agent_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// classicRaw is a classic-protocol member driven by raw requests.
type classicRaw struct {
	c     *cg848
	id    string
	gen   int32
	owned []int32
	// session and rebalance are the timeouts it joins with (ms; 0: 10 s).
	session, rebalance int32
	instance           *string
}

const migProto = "cooperative-sticky"

func (m *classicRaw) metadata(owned []int32) []byte {
	md := kmsg.NewConsumerMemberMetadata()
	md.Version = 1
	md.Topics = []string{"cg-t"}
	if owned != nil {
		o := kmsg.NewConsumerMemberMetadataOwnedPartition()
		o.Topic, o.Partitions = "cg-t", owned
		md.OwnedPartitions = append(md.OwnedPartitions, o)
	}
	return md.AppendTo(nil)
}

func (m *classicRaw) joinReq(owned []int32) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.MemberID, req.ProtocolType, req.InstanceID = m.c.group, m.id, "consumer", m.instance
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 10000
	if m.session > 0 {
		req.SessionTimeoutMillis = m.session
	}
	if m.rebalance > 0 {
		req.RebalanceTimeoutMillis = m.rebalance
	}
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = migProto, m.metadata(owned)
	req.Protocols = append(req.Protocols, p)
	return req
}

// join sends JoinGroup (again with the ID MEMBER_ID_REQUIRED gave).
func (m *classicRaw) join(owned []int32) *kmsg.JoinGroupResponse {
	m.c.t.Helper()
	r := m.c.send(m.joinReq(owned)).(*kmsg.JoinGroupResponse)
	if r.ErrorCode == kerr.MemberIDRequired.Code {
		m.id = r.MemberID
		r = m.c.send(m.joinReq(owned)).(*kmsg.JoinGroupResponse)
	}
	if r.ErrorCode == 0 {
		m.id, m.gen = r.MemberID, r.Generation
	}
	return r
}

func (m *classicRaw) sync(assign map[string][]int32) *kmsg.SyncGroupResponse {
	m.c.t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation = m.c.group, m.id, m.gen
	pt, p := "consumer", migProto
	req.ProtocolType, req.Protocol = &pt, &p
	for id, parts := range assign {
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		ma := kmsg.NewConsumerMemberAssignment()
		t := kmsg.NewConsumerMemberAssignmentTopic()
		t.Topic, t.Partitions = "cg-t", parts
		ma.Topics = append(ma.Topics, t)
		a.MemberID, a.MemberAssignment = id, ma.AppendTo(nil)
		req.GroupAssignment = append(req.GroupAssignment, a)
	}
	r := m.c.send(req).(*kmsg.SyncGroupResponse)
	if r.ErrorCode == 0 {
		ma := kmsg.NewConsumerMemberAssignment()
		if err := ma.ReadFrom(r.MemberAssignment); err != nil {
			m.c.t.Fatalf("member %s: assignment does not decode: %v", m.id, err)
		}
		m.owned = []int32{}
		for _, t := range ma.Topics {
			m.owned = append(m.owned, t.Partitions...)
		}
		slices.Sort(m.owned)
	}
	return r
}

func (m *classicRaw) heartbeat(gen int32) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = m.c.group, m.id, gen
	return m.c.send(req).(*kmsg.HeartbeatResponse).ErrorCode
}

func (m *classicRaw) commit(gen int32) int16 {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = m.c.group, m.id, gen
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = "cg-t"
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset = 0, 1
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	r := m.c.send(req).(*kmsg.OffsetCommitResponse)
	return r.Topics[0].Partitions[0].ErrorCode
}

// formClassic makes a Stable classic group of a and b, a owning 0 and 1,
// b 2 and 3.
func formClassic(t *testing.T, a, b *classicRaw) {
	t.Helper()
	for _, m := range []*classicRaw{a, b} {
		r := m.c.send(m.joinReq(nil)).(*kmsg.JoinGroupResponse)
		if r.ErrorCode != kerr.MemberIDRequired.Code {
			t.Fatalf("first join: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		m.id = r.MemberID
	}
	var wg sync.WaitGroup
	resps := make([]*kmsg.JoinGroupResponse, 2)
	for i, m := range []*classicRaw{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i] = m.c.send(m.joinReq(nil)).(*kmsg.JoinGroupResponse)
		}()
	}
	wg.Wait()
	for i, m := range []*classicRaw{a, b} {
		if resps[i].ErrorCode != 0 {
			t.Fatalf("join: %v", kerr.ErrorForCode(resps[i].ErrorCode))
		}
		m.gen = resps[i].Generation
	}
	leader, follower := a, b
	if resps[0].LeaderID != a.id {
		leader, follower = b, a
	}
	if r := leader.sync(map[string][]int32{a.id: {0, 1}, b.id: {2, 3}}); r.ErrorCode != 0 {
		t.Fatalf("leader sync: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := follower.sync(nil); r.ErrorCode != 0 {
		t.Fatalf("follower sync: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if !slices.Equal(a.owned, []int32{0, 1}) || !slices.Equal(b.owned, []int32{2, 3}) {
		t.Fatalf("classic assignment: a %v b %v", a.owned, b.owned)
	}
}

func (c *cg848) describe() kmsg.ConsumerGroupDescribeResponseGroup {
	c.t.Helper()
	d := kmsg.NewPtrConsumerGroupDescribeRequest()
	d.Groups = []string{c.group}
	return c.send(d).(*kmsg.ConsumerGroupDescribeResponse).Groups[0]
}

func (c *cg848) listedType() string {
	c.t.Helper()
	req := kmsg.NewPtrListGroupsRequest()
	for _, g := range c.send(req).(*kmsg.ListGroupsResponse).Groups {
		if g.Group == c.group {
			return g.GroupType
		}
	}
	return ""
}

// ownedOnce checks that each of the 4 partitions is owned (assignment) by
// at most one member in a ConsumerGroupDescribe, and returns how many are.
func ownedOnce(t *testing.T, d kmsg.ConsumerGroupDescribeResponseGroup) int {
	t.Helper()
	owner := map[int32]string{}
	for _, m := range d.Members {
		for _, tp := range m.Assignment.TopicPartitions {
			for _, p := range tp.Partitions {
				if o, ok := owner[p]; ok {
					t.Fatalf("partition %d owned by %s and %s", p, o, m.MemberID)
				}
				owner[p] = m.MemberID
			}
		}
	}
	return len(owner)
}

// TestConsumerGroupMigrationRaw proves the online upgrade and downgrade
// with raw requests: a Stable classic group of a cooperative member (a,
// rejoins reporting what it owns) and an eager one (b, rejoins owning
// nothing) is converted by a KIP-848 join (x); the classic members are
// served from the KIP-848 state (REBALANCE_IN_PROGRESS, rejoin answered at
// once with their epoch, revocation before reassignment, SyncGroup with
// their assignment, ILLEGAL_GENERATION for their commits and heartbeats
// with other generations, member type classic in ConsumerGroupDescribe);
// no partition has two owners at any step; bad input gets Kafka's codes;
// x leaving makes it a classic group again, which rebalances.
func TestConsumerGroupMigrationRaw(t *testing.T) {
	c := newCG848(t, "cg-mig")
	a, b := &classicRaw{c: c}, &classicRaw{c: c}
	formClassic(t, a, b)
	gen := a.gen

	x := c.hb("member-x", 0, nil, nil)
	if x.ErrorCode != 0 || x.MemberEpoch != gen+1 {
		t.Fatalf("KIP-848 join of the classic group: %v epoch %d (generation %d)", kerr.ErrorForCode(x.ErrorCode), x.MemberEpoch, gen)
	}
	if got := assigned(x); len(got) != 0 {
		t.Fatalf("x got %v while the classic members own everything", got)
	}
	d := c.describe()
	types := map[string]int8{}
	for _, m := range d.Members {
		types[m.MemberID] = m.MemberType
	}
	if d.ErrorCode != 0 || len(d.Members) != 3 || types[a.id] != 0 || types[b.id] != 0 || types["member-x"] != 1 {
		t.Fatalf("describe after the upgrade: %v members %d types %v", kerr.ErrorForCode(d.ErrorCode), len(d.Members), types)
	}
	if n := ownedOnce(t, d); n != 4 {
		t.Fatalf("after the upgrade %d partitions owned, want the classic members' 4", n)
	}
	if typ := c.listedType(); typ != "consumer" {
		t.Fatalf("listed as %q after the upgrade", typ)
	}

	// The classic members hear of the new epoch through their heartbeats.
	if code := a.heartbeat(gen); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("a's heartbeat: %v, want REBALANCE_IN_PROGRESS", kerr.ErrorForCode(code))
	}
	if code := a.heartbeat(gen + 7); code != kerr.IllegalGeneration.Code {
		t.Fatalf("a's heartbeat with another generation: %v", kerr.ErrorForCode(code))
	}
	if code := a.commit(gen); code != 0 {
		t.Fatalf("a's commit at its generation: %v", kerr.ErrorForCode(code))
	}
	if code := a.commit(gen + 7); code != kerr.IllegalGeneration.Code {
		t.Fatalf("a's commit with another generation: %v, want ILLEGAL_GENERATION", kerr.ErrorForCode(code))
	}

	// a (cooperative) rejoins owning 0 and 1: it keeps what its target
	// keeps, and must first give up the rest.
	r := a.join(a.owned)
	if r.ErrorCode != 0 || r.LeaderID != "" || len(r.Members) != 0 || r.Protocol == nil || *r.Protocol != migProto {
		t.Fatalf("a's rejoin: %v leader %q members %d", kerr.ErrorForCode(r.ErrorCode), r.LeaderID, len(r.Members))
	}
	if s := a.sync(nil); s.ErrorCode != 0 {
		t.Fatalf("a's sync: %v", kerr.ErrorForCode(s.ErrorCode))
	}
	t.Logf("a rejoined owning %v: generation %d (group generation was %d), told to own %v", []int32{0, 1}, a.gen, gen, a.owned)
	if ownedOnce(t, c.describe()); a.gen == gen {
		// Revoking: its next rejoin reports it gave them up.
		if code := a.heartbeat(a.gen); code != kerr.RebalanceInProgress.Code {
			t.Fatalf("a's heartbeat while revoking: %v", kerr.ErrorForCode(code))
		}
		if r = a.join(a.owned); r.ErrorCode != 0 || r.Generation != gen+1 {
			t.Fatalf("a's rejoin after revoking: %v generation %d", kerr.ErrorForCode(r.ErrorCode), r.Generation)
		}
		if s := a.sync(nil); s.ErrorCode != 0 {
			t.Fatalf("a's sync: %v", kerr.ErrorForCode(s.ErrorCode))
		}
	}
	ownedOnce(t, c.describe())
	// b (eager) rejoins owning nothing: reconciled at once.
	if r = b.join(nil); r.ErrorCode != 0 || r.Generation != gen+1 {
		t.Fatalf("b's rejoin: %v generation %d", kerr.ErrorForCode(r.ErrorCode), r.Generation)
	}
	if s := b.sync(nil); s.ErrorCode != 0 {
		t.Fatalf("b's sync: %v", kerr.ErrorForCode(s.ErrorCode))
	}
	ownedOnce(t, c.describe())
	x = c.hb("member-x", x.MemberEpoch, []int32{}, nil)
	if x.ErrorCode != 0 || len(assigned(x)) == 0 {
		t.Fatalf("x after the classic members reconciled: %v assigned %v", kerr.ErrorForCode(x.ErrorCode), assigned(x))
	}
	d = c.describe()
	t.Logf("reconciled at epoch %d: a owns %v, b owns %v, x owns %v", d.Epoch, a.owned, b.owned, assigned(x))
	if n := ownedOnce(t, d); n != 4 || d.State != "Stable" {
		t.Fatalf("after reconciling: %d partitions owned, state %s", n, d.State)
	}
	if code := a.heartbeat(a.gen); code != 0 {
		t.Fatalf("a's heartbeat when reconciled: %v", kerr.ErrorForCode(code))
	}
	if code := b.commit(b.gen); code != 0 {
		t.Fatalf("b's commit at its epoch: %v", kerr.ErrorForCode(code))
	}

	// Bad input.
	want := func(what string, got int16, w *kerr.Error) {
		t.Helper()
		if got != w.Code {
			t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), w)
		}
	}
	sreq := kmsg.NewPtrSyncGroupRequest()
	sreq.Group, sreq.MemberID, sreq.Generation = c.group, a.id, a.gen+3
	want("sync with another generation", c.send(sreq).(*kmsg.SyncGroupResponse).ErrorCode, kerr.IllegalGeneration)
	other := "range"
	sreq.Generation, sreq.Protocol = a.gen, &other
	want("sync with another protocol", c.send(sreq).(*kmsg.SyncGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol)
	sreq.MemberID, sreq.Protocol = "nobody", nil
	want("sync of an unknown member", c.send(sreq).(*kmsg.SyncGroupResponse).ErrorCode, kerr.UnknownMemberID)
	stranger := &classicRaw{c: c, id: "nobody"}
	want("heartbeat of an unknown member", stranger.heartbeat(a.gen), kerr.UnknownMemberID)
	jr := stranger.joinReq(nil)
	jr.ProtocolType = "connect"
	want("join with another protocol type", c.send(jr).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol)
	jr = stranger.joinReq(nil)
	jr.Protocols[0].Name = "range"
	want("join with no common protocol", c.send(jr).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol)
	jr = stranger.joinReq(nil)
	jr.Protocols[0].Metadata = []byte{0, 1, 0xff}
	want("join with undecodable metadata", c.send(jr).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol)
	want("KIP-848 heartbeat naming a classic member", c.hb(a.id, a.gen, nil, nil).ErrorCode, kerr.UnknownMemberID)
	lreq := kmsg.NewPtrLeaveGroupRequest()
	lreq.Group = c.group
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = "member-x" // a KIP-848 member cannot leave through LeaveGroup
	lreq.Members = append(lreq.Members, lm)
	want("LeaveGroup of a KIP-848 member", c.send(lreq).(*kmsg.LeaveGroupResponse).Members[0].ErrorCode, kerr.UnknownMemberID)

	// x leaves: only classic members remain, the group is classic again
	// and rebalances at the group epoch.
	epoch := d.Epoch
	if l := c.hb("member-x", -1, nil, nil); l.ErrorCode != 0 {
		t.Fatalf("x leaving: %v", kerr.ErrorForCode(l.ErrorCode))
	}
	if typ := c.listedType(); typ != "classic" {
		t.Fatalf("listed as %q after the downgrade", typ)
	}
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{c.group}
	g := c.send(dg).(*kmsg.DescribeGroupsResponse).Groups[0]
	if g.State != "PreparingRebalance" || g.ProtocolType != "consumer" || len(g.Members) != 2 {
		t.Fatalf("after the downgrade: state %s protocol type %q members %d", g.State, g.ProtocolType, len(g.Members))
	}
	if code := a.heartbeat(epoch); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("a's heartbeat after the downgrade: %v, want REBALANCE_IN_PROGRESS", kerr.ErrorForCode(code))
	}
	var wg sync.WaitGroup
	resps := make([]*kmsg.JoinGroupResponse, 2)
	for i, m := range []*classicRaw{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i] = m.c.send(m.joinReq(m.owned)).(*kmsg.JoinGroupResponse)
		}()
	}
	wg.Wait()
	leaders := 0
	for i, m := range []*classicRaw{a, b} {
		if resps[i].ErrorCode != 0 || resps[i].Generation != epoch+1 {
			t.Fatalf("classic rejoin after the downgrade: %v generation %d, want %d", kerr.ErrorForCode(resps[i].ErrorCode), resps[i].Generation, epoch+1)
		}
		m.gen = resps[i].Generation
		if resps[i].LeaderID == m.id {
			leaders++
			if len(resps[i].Members) != 2 {
				t.Fatalf("leader got %d members", len(resps[i].Members))
			}
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders", leaders)
	}
	want("ConsumerGroupDescribe of the classic group", c.describe().ErrorCode, kerr.GroupIDNotFound)
}

// TestConsumerGroupMigrationPolicy proves the policies: with disabled or
// downgrade a KIP-848 join of a classic group with members is refused as
// before (GROUP_ID_NOT_FOUND) and the classic group goes on; with upgrade
// the group converts, and stays a consumer group when its KIP-848 member
// leaves (no downgrade), its classic members still served.
func TestConsumerGroupMigrationPolicy(t *testing.T) {
	for _, policy := range []agent.MigrationPolicy{agent.MigrationDisabled, agent.MigrationDowngrade, agent.MigrationUpgrade} {
		t.Run(string(policy), func(t *testing.T) {
			cl := agenttest.Start(t, agenttest.Options{Agents: 1, Agent: func(_ int, cfg *agent.Config) {
				cfg.ConsumerMigrationPolicy = policy
			}})
			ctx := testCtx(t, 60*time.Second)
			tps, err := cl.Admin(t).CreateTopic(ctx, 4, 1, nil, "cg-t")
			if err != nil || tps.Err != nil {
				t.Fatal(err, tps.Err)
			}
			c := &cg848{t: t, ctx: ctx, br: cl.Client(t).SeedBrokers()[0], group: "cg-mig-policy", topic: tps.ID}
			a, b := &classicRaw{c: c}, &classicRaw{c: c}
			formClassic(t, a, b)
			x := c.hb("member-x", 0, nil, nil)
			if policy != agent.MigrationUpgrade {
				if x.ErrorCode != kerr.GroupIDNotFound.Code {
					t.Fatalf("KIP-848 join: %v, want GROUP_ID_NOT_FOUND", kerr.ErrorForCode(x.ErrorCode))
				}
				if code := a.heartbeat(a.gen); code != 0 {
					t.Fatalf("classic heartbeat after the refusal: %v", kerr.ErrorForCode(code))
				}
				if typ := c.listedType(); typ != "classic" {
					t.Fatalf("listed as %q", typ)
				}
				return
			}
			if x.ErrorCode != 0 {
				t.Fatalf("KIP-848 join: %v", kerr.ErrorForCode(x.ErrorCode))
			}
			if l := c.hb("member-x", -1, nil, nil); l.ErrorCode != 0 {
				t.Fatalf("x leaving: %v", kerr.ErrorForCode(l.ErrorCode))
			}
			if typ := c.listedType(); typ != "consumer" {
				t.Fatalf("listed as %q after the KIP-848 member left, want consumer (no downgrade)", typ)
			}
			if code := a.heartbeat(a.gen); code != kerr.RebalanceInProgress.Code {
				t.Fatalf("classic heartbeat: %v, want REBALANCE_IN_PROGRESS", kerr.ErrorForCode(code))
			}
			if r := a.join(a.owned); r.ErrorCode != 0 {
				t.Fatalf("classic rejoin of the consumer group: %v", kerr.ErrorForCode(r.ErrorCode))
			}
		})
	}
}

// TestParseMigrationPolicy proves the policy values are read as Kafka
// reads group.consumer.migration.policy (case-insensitive) and another
// value is refused with Kafka's message.
func TestParseMigrationPolicy(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    agent.MigrationPolicy
		wantErr bool
	}{
		{"bidirectional", agent.MigrationBidirectional, false},
		{"UPGRADE", agent.MigrationUpgrade, false},
		{"Downgrade", agent.MigrationDowngrade, false},
		{"disabled", agent.MigrationDisabled, false},
		{"", "", true},
		{"both", "", true},
	} {
		got, err := agent.ParseMigrationPolicy(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseMigrationPolicy(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "String must be one of (case insensitive): DISABLED, DOWNGRADE, UPGRADE, BIDIRECTIONAL") {
			t.Errorf("ParseMigrationPolicy(%q): message %q is not Kafka's", tc.in, err)
		}
	}
}

// memberGone waits until a member is no longer in the consumer group and
// returns how long that took from since.
func (c *cg848) memberGone(id string, since time.Time, within time.Duration) time.Duration {
	c.t.Helper()
	for time.Since(since) < within {
		found := false
		for _, m := range c.describe().Members {
			found = found || m.MemberID == id
		}
		if !found {
			return time.Since(since)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("member %s still in the group %v after %v", id, time.Since(since), within)
	return 0
}

// TestConsumerGroupMigrationTimeouts proves the timeouts of classic
// members of a converted group: one that sends no SyncGroup after its
// JoinGroup is removed after its rebalance timeout; one told
// REBALANCE_IN_PROGRESS that keeps heartbeating without rejoining too;
// one that stops heartbeating after its own session timeout (6 s, not the
// group's KIP-848 session of 45 s).
func TestConsumerGroupMigrationTimeouts(t *testing.T) {
	c := newCG848(t, "cg-mig-timeouts")
	a, b := &classicRaw{c: c}, &classicRaw{c: c}
	formClassic(t, a, b)
	x := c.hb("member-x", 0, nil, nil)
	if x.ErrorCode != 0 {
		t.Fatalf("upgrade: %v", kerr.ErrorForCode(x.ErrorCode))
	}
	b.rebalance = 1000
	if r := b.join(nil); r.ErrorCode != 0 {
		t.Fatalf("b's rejoin: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if s := b.sync(nil); s.ErrorCode != 0 {
		t.Fatalf("b's sync: %v", kerr.ErrorForCode(s.ErrorCode))
	}

	// A new classic member that never sends its SyncGroup.
	n := &classicRaw{c: c, rebalance: 1000}
	if r := n.join(nil); r.ErrorCode != 0 {
		t.Fatalf("new member's join: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	joined := time.Now()
	took := c.memberGone(n.id, joined, 5*time.Second)
	t.Logf("no SyncGroup: removed %.2f s after its JoinGroup (rebalance timeout 1 s)", took.Seconds())
	if took < 900*time.Millisecond {
		t.Fatalf("removed after %v, before its rebalance timeout", took)
	}

	// b is told to rejoin and keeps heartbeating without doing so.
	if code := b.heartbeat(b.gen); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("b's heartbeat after the epoch moved: %v", kerr.ErrorForCode(code))
	}
	told := time.Now()
	for time.Since(told) < 5*time.Second {
		code := b.heartbeat(b.gen)
		if code == kerr.UnknownMemberID.Code {
			break
		}
		if code != kerr.RebalanceInProgress.Code {
			t.Fatalf("b's heartbeat while it should rejoin: %v", kerr.ErrorForCode(code))
		}
		time.Sleep(100 * time.Millisecond)
	}
	took = time.Since(told)
	t.Logf("no rejoin: removed %.2f s after REBALANCE_IN_PROGRESS (rebalance timeout 1 s)", took.Seconds())
	if took < 900*time.Millisecond || took >= 5*time.Second {
		t.Fatalf("b removed after %v", took)
	}

	// a rejoins with a 6 s session, then goes silent.
	a.session = 6000
	if r := a.join(a.owned); r.ErrorCode != 0 {
		t.Fatalf("a's rejoin: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if s := a.sync(nil); s.ErrorCode != 0 {
		t.Fatalf("a's sync: %v", kerr.ErrorForCode(s.ErrorCode))
	}
	silent := time.Now()
	took = c.memberGone(a.id, silent, 15*time.Second)
	t.Logf("silent: removed %.2f s after its last request (session 6 s)", took.Seconds())
	if took < 5900*time.Millisecond {
		t.Fatalf("a removed after %v, before its session timeout", took)
	}
}

// TestConsumerGroupMigrationStaticDowngrade proves Kafka's downgrade by
// static member replacement: when the only KIP-848 member is a static one
// away (epoch -2) and a classic member joins with its instance ID, the
// group becomes classic (the join answered with the group's generation),
// rebalances, and every member, the new one included, forms the next
// generation through classic joins.
func TestConsumerGroupMigrationStaticDowngrade(t *testing.T) {
	c := newCG848(t, "cg-mig-static")
	a, b := &classicRaw{c: c}, &classicRaw{c: c}
	formClassic(t, a, b)
	inst := "inst-x"
	static := func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.InstanceID = &inst }
	x := c.hb("member-x", 0, nil, static)
	if x.ErrorCode != 0 {
		t.Fatalf("static KIP-848 join: %v", kerr.ErrorForCode(x.ErrorCode))
	}
	if l := c.hb("member-x", -2, nil, static); l.ErrorCode != 0 || l.MemberEpoch != -2 {
		t.Fatalf("static leave: %v epoch %d", kerr.ErrorForCode(l.ErrorCode), l.MemberEpoch)
	}
	if typ := c.listedType(); typ != "consumer" {
		t.Fatalf("listed as %q with the static member away", typ)
	}
	epoch := c.describe().Epoch
	s := &classicRaw{c: c, instance: &inst}
	r := s.join(nil)
	if r.ErrorCode != 0 || r.Generation != epoch {
		t.Fatalf("classic join with the instance: %v generation %d, want %d", kerr.ErrorForCode(r.ErrorCode), r.Generation, epoch)
	}
	if typ := c.listedType(); typ != "classic" {
		t.Fatalf("listed as %q after the replacement, want classic", typ)
	}
	if sr := s.sync(nil); sr.ErrorCode != kerr.RebalanceInProgress.Code {
		t.Fatalf("sync after the downgrade: %v, want REBALANCE_IN_PROGRESS", kerr.ErrorForCode(sr.ErrorCode))
	}
	var wg sync.WaitGroup
	ms := []*classicRaw{a, b, s}
	resps := make([]*kmsg.JoinGroupResponse, len(ms))
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i] = m.c.send(m.joinReq(m.owned)).(*kmsg.JoinGroupResponse)
		}()
	}
	wg.Wait()
	leaders := 0
	for i, m := range ms {
		if resps[i].ErrorCode != 0 || resps[i].Generation != epoch+1 {
			t.Fatalf("rejoin: %v generation %d, want %d", kerr.ErrorForCode(resps[i].ErrorCode), resps[i].Generation, epoch+1)
		}
		if resps[i].LeaderID == m.id {
			leaders++
			if len(resps[i].Members) != 3 {
				t.Fatalf("leader got %d members, want 3", len(resps[i].Members))
			}
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders", leaders)
	}
}

// TestConsumerGroupMigrationFailover proves a converted group keeps its
// failover grace for classic members: its coordinator stops while a
// KIP-848 member (x) and classic members (a, b) own the partitions; a new
// classic member joining the next coordinator is served as a classic
// member of the (empty) consumer group — no leader, nothing assigned —
// instead of forming a classic group whose leader would hand it every
// partition; once x, a and b have heard of the failover (their heartbeats
// answered UNKNOWN_MEMBER_ID) it is told to rejoin and gets all 4.
func TestConsumerGroupMigrationFailover(t *testing.T) {
	a, b, x, next := convertedGroupFailover(t, "cg-mig-failover")
	ctx := next.ctx
	n := &classicRaw{c: next}
	var r *kmsg.JoinGroupResponse
	for { // until the stopped agent's claim is gone
		if r = n.join(nil); r.ErrorCode != kerr.NotCoordinator.Code || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.ErrorCode != 0 || r.LeaderID != "" {
		t.Fatalf("classic join after the failover: %v leader %q, want a classic member of the consumer group", kerr.ErrorForCode(r.ErrorCode), r.LeaderID)
	}
	if s := n.sync(nil); s.ErrorCode != 0 || len(n.owned) != 0 {
		t.Fatalf("sync while the old members may own the partitions: %v owned %v, want nothing", kerr.ErrorForCode(s.ErrorCode), n.owned)
	}
	// The old members hear of the failover.
	if h := next.hb("member-x", x.MemberEpoch, []int32{}, nil); h.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("x's heartbeat to the new coordinator: %v", kerr.ErrorForCode(h.ErrorCode))
	}
	for _, m := range []*classicRaw{a, b} {
		m.c = next
		if code := m.heartbeat(m.gen); code != kerr.UnknownMemberID.Code {
			t.Fatalf("classic heartbeat to the new coordinator: %v", kerr.ErrorForCode(code))
		}
	}
	if code := n.heartbeat(n.gen); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("n's heartbeat once the old members were told: %v, want REBALANCE_IN_PROGRESS", kerr.ErrorForCode(code))
	}
	if r = n.join(n.owned); r.ErrorCode != 0 {
		t.Fatalf("n's rejoin: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if s := n.sync(nil); s.ErrorCode != 0 || len(n.owned) != 4 {
		t.Fatalf("n's sync: %v owned %v, want all 4", kerr.ErrorForCode(s.ErrorCode), n.owned)
	}
}

// convertedGroupFailover starts two agents and a 4-partition topic, forms
// a classic group of two raw members (a, b) on the group's coordinator,
// converts it with a KIP-848 member (member-x; x is its join's answer),
// and stops that coordinator; next is a client of the other agent.
func convertedGroupFailover(t *testing.T, group string) (a, b *classicRaw, x *kmsg.ConsumerGroupHeartbeatResponse, next *cg848) {
	t.Helper()
	cl := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, 60*time.Second)
	tps, err := cl.Admin(t).CreateTopic(ctx, 4, 1, nil, "cg-t")
	if err != nil || tps.Err != nil {
		t.Fatal(err, tps.Err)
	}
	at := func(i int) *cg848 {
		k, err := kgo.NewClient(kgo.SeedBrokers(cl.Agents[i].Addr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(k.Close)
		return &cg848{t: t, ctx: ctx, br: k.SeedBrokers()[0], group: group, topic: tps.ID}
	}
	coord := 0
	c := at(0)
	probe := kmsg.NewPtrHeartbeatRequest()
	probe.Group, probe.MemberID = c.group, "probe"
	if c.send(probe).(*kmsg.HeartbeatResponse).ErrorCode == kerr.NotCoordinator.Code {
		coord, c = 1, at(1)
	}
	a, b = &classicRaw{c: c}, &classicRaw{c: c}
	formClassic(t, a, b)
	x = c.hb("member-x", 0, nil, nil)
	if x.ErrorCode != 0 {
		t.Fatalf("upgrade: %v", kerr.ErrorForCode(x.ErrorCode))
	}
	if err := cl.Agents[coord].Stop(); err != nil {
		t.Fatal(err)
	}
	return a, b, x, at(1 - coord)
}
