package agent

// LeaveGroup (key 13): v0-v5.
//
// As in Kafka: v0-v2 name one member by ID; v3+ name several, each by
// member ID and/or group.instance.id (an admin may remove a static member
// by instance alone), each answered with its own error code
// (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID when the instance belongs to
// another member ID). The remaining members rebalance; the last one
// leaving empties the group.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.LeaveGroup, 0, 5, (*Server).handleLeaveGroup, onGroup(kmsg.ACLOperationRead, leaveGroupGroup))
}

func (s *Server) handleLeaveGroup(ctx context.Context, _ *reqCtx, req *kmsg.LeaveGroupRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	g, code := s.groups().lock(ctx, req.Group)
	if code != 0 {
		resp.ErrorCode = code
		return now(resp)
	}
	defer g.mu.Unlock()
	if req.Version < 3 {
		resp.ErrorCode = g.leave(req.MemberID, nil)
		return now(resp)
	}
	for _, lm := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = lm.MemberID, lm.InstanceID
		rm.ErrorCode = g.leave(lm.MemberID, lm.InstanceID)
		resp.Members = append(resp.Members, rm)
	}
	return now(resp)
}

// leave removes one member, named by ID, instance or both.
func (g *group) leave(memberID string, instanceID *string) int16 {
	if g.cg != nil {
		return g.classicLeave(memberID, instanceID) // consumer_group_migration.go
	}
	id := memberID
	if instanceID != nil {
		cur, ok := g.static[*instanceID]
		switch {
		case !ok:
			g.told(memberID)
			return kerr.UnknownMemberID.Code
		case memberID != "" && cur != memberID:
			return kerr.FencedInstanceID.Code
		}
		id = cur
	}
	m := g.members[id]
	if m == nil {
		g.told(id) // it gives up what it owned (groups_failover.go)
		return kerr.UnknownMemberID.Code
	}
	g.c.s.log.Info("group member left", "group", g.name, "member", id)
	g.remove(m, kerr.UnknownMemberID.Code)
	return 0
}
