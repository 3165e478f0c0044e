package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// TestGroupProtocolTypeSurvivesRelease proves a group's protocol type
// outlives its coordinator's release, as Kafka keeps it in its log: a
// simple group (offsets committed by kadm, no member ever) and a consumer
// group whose members left are both released; DescribeGroups sent to each
// agent (neither holds them, so nothing claims them) and ListGroups answer
// Empty with "" and "consumer"; a claim (kadm's FindCoordinator) takes the
// type back and the next release records it again.
func TestGroupProtocolTypeSurvivesRelease(t *testing.T) {
	const idle = time.Second // long enough for the checks between a claim and its release
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	for _, a := range c.Agents {
		agent.SetGroupIdleRelease(a.Server, idle)
	}
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	const topic = "released-types"
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 0})
	if r, err := adm.CommitOffsets(ctx, "simple-g", offs); err != nil || r.Error() != nil {
		t.Fatal(err, r.Error())
	}
	cons := c.Client(t, kgo.ConsumerGroup("consumer-g"), kgo.ConsumeTopics(topic))
	for {
		cons.PollFetches(testCtx(t, 200*time.Millisecond))
		if dg, _ := adm.DescribeGroups(ctx, "consumer-g"); dg["consumer-g"].State == "Stable" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("group never became Stable")
		}
	}
	cons.Close()
	// The group is Empty: an admin commit (generation -1) is accepted.
	if r, err := adm.CommitOffsets(ctx, "consumer-g", offs); err != nil || r.Error() != nil {
		t.Fatal(err, r.Error())
	}
	want := map[string]string{"simple-g": "", "consumer-g": "consumer"}

	released := func() {
		t.Helper()
		for g, pt := range want {
			waitReleased(t, ctx, c.Meta, g)
			got, ok, err := c.Meta.GroupProtocolType(ctx, g)
			if err != nil || !ok || got != pt {
				t.Fatalf("released %s: recorded protocol type %q %v (%v), want %q", g, got, ok, err, pt)
			}
		}
	}
	released()

	// Described by each agent directly: nobody holds the groups.
	cl := c.Client(t)
	for _, a := range c.Agents {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{"simple-g", "consumer-g"}
		resp, err := req.RequestWith(ctx, cl.Broker(int(a.Server.NodeID())))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range resp.Groups {
			if d.ErrorCode != 0 || d.State != "Empty" || d.ProtocolType != want[d.Group] {
				t.Errorf("agent %d describes released %s: code %d state %q protocol type %q, want Empty %q",
					a.Server.NodeID(), d.Group, d.ErrorCode, d.State, d.ProtocolType, want[d.Group])
			}
		}
	}
	for g := range want {
		if h, err := c.Meta.GroupCoordinator(ctx, g); err != nil || h >= 0 {
			t.Fatalf("describing %s claimed it (holder %d, %v)", g, h, err)
		}
	}
	l, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for g, pt := range want {
		if lg, ok := l[g]; !ok || lg.State != "Empty" || lg.ProtocolType != pt {
			t.Errorf("list: released %s listed %v as %+v, want Empty %q", g, ok, lg, pt)
		}
	}

	// FindCoordinator (sent to every agent: kgo answers it from its cache)
	// claims the groups: the claim takes the type back.
	for g := range want {
		claimByFindCoordinator(t, ctx, c, cl, g)
	}
	dg, err := adm.DescribeGroups(ctx, "simple-g", "consumer-g")
	if err != nil {
		t.Fatal(err)
	}
	for g, pt := range want {
		if d := dg[g]; d.Err != nil || d.State != "Empty" || d.ProtocolType != pt {
			t.Errorf("describe claimed %s: %v state %q protocol type %q, want Empty %q", g, d.Err, d.State, d.ProtocolType, pt)
		}
	}
	released()
}

// TestConsumerGroupTypeSurvivesRelease proves a KIP-848 consumer group
// stays one once its members left, as Kafka keeps it until it is deleted
// or converted: a franz-go KIP-848 consumer commits and leaves, the group
// is released (nobody coordinates it), and ListGroups and
// ConsumerGroupDescribe from each agent answer it as an Empty "consumer"
// group (before the type was recorded: "classic", GROUP_ID_NOT_FOUND); a
// claim keeps it "consumer"; a classic member joining converts it, and
// after that member leaves and the group is released it is "classic".
func TestConsumerGroupTypeSurvivesRelease(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	for _, a := range c.Agents {
		agent.SetGroupIdleRelease(a.Server, time.Second)
	}
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	const topic, g = "kip848-type", "kip848-g"
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	listed := func() kadm.ListedGroup {
		t.Helper()
		l, err := adm.ListGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return l[g]
	}
	produce := func(vs ...string) {
		t.Helper()
		for _, v := range vs {
			if err := c.Client(t, kgo.DefaultProduceTopic(topic)).ProduceSync(ctx, kgo.StringRecord(v)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// consume reads the two records after the group's committed offset
	// and commits.
	consume := func(opts ...kgo.Opt) {
		t.Helper()
		cl := c.Client(t, append(opts, kgo.ConsumerGroup(g), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
		for n := 0; n < 2; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("records never consumed (%d opts): %v", len(opts), fs.Errors())
			}
			n += len(fs.Records())
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	produce("a", "b")
	consume(kgo.ServerSideBalancer(), kgo.Balancers(kgo.RangeBalancer()))
	describe := func() {
		t.Helper()
		answered := 0
		for _, a := range c.Agents {
			req := kmsg.NewPtrConsumerGroupDescribeRequest()
			req.Groups = []string{g}
			resp, err := req.RequestWith(ctx, c.Client(t).Broker(int(a.Server.NodeID())))
			if err != nil {
				t.Fatal(err)
			}
			d := resp.Groups[0]
			switch {
			case d.ErrorCode == kerr.NotCoordinator.Code:
			case d.ErrorCode != 0 || d.State != "Empty" || len(d.Members) != 0:
				t.Fatalf("agent %d: ConsumerGroupDescribe %v state %q members %d, want Empty", a.Server.NodeID(), kerr.ErrorForCode(d.ErrorCode), d.State, len(d.Members))
			default:
				answered++
			}
		}
		if answered == 0 {
			t.Fatal("no agent described the group")
		}
	}
	waitReleased(t, ctx, c.Meta, g)
	if typ, err := c.Meta.GroupType(ctx, g); err != nil || typ != "consumer" {
		t.Fatalf("released KIP-848 group recorded as %q (%v), want consumer (released: no member owns anything)", typ, err)
	}
	if l := listed(); l.GroupType != "consumer" || l.State != "Empty" || l.ProtocolType != "consumer" {
		t.Fatalf("released KIP-848 group listed as %+v, want an Empty consumer group", l)
	}
	describe()

	// Claimed again (FindCoordinator): still a consumer group.
	claimByFindCoordinator(t, ctx, c, c.Client(t), g)
	if l := listed(); l.GroupType != "consumer" || l.State != "Empty" {
		t.Fatalf("claimed KIP-848 group listed as %+v, want an Empty consumer group", l)
	}
	describe()

	// A classic member converts it; once it left and the group is
	// released, it is classic.
	produce("c", "d")
	consume()
	waitReleased(t, ctx, c.Meta, g)
	if l := listed(); l.GroupType != "classic" || l.State != "Empty" || l.ProtocolType != "consumer" {
		t.Fatalf("converted group listed as %+v, want an Empty classic group", l)
	}
	if typ, err := c.Meta.GroupType(ctx, g); err != nil || typ != "" {
		t.Fatalf("converted group's recorded type %q (%v), want none", typ, err)
	}
}

// claimByFindCoordinator sends FindCoordinator for g to every agent (kgo
// would answer it from its cache) and checks that an agent claimed g.
func claimByFindCoordinator(t *testing.T, ctx context.Context, c *agenttest.Cluster, cl *kgo.Client, g string) {
	t.Helper()
	for _, a := range c.Agents {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorKeys = g, []string{g}
		if _, err := req.RequestWith(ctx, cl.Broker(int(a.Server.NodeID()))); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := c.Meta.GroupCoordinator(ctx, g); err != nil || h < 0 {
		t.Fatalf("FindCoordinator did not claim %s (holder %d, %v)", g, h, err)
	}
}
