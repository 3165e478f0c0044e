package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// classicJoin joins group through br as a new member (session timeout
// 6 s), asking again while the agent answers NOT_COORDINATOR (another
// agent's claim has not gone yet) and with the member ID it hands out. It
// returns the answer and how long it took from the request that found
// the group free for this agent (the claim) to the answer.
func classicJoin(t *testing.T, ctx context.Context, br *kgo.Broker, group string) (*kmsg.JoinGroupResponse, time.Duration) {
	t.Helper()
	return classicJoinSession(t, ctx, br, group, 6000)
}

// classicJoinSession is classicJoin with a session timeout of sessionMs.
func classicJoinSession(t *testing.T, ctx context.Context, br *kgo.Broker, group string, sessionMs int32) (*kmsg.JoinGroupResponse, time.Duration) {
	t.Helper()
	var served time.Time
	member := ""
	for {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = sessionMs, 40000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{}
		req.Protocols = append(req.Protocols, p)
		sent := time.Now()
		raw, err := br.Request(ctx, req)
		if err != nil {
			t.Fatalf("join %s: %v", group, err)
		}
		resp := raw.(*kmsg.JoinGroupResponse)
		switch resp.ErrorCode {
		case kerr.NotCoordinator.Code:
			if ctx.Err() != nil {
				t.Fatalf("join %s: still NOT_COORDINATOR", group)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		case kerr.MemberIDRequired.Code:
			served, member = sent, resp.MemberID
			continue
		}
		if served.IsZero() {
			served = sent
		}
		return resp, time.Since(served)
	}
}

// TestGroupFailoverHoldsFirstJoin proves a coordinator that takes over a
// classic group whose coordinator stopped with a member (it may still own
// partitions: nobody told it) answers no JoinGroup, so gives no
// assignment, until one session timeout (6 s) after its claim; a group
// released empty, and a new group, are served at once (the 300 ms initial
// delay). Without the hold the takeover's join was answered as fast. The
// record lists the members and is rewritten when one leaves (listing
// nobody: a takeover then holds nothing). TestGroupFailoverToldEndsHold
// covers the end of the hold once the old
// member heard of the failover.
func TestGroupFailoverHoldsFirstJoin(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	agent.SetGroupIdleRelease(c.Agents[0].Server, 300*time.Millisecond)
	ctx := testCtx(t, time.Minute)
	first, next := brokerAt(t, c, 0), brokerAt(t, c, 1)

	// Released empty: its member left, its coordinator released it.
	a, took := classicJoin(t, ctx, first, "released-g")
	if a.ErrorCode != 0 || took > 2*time.Second {
		t.Fatalf("a joins a new group: %v after %v, want an answer within the initial delay", kerr.ErrorForCode(a.ErrorCode), took)
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "released-g", a.MemberID
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = a.MemberID
	leave.Members = append(leave.Members, lm)
	if r, err := leave.RequestWith(ctx, first); err != nil || r.ErrorCode != 0 {
		t.Fatalf("a leaves: %v %v", err, r)
	}
	waitReleased(t, ctx, c.Meta, "released-g")
	b, took := classicJoin(t, ctx, next, "released-g")
	if b.ErrorCode != 0 || took > 2*time.Second {
		t.Fatalf("b joins the released group: %v after %v, want an answer within the initial delay", kerr.ErrorForCode(b.ErrorCode), took)
	}
	t.Logf("released group: b's join answered %v after the claim", took.Round(time.Millisecond))
	// b's leave rewrites the record (agent 1 keeps the group for the
	// 5 min idle release): it lists nobody, so a takeover would hold
	// nothing.
	if got := membersRecord(t, ctx, c, "released-g"); got != "6000\n"+b.MemberID+"\n" {
		t.Fatalf("members-session record %q, want b listed", got)
	}
	leave.MemberID, leave.Members[0].MemberID = b.MemberID, b.MemberID
	if r, err := leave.RequestWith(ctx, next); err != nil || r.ErrorCode != 0 {
		t.Fatalf("b leaves: %v %v", err, r)
	}
	if got := membersRecord(t, ctx, c, "released-g"); got != "6000\n" {
		t.Fatalf("members-session record %q after b left, want the session listing nobody", got)
	}

	// Taken over: its coordinator stopped while a was a member.
	a, took = classicJoin(t, ctx, first, "held-g")
	if a.ErrorCode != 0 || took > 2*time.Second {
		t.Fatalf("a joins a new group: %v after %v", kerr.ErrorForCode(a.ErrorCode), took)
	}
	if err := c.Agents[0].Stop(); err != nil { // a's partitions stay a's as far as a knows
		t.Fatal(err)
	}
	b, took = classicJoin(t, ctx, next, "held-g")
	if b.ErrorCode != 0 || b.Generation < 1 {
		t.Fatalf("b joins the taken-over group: %v generation %d", kerr.ErrorForCode(b.ErrorCode), b.Generation)
	}
	if took < 5500*time.Millisecond || took > 10*time.Second {
		t.Fatalf("b's join answered %v after the claim, want one session timeout (6 s)", took)
	}
	t.Logf("taken-over group, a silent: b's join answered %v after the claim", took.Round(time.Millisecond))
}

// membersRecord reads group's members-session record from etcd.
func membersRecord(t *testing.T, ctx context.Context, c *agenttest.Cluster, group string) string {
	t.Helper()
	r, err := c.Etcd.Get(ctx, c.Namespace+"/groups/"+group+"/members-session")
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("members-session record of %s: %v %v", group, err, r)
	}
	return string(r.Kvs[0].Value)
}

func brokerAt(t *testing.T, c *agenttest.Cluster, i int) *kgo.Broker {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Agents[i].Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl.SeedBrokers()[0]
}

// TestGroupFailoverToldEndsHold proves the hold of a taken-over classic
// group's first join ends as soon as every member of the old coordinator
// has heard of the failover and rejoined. Members a and b (session 30 s)
// of the stopped coordinator heartbeat to the new one with their old
// member IDs and are answered UNKNOWN_MEMBER_ID (on which clients give up
// their partitions, once the application's poll lets them, and rejoin
// under a new ID). b, told, rejoins: held. a's commit refused the same
// way ends nothing (franz-go's cooperative consumer rejoins from it
// keeping its partitions): held. a told but not rejoined: held. a rejoins:
// both answered within the 300 ms initial delay, well before the session
// timeout. From a record of an older agent (the session alone, 6 s here:
// the members unknown) nothing ends the hold: b waits the session
// timeout.
func TestGroupFailoverToldEndsHold(t *testing.T) {
	for _, c := range []struct {
		name      string
		sessionMs int32
		oldRecord bool
	}{{"listed", 30000, false}, {"older record", 6000, true}} {
		t.Run(c.name, func(t *testing.T) { failoverTold(t, c.sessionMs, c.oldRecord) })
	}
}

func failoverTold(t *testing.T, sessionMs int32, oldRecord bool) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	next := brokerAt(t, c, 1)
	const group = "told-g"
	type joined struct {
		resp *kmsg.JoinGroupResponse
		took time.Duration
	}
	// join joins through agent i on a connection of its own (a held
	// JoinGroup holds its connection's later answers).
	join := func(i int) <-chan joined {
		br := brokerAt(t, c, i)
		ch := make(chan joined, 1)
		go func() {
			r, took := classicJoinSession(t, ctx, br, group, sessionMs)
			ch <- joined{r, took}
		}()
		return ch
	}
	// a and b, members of the first coordinator.
	ac, bc := join(0), join(0)
	a, b := <-ac, <-bc
	if a.resp.ErrorCode != 0 || b.resp.ErrorCode != 0 || a.resp.Generation != b.resp.Generation {
		t.Fatalf("a and b join a new group: %v %v, generations %d %d", kerr.ErrorForCode(a.resp.ErrorCode), kerr.ErrorForCode(b.resp.ErrorCode), a.resp.Generation, b.resp.Generation)
	}
	if got := membersRecord(t, ctx, c, group); got != fmt.Sprintf("%d\n%s\n%s\n", sessionMs, a.resp.MemberID, b.resp.MemberID) &&
		got != fmt.Sprintf("%d\n%s\n%s\n", sessionMs, b.resp.MemberID, a.resp.MemberID) {
		t.Fatalf("members-session record %q, want the session and a's and b's member IDs", got)
	}
	if oldRecord {
		if err := agent.RecordMembersSessionOnly(ctx, c.Agents[0].Server, group, time.Duration(sessionMs)*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Agents[0].Stop(); err != nil { // their partitions stay theirs as far as they know
		t.Fatal(err)
	}
	// heartbeat sends member m's heartbeat with its old ID to the new
	// coordinator: UNKNOWN_MEMBER_ID, so m gives up what it owned.
	heartbeat := func(m *kmsg.JoinGroupResponse) {
		for {
			hb := kmsg.NewPtrHeartbeatRequest()
			hb.Group, hb.Generation, hb.MemberID = group, m.Generation, m.MemberID
			r, err := hb.RequestWith(ctx, next)
			if err != nil {
				t.Fatal(err)
			}
			if r.ErrorCode == kerr.NotCoordinator.Code && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if r.ErrorCode != kerr.UnknownMemberID.Code {
				t.Fatalf("heartbeat of %s to the new coordinator: %v, want UNKNOWN_MEMBER_ID", m.MemberID, kerr.ErrorForCode(r.ErrorCode))
			}
			return
		}
	}
	held := func(ch <-chan joined, why string) {
		t.Helper()
		time.Sleep(time.Second)
		select {
		case j := <-ch:
			t.Fatalf("b's join answered %v after the claim, %s", j.took, why)
		default:
		}
	}
	// b is told and rejoins: its join is held while a may own partitions.
	heartbeat(b.resp)
	b2c := join(1)
	held(b2c, "before a heard of the failover")
	// a's commit with its old member ID is answered UNKNOWN_MEMBER_ID,
	// but does not end the hold: franz-go's cooperative consumer then
	// rejoins keeping its partitions.
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.Generation, oc.MemberID = group, a.resp.Generation, a.resp.MemberID
	ot := kmsg.NewOffsetCommitRequestTopic()
	ot.Topic = "t"
	op := kmsg.NewOffsetCommitRequestTopicPartition()
	ot.Partitions = append(ot.Partitions, op)
	oc.Topics = append(oc.Topics, ot)
	if r, err := oc.RequestWith(ctx, next); err != nil || len(r.Topics) != 1 || r.Topics[0].Partitions[0].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("a's commit to the new coordinator: %v %+v, want UNKNOWN_MEMBER_ID", err, r)
	}
	held(b2c, "after a's commit was refused, before a heard of the failover")
	// a told: it is to give up its partitions (once its application's
	// poll lets it) and rejoin; until it rejoins b is still held.
	heartbeat(a.resp)
	held(b2c, "after a was told but before it rejoined")
	a2c := join(1)
	rejoined := time.Now()
	b2, a2 := <-b2c, <-a2c
	if b2.resp.ErrorCode != 0 || a2.resp.ErrorCode != 0 || b2.resp.Generation < 1 {
		t.Fatalf("b and a rejoin the taken-over group: %v %v generation %d", kerr.ErrorForCode(b2.resp.ErrorCode), kerr.ErrorForCode(a2.resp.ErrorCode), b2.resp.Generation)
	}
	after := time.Since(rejoined)
	switch {
	case !oldRecord && (b2.took > 10*time.Second || after > 2*time.Second):
		t.Fatalf("b's join answered %v after the claim (%v after a rejoined), want soon after a was told and rejoined, well before the 30 s session", b2.took, after)
	case oldRecord && (b2.took < 5500*time.Millisecond || b2.took > 10*time.Second):
		t.Fatalf("b's join answered %v after the claim from an older agent's record, want one session timeout (6 s)", b2.took)
	}
	t.Logf("b's join answered %v after the claim, %v after a, told, rejoined (session %d ms)", b2.took.Round(time.Millisecond), after.Round(time.Microsecond), sessionMs)
}
