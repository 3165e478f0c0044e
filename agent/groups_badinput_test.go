package agent_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestGroupBadInput proves that wrong group requests get Kafka's error
// codes, not crashes: unknown members, stale generations, fenced static
// instances, inconsistent protocols, bad session timeouts and Kafka's validation order (group ID, session timeout, protocols), commits for
// unknown topics, oversized offset metadata, protocol metadata and
// assignments; and that the group keeps working afterwards.
func TestGroupBadInput(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 1})
	ctx := testCtx(t, 60*time.Second)
	cl := c.Client(t)
	if _, err := c.Admin(t).CreateTopic(ctx, 2, 1, nil, "bad-t"); err != nil {
		t.Fatal(err)
	}
	br := cl.SeedBrokers()[0]
	send := func(req kmsg.Request) kmsg.Response {
		t.Helper()
		resp, err := br.Request(ctx, req)
		if err != nil {
			t.Fatalf("%T: %v", req, err)
		}
		return resp
	}
	wantCode := func(what string, got int16, want *kerr.Error) {
		t.Helper()
		code := int16(0)
		if want != nil {
			code = want.Code
		}
		if got != code {
			t.Errorf("%s: error %v, want %v", what, kerr.ErrorForCode(got), want)
		}
	}
	const group = "bad-g"
	join := func(member string, instance *string, protoType string, md []byte, session int32) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.InstanceID, req.ProtocolType = group, member, instance, protoType
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = session, 5000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", md
		req.Protocols = append(req.Protocols, p)
		return send(req).(*kmsg.JoinGroupResponse)
	}
	heartbeat := func(member string, gen int32, instance *string) int16 {
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.MemberID, req.Generation, req.InstanceID = group, member, gen, instance
		return send(req).(*kmsg.HeartbeatResponse).ErrorCode
	}
	commit := func(member string, gen int32, topic string, md string) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = group, member, gen
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.Metadata = 0, 5, &md
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return send(req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}

	wantCode("heartbeat to an empty group", heartbeat("nobody", 1, nil), kerr.UnknownMemberID)
	wantCode("session timeout 100ms", join("", nil, "consumer", nil, 100).ErrorCode, kerr.InvalidSessionTimeout)
	wantCode("session timeout 3s (below Kafka's 6 s minimum)", join("", nil, "consumer", nil, 3000).ErrorCode, kerr.InvalidSessionTimeout)
	noGroup := kmsg.NewPtrJoinGroupRequest() // empty group ID, session timeout 0, no protocols
	wantCode("empty group ID before the session timeout", send(noGroup).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidGroupID)
	noProto := kmsg.NewPtrJoinGroupRequest()
	noProto.Group, noProto.SessionTimeoutMillis = group, 3000
	wantCode("session timeout before missing protocols", send(noProto).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidSessionTimeout)
	wantCode("1 MiB + 1 of protocol metadata", join("", nil, "consumer", make([]byte, 1<<20+1), 6000).ErrorCode, kerr.InvalidRequest)

	first := join("", nil, "consumer", []byte("m"), 6000)
	wantCode("first join", first.ErrorCode, kerr.MemberIDRequired)
	jr := join(first.MemberID, nil, "consumer", []byte("m"), 6000)
	wantCode("join with the assigned ID", jr.ErrorCode, nil0)
	me, gen := jr.MemberID, jr.Generation
	if jr.LeaderID != me || len(jr.Members) != 1 {
		t.Fatalf("join: leader %q members %d, want self and 1", jr.LeaderID, len(jr.Members))
	}
	wantCode("join with an unknown member ID", join("ghost", nil, "consumer", []byte("m"), 6000).ErrorCode, kerr.UnknownMemberID)
	wantCode("join with another protocol type", join("", nil, "connect", []byte("m"), 6000).ErrorCode, kerr.InconsistentGroupProtocol)

	sync := func(member string, gen int32, assignment []byte) *kmsg.SyncGroupResponse {
		req := kmsg.NewPtrSyncGroupRequest()
		req.Group, req.MemberID, req.Generation = group, member, gen
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		a.MemberID, a.MemberAssignment = member, assignment
		req.GroupAssignment = append(req.GroupAssignment, a)
		return send(req).(*kmsg.SyncGroupResponse)
	}
	wantCode("sync with a stale generation", sync(me, gen-1, []byte("a")).ErrorCode, kerr.IllegalGeneration)
	wantCode("sync from an unknown member", sync("ghost", gen, []byte("a")).ErrorCode, kerr.UnknownMemberID)
	wantCode("oversized assignment", sync(me, gen, make([]byte, 1<<20+1)).ErrorCode, kerr.InvalidRequest)
	// The oversized assignment started a rebalance: rejoin, then sync properly.
	jr = join(me, nil, "consumer", []byte("m"), 6000)
	wantCode("rejoin after the refused assignment", jr.ErrorCode, nil0)
	gen = jr.Generation
	sr := sync(me, gen, []byte("assignment"))
	wantCode("sync", sr.ErrorCode, nil0)
	if !bytes.Equal(sr.MemberAssignment, []byte("assignment")) {
		t.Errorf("sync returned assignment %q", sr.MemberAssignment)
	}

	wantCode("heartbeat", heartbeat(me, gen, nil), nil0)
	wantCode("heartbeat with a stale generation", heartbeat(me, gen-1, nil), kerr.IllegalGeneration)
	wantCode("heartbeat from an unknown member", heartbeat("ghost", gen, nil), kerr.UnknownMemberID)
	wantCode("commit", commit(me, gen, "bad-t", "md"), nil0)
	wantCode("commit with a stale generation", commit(me, gen-1, "bad-t", ""), kerr.IllegalGeneration)
	wantCode("commit from an unknown member", commit("ghost", gen, "bad-t", ""), kerr.UnknownMemberID)
	wantCode("simple commit to a group with members", commit("", -1, "bad-t", ""), kerr.UnknownMemberID)
	wantCode("commit to an unknown topic", commit(me, gen, "no-such-topic", ""), kerr.UnknownTopicOrPartition)
	wantCode("commit with 4097 bytes of metadata", commit(me, gen, "bad-t", string(make([]byte, 4097))), kerr.OffsetMetadataTooLarge)

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{group}
	wantCode("delete a group with members", send(del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, kerr.NonEmptyGroup)

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorType, fc.CoordinatorKeys = 1, []string{"txn", ""}
	fcr := send(fc).(*kmsg.FindCoordinatorResponse)
	wantCode("transaction coordinator", fcr.Coordinators[0].ErrorCode, nil0)
	wantCode("transaction coordinator of an empty id", fcr.Coordinators[1].ErrorCode, kerr.InvalidRequest)
	fc.CoordinatorType, fc.CoordinatorKeys = 2, []string{"share"}
	wantCode("share group coordinator", send(fc).(*kmsg.FindCoordinatorResponse).Coordinators[0].ErrorCode, kerr.InvalidRequest)

	// Static membership: a new incarnation of instance "i1" fences the old.
	inst := "i1"
	sjDone := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { sjDone <- join("", &inst, "consumer", []byte("m"), 6000) }() // waits for me to rejoin or leave
	for range 100 {
		if d := describe(t, ctx, cl, group); d.State == "PreparingRebalance" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = group
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = me
	leave.Members = append(leave.Members, lm)
	lr := send(leave).(*kmsg.LeaveGroupResponse) // me leaves: sj's join completes alone
	wantCode("leave", lr.Members[0].ErrorCode, nil0)
	wantCode("static join", (<-sjDone).ErrorCode, nil0)
	for range 50 { // the first static join was answered while we left; wait for a stable generation
		if d := describe(t, ctx, cl, group); d.State == "CompletingRebalance" || d.State == "Stable" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	d := describe(t, ctx, cl, group)
	if len(d.Members) != 1 || d.Members[0].InstanceID == nil || *d.Members[0].InstanceID != inst {
		t.Fatalf("after leave: members %+v, want the static member only", d.Members)
	}
	old := d.Members[0].MemberID
	nj := join("", &inst, "consumer", []byte("m"), 6000)
	wantCode("static rejoin", nj.ErrorCode, nil0)
	if nj.MemberID == old {
		t.Errorf("static rejoin kept member ID %s", old)
	}
	wantCode("heartbeat of the fenced incarnation", heartbeat(old, nj.Generation, &inst), kerr.FencedInstanceID)
	wantCode("leave unknown member", func() int16 {
		r := kmsg.NewPtrLeaveGroupRequest()
		r.Group = group
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = "ghost"
		r.Members = append(r.Members, m)
		return send(r).(*kmsg.LeaveGroupResponse).Members[0].ErrorCode
	}(), kerr.UnknownMemberID)
}

var nil0 *kerr.Error // "no error": kerr.ErrorForCode(0) is nil

func describe(t *testing.T, ctx context.Context, cl *kgo.Client, group string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.DescribeGroupsResponse).Groups[0]
}
