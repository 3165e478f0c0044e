package agent_test

import (
	"context"
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
	var served time.Time
	member := ""
	for {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 6000, 20000
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
// delay). Without the hold the takeover's join was answered as fast.
func TestGroupFailoverHoldsFirstJoin(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	agent.SetGroupIdleRelease(c.Agents[0].Server, 300*time.Millisecond)
	ctx := testCtx(t, time.Minute)
	at := func(i int) *kgo.Broker {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Agents[i].Addr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl.SeedBrokers()[0]
	}
	first, next := at(0), at(1)

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
	t.Logf("taken-over group: b's join answered %v after the claim", took.Round(time.Millisecond))
}
