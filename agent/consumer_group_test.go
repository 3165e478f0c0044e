package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/metastore"
)

// cg848 sends KIP-848 requests of one test straight to an agent.
type cg848 struct {
	t     *testing.T
	ctx   context.Context
	br    *kgo.Broker
	group string
	topic [16]byte
}

func (c *cg848) send(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	resp, err := c.br.Request(c.ctx, req)
	if err != nil {
		c.t.Fatalf("%T: %v", req, err)
	}
	return resp
}

// hb sends a heartbeat; owned nil is a keep-alive (no owned partitions).
func (c *cg848) hb(member string, epoch int32, owned []int32, mod func(*kmsg.ConsumerGroupHeartbeatRequest)) *kmsg.ConsumerGroupHeartbeatResponse {
	c.t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.MemberID, req.MemberEpoch, req.RebalanceTimeoutMillis = c.group, member, epoch, -1
	if epoch == 0 {
		req.RebalanceTimeoutMillis = 30000
		req.SubscribedTopicNames = []string{"cg-t"}
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	}
	if owned != nil {
		t := kmsg.NewConsumerGroupHeartbeatRequestTopic()
		t.TopicID, t.Partitions = c.topic, owned
		req.Topics = append(req.Topics, t)
	}
	if mod != nil {
		mod(req)
	}
	return c.send(req).(*kmsg.ConsumerGroupHeartbeatResponse)
}

func assigned(r *kmsg.ConsumerGroupHeartbeatResponse) []int32 {
	if r.Assignment == nil {
		return nil
	}
	var out []int32
	for _, t := range r.Assignment.Topics {
		out = append(out, t.Partitions...)
	}
	return out
}

func newCG848(t *testing.T, group string) *cg848 {
	c := agenttest.Start(t, agenttest.Options{Agents: 1})
	ctx := testCtx(t, 60*time.Second)
	tps, err := c.Admin(t).CreateTopic(ctx, 4, 1, nil, "cg-t")
	if err != nil || tps.Err != nil {
		t.Fatal(err, tps.Err)
	}
	return &cg848{t: t, ctx: ctx, br: c.Client(t).SeedBrokers()[0], group: group, topic: tps.ID}
}

// TestConsumerGroupRevokeBeforeAssign proves a partition moves to a new
// member only after its previous owner acknowledged its revocation: the
// joining member's epoch advances with the partitions withheld, and gets
// them on the heartbeat after the owner's acknowledgement.
func TestConsumerGroupRevokeBeforeAssign(t *testing.T) {
	c := newCG848(t, "cg-revoke")
	a := c.hb("member-a", 0, nil, nil)
	if a.ErrorCode != 0 || len(assigned(a)) != 4 || a.MemberEpoch != 1 {
		t.Fatalf("first member: %v epoch %d assigned %v", kerr.ErrorForCode(a.ErrorCode), a.MemberEpoch, assigned(a))
	}
	b := c.hb("member-b", 0, nil, nil)
	if b.ErrorCode != 0 || len(assigned(b)) != 0 || b.MemberEpoch != 2 {
		t.Fatalf("second member before the revocation: %v epoch %d assigned %v", kerr.ErrorForCode(b.ErrorCode), b.MemberEpoch, assigned(b))
	}
	a = c.hb("member-a", 1, []int32{0, 1, 2, 3}, nil)
	keep := assigned(a)
	if a.ErrorCode != 0 || len(keep) != 2 || a.MemberEpoch != 1 {
		t.Fatalf("owner told to revoke: %v epoch %d assigned %v", kerr.ErrorForCode(a.ErrorCode), a.MemberEpoch, keep)
	}
	// The owner has not acknowledged yet: still nothing for b.
	if b = c.hb("member-b", 2, []int32{}, nil); len(assigned(b)) != 0 {
		t.Fatalf("second member got %v before the owner acknowledged", assigned(b))
	}
	if a = c.hb("member-a", 1, keep, nil); a.ErrorCode != 0 || a.MemberEpoch != 2 {
		t.Fatalf("owner acknowledging: %v epoch %d", kerr.ErrorForCode(a.ErrorCode), a.MemberEpoch)
	}
	b = c.hb("member-b", 2, []int32{}, nil)
	if got := assigned(b); len(got) != 2 || got[0] == keep[0] || got[1] == keep[1] {
		t.Fatalf("second member after the acknowledgement got %v (first keeps %v)", got, keep)
	}
	d := kmsg.NewPtrConsumerGroupDescribeRequest()
	d.Groups = []string{c.group}
	dg := c.send(d).(*kmsg.ConsumerGroupDescribeResponse).Groups[0]
	if dg.ErrorCode != 0 || dg.Epoch != 2 || dg.AssignmentEpoch != 2 || len(dg.Members) != 2 || dg.State != "Stable" {
		t.Fatalf("describe: %v epoch %d target %d members %d state %s", kerr.ErrorForCode(dg.ErrorCode), dg.Epoch, dg.AssignmentEpoch, len(dg.Members), dg.State)
	}
}

// TestConsumerGroupBadInput proves wrong KIP-848 requests get Kafka's
// codes, never a crash: invalid requests, assignors, regexes, unknown
// members, fenced epochs, unreleased static instances, group type mixing
// both ways, and commits and offset fetches with stale epochs.
func TestConsumerGroupBadInput(t *testing.T) {
	c := newCG848(t, "cg-bad")
	want := func(what string, got int16, w *kerr.Error) {
		t.Helper()
		if (w == nil && got != 0) || (w != nil && got != w.Code) {
			t.Errorf("%s: %v, want %v", what, kerr.ErrorForCode(got), w)
		}
	}
	inst := "inst-1"
	want("no member ID (v1)", c.hb("", 0, nil, nil).ErrorCode, kerr.InvalidRequest)
	want("join owning partitions", c.hb("m1", 0, []int32{0}, nil).ErrorCode, kerr.InvalidRequest)
	want("join without subscription", c.hb("m1", 0, nil, func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicNames = nil }).ErrorCode, kerr.InvalidRequest)
	want("epoch -3", c.hb("m1", -3, nil, nil).ErrorCode, kerr.InvalidRequest)
	want("unknown assignor", c.hb("m1", 0, nil, func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.ServerAssignor = kmsg.StringPtr("sticky") }).ErrorCode, kerr.UnsupportedAssignor)
	want("bad regex", c.hb("m1", 0, nil, func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicRegex = kmsg.StringPtr("cg-(") }).ErrorCode, kerr.InvalidRegularExpression)
	want("unknown member", c.hb("nobody", 3, []int32{}, nil).ErrorCode, kerr.UnknownMemberID)
	want("unknown member leaving", c.hb("nobody", -1, nil, nil).ErrorCode, kerr.UnknownMemberID)

	j := c.hb("m1", 0, nil, func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.InstanceID = &inst })
	want("static join", j.ErrorCode, nil)
	want("epoch ahead", c.hb("m1", j.MemberEpoch+5, []int32{}, nil).ErrorCode, kerr.FencedMemberEpoch)
	want("same instance, other member", c.hb("m2", 0, nil, func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.InstanceID = &inst }).ErrorCode, kerr.UnreleasedInstanceID)

	// Classic requests on the consumer group, and the other way round.
	jg := kmsg.NewPtrJoinGroupRequest()
	jg.Group, jg.ProtocolType, jg.SessionTimeoutMillis, jg.RebalanceTimeoutMillis = c.group, "consumer", 10000, 10000
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	jg.Protocols = append(jg.Protocols, p)
	// A classic member of a consumer group (consumer_group_migration.go):
	// MEMBER_ID_REQUIRED first, as in Kafka; metadata that does not decode
	// as a subscription then INCONSISTENT_GROUP_PROTOCOL.
	first := c.send(jg).(*kmsg.JoinGroupResponse)
	want("classic join of a consumer group", first.ErrorCode, kerr.MemberIDRequired)
	jg.MemberID = first.MemberID
	want("classic join of a consumer group with empty metadata", c.send(jg).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol)
	jg.MemberID = ""
	classic := *jg
	classic.Group, classic.MemberID = "cg-classic", "" // v9: MEMBER_ID_REQUIRED, then join
	r := c.send(&classic).(*kmsg.JoinGroupResponse)
	classic.MemberID = r.MemberID
	go func() { c.br.Request(c.ctx, &classic) }() // waits for the rebalance; the member exists now
	time.Sleep(200 * time.Millisecond)
	other := *c
	other.group = "cg-classic"
	want("consumer heartbeat of a classic group", other.hb("m9", 0, nil, nil).ErrorCode, kerr.GroupIDNotFound)

	commit := func(member string, epoch int32) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = c.group, member, epoch
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "cg-t"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, 1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return c.send(req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	want("commit by unknown member", commit("nobody", 1), kerr.UnknownMemberID)
	want("commit with epoch ahead", commit("m1", j.MemberEpoch+1), kerr.StaleMemberEpoch)
	want("commit by the owner", commit("m1", j.MemberEpoch), nil)
	want("simple commit while members are active", commit("", -1), kerr.UnknownMemberID)
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fg := kmsg.NewOffsetFetchRequestGroup()
	fg.Group, fg.MemberID, fg.MemberEpoch = c.group, kmsg.StringPtr("m1"), j.MemberEpoch+1
	fetch.Groups = append(fetch.Groups, fg)
	want("offset fetch with another epoch", c.send(fetch).(*kmsg.OffsetFetchResponse).Groups[0].ErrorCode, kerr.StaleMemberEpoch)

	// The group still works: the member leaves, and the empty group
	// takes a classic member again.
	want("leave", c.hb("m1", -1, nil, nil).ErrorCode, nil)
	jg.MemberID = ""
	want("classic join of the emptied group", c.send(jg).(*kmsg.JoinGroupResponse).ErrorCode, kerr.MemberIDRequired)
}

// TestConsumerGroupConfigs proves the group config
// consumer.heartbeat.interval.ms reaches the members (the heartbeat
// answer's interval), and that without it they get the agent's default.
func TestConsumerGroupConfigs(t *testing.T) {
	c := newCG848(t, "cg-configs")
	if r := c.hb("m1", 0, nil, nil); r.ErrorCode != 0 || r.HeartbeatIntervalMillis != 5000 {
		t.Fatalf("default: %v interval %d, want 5000", kerr.ErrorForCode(r.ErrorCode), r.HeartbeatIntervalMillis)
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, c.group
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name, cfg.Op, cfg.Value = "consumer.heartbeat.interval.ms", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("1500")
	res.Configs = append(res.Configs, cfg)
	req.Resources = append(req.Resources, res)
	if r := c.send(req).(*kmsg.IncrementalAlterConfigsResponse); r.Resources[0].ErrorCode != 0 {
		t.Fatalf("alter: %v", kerr.ErrorForCode(r.Resources[0].ErrorCode))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := c.hb("m1", 1, []int32{0, 1, 2, 3}, nil)
		if r.ErrorCode == 0 && r.HeartbeatIntervalMillis == 1500 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the alter: %v interval %d, want 1500", kerr.ErrorForCode(r.ErrorCode), r.HeartbeatIntervalMillis)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestConsumerGroupFailoverGrace proves a coordinator taking over a
// KIP-848 group whose coordinator stopped with members (recorded active,
// listing member a) hands out no free partition until a has heard of the
// failover, at most one session timeout: member b joining the new
// coordinator at once gets its epoch with nothing assigned; with a silent,
// b gets all 4 partitions once the session timeout (2 s) passed; with a
// heartbeating to the new coordinator (answered UNKNOWN_MEMBER_ID, on
// which a client gives up its partitions), b gets them at its next
// heartbeat, well before the session timeout (30 s).
func TestConsumerGroupFailoverGrace(t *testing.T) {
	for _, c := range []struct {
		name, session string
		aComes        bool
	}{{"silent", "2000", false}, {"told", "30000", true}} {
		t.Run(c.name, func(t *testing.T) { failoverGrace(t, c.session, c.aComes) })
	}
}

func failoverGrace(t *testing.T, session string, aComes bool) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, 60*time.Second)
	tps, err := c.Admin(t).CreateTopic(ctx, 4, 1, nil, "cg-t")
	if err != nil || tps.Err != nil {
		t.Fatal(err, tps.Err)
	}
	const group = "grace-g"
	cfg := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	rc.Name, rc.Value = "consumer.session.timeout.ms", kmsg.StringPtr(session)
	res.Configs = append(res.Configs, rc)
	cfg.Resources = append(cfg.Resources, res)
	if r, err := cfg.RequestWith(ctx, c.Client(t)); err != nil || r.Resources[0].ErrorCode != 0 {
		t.Fatalf("set session timeout: %v %v", err, r)
	}
	at := func(i int) *cg848 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Agents[i].Addr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return &cg848{t: t, ctx: ctx, br: cl.SeedBrokers()[0], group: group, topic: tps.ID}
	}
	coord := 0
	a := at(0).hb("a", 0, nil, nil)
	if a.ErrorCode == kerr.NotCoordinator.Code {
		coord = 1
		a = at(1).hb("a", 0, nil, nil)
	}
	if a.ErrorCode != 0 || len(assigned(a)) != 4 {
		t.Fatalf("a joins: %v, assigned %v", kerr.ErrorForCode(a.ErrorCode), assigned(a))
	}
	if typ, err := c.Meta.GroupType(ctx, group); err != nil || typ != metastore.ActiveRecord([]string{"a"}) {
		t.Fatalf("recorded type %q (%v), want active with member a", typ, err)
	}
	if err := c.Agents[coord].Stop(); err != nil { // a's partitions stay a's as far as a knows
		t.Fatal(err)
	}
	next := at(1 - coord)
	var b *kmsg.ConsumerGroupHeartbeatResponse
	for { // until the stopped agent's claim is gone
		if b = next.hb("b", 0, nil, nil); b.ErrorCode != kerr.NotCoordinator.Code || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	joined := time.Now()
	if b.ErrorCode != 0 || b.MemberEpoch <= 0 || len(assigned(b)) != 0 {
		t.Fatalf("b joins the new coordinator: %v epoch %d assigned %v, want an epoch and nothing yet", kerr.ErrorForCode(b.ErrorCode), b.MemberEpoch, assigned(b))
	}
	if h := next.hb("b", b.MemberEpoch, []int32{}, nil); h.ErrorCode != 0 || len(assigned(h)) != 0 {
		t.Fatalf("b's heartbeat while a may own the partitions: %v assigned %v, want nothing", kerr.ErrorForCode(h.ErrorCode), assigned(h))
	}
	if aComes {
		if h := next.hb("a", a.MemberEpoch, assigned(a), nil); h.ErrorCode != kerr.UnknownMemberID.Code {
			t.Fatalf("a's heartbeat to the new coordinator: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(h.ErrorCode))
		}
	}
	var got []int32
	for len(got) == 0 {
		time.Sleep(200 * time.Millisecond)
		h := next.hb("b", b.MemberEpoch, []int32{}, nil)
		if h.ErrorCode != 0 {
			t.Fatalf("b heartbeat: %v", kerr.ErrorForCode(h.ErrorCode))
		}
		b.MemberEpoch, got = h.MemberEpoch, assigned(h)
		if len(got) == 0 && time.Since(joined) > 10*time.Second {
			t.Fatal("b never got a partition")
		}
	}
	waited := time.Since(joined)
	switch {
	case len(got) != 4:
		t.Fatalf("b got %v, want all 4", got)
	case aComes && waited > 5*time.Second:
		t.Fatalf("b got the partitions %v after a heard of the failover, want at its next heartbeat", waited)
	case !aComes && waited < 1500*time.Millisecond:
		t.Fatalf("b got the partitions after %v with a silent, want after the 2 s session timeout", waited)
	}
	t.Logf("b got all 4 partitions %v after joining", waited.Round(time.Millisecond))
}
