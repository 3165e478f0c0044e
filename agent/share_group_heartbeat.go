package agent

// ShareGroupHeartbeat (key 76): v1 (the stable version of Kafka 4.1+; v0
// was KIP-932's early access).
//
// Served by the group's coordinator (share_groups.go; others answer
// NOT_COORDINATOR). Member IDs are the client's (KIP-932): an empty one is
// INVALID_REQUEST. Epoch 0 joins (or rejoins under the same ID) and needs
// subscribed topics; -1 leaves (its acquired records are released); any
// other epoch must be the member's current or previous one
// (FENCED_MEMBER_EPOCH), of a known member (UNKNOWN_MEMBER_ID). The
// assignment is sent on a join, when the member's epoch moves, and to a
// full request (one naming its subscribed topics). A group with classic
// members is GROUP_ID_NOT_FOUND; more than maxShareMembers members
// GROUP_MAX_SIZE_REACHED. The heartbeat interval is the group's
// share.heartbeat.interval.ms; a member silent for share.session.timeout.ms
// leaves.

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/share"
)

func init() {
	register(kmsg.ShareGroupHeartbeat, 1, 1, (*Server).handleShareGroupHeartbeat, onGroup(kmsg.ACLOperationRead, shareGroupHeartbeatGroup))
}

var shareGroupHeartbeatGroup = single[*kmsg.ShareGroupHeartbeatRequest, *kmsg.ShareGroupHeartbeatResponse]{
	name:    func(r *kmsg.ShareGroupHeartbeatRequest) string { return r.GroupID },
	errCode: func(r *kmsg.ShareGroupHeartbeatResponse) *int16 { return &r.ErrorCode },
}

func (s *Server) handleShareGroupHeartbeat(ctx context.Context, rc *reqCtx, req *kmsg.ShareGroupHeartbeatRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
	fail := func(code int16, msg string) (reply, error) {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = kmsg.StringPtr(msg)
		}
		return now(resp)
	}
	switch {
	case req.GroupID == "":
		return fail(kerr.InvalidGroupID.Code, "empty group ID")
	case req.MemberID == "" || len(req.MemberID) > share.MaxMemberID:
		return fail(kerr.InvalidRequest.Code, "a share group member names its own member ID (1 to 255 bytes)")
	case req.MemberEpoch == 0 && len(req.SubscribedTopicNames) == 0:
		return fail(kerr.InvalidRequest.Code, "a joining member must subscribe to topics")
	case req.MemberEpoch < -1:
		return fail(kerr.InvalidRequest.Code, "member epoch below -1")
	}
	g, code := s.groups().lock(ctx, req.GroupID)
	if code != 0 {
		return fail(code, "")
	}
	defer g.mu.Unlock()
	if g.protocolType != "" || len(g.members) > 0 || len(g.pending) > 0 {
		return fail(kerr.GroupIDNotFound.Code, "group "+req.GroupID+" is not a share group")
	}
	if g.share == nil {
		if req.MemberEpoch != 0 {
			return fail(kerr.UnknownMemberID.Code, "")
		}
		if err := s.meta.CreateShareGroup(ctx, g.name); err != nil {
			return fail(errCode(s.log, "share group heartbeat: record group", err), "")
		}
		g.share = &shareMembers{members: map[string]*shareMember{}}
	}
	sm := g.share
	resp.HeartbeatIntervalMillis = int32(s.groupConfigInt(ctx, g.name, "share.heartbeat.interval.ms"))
	timeout := time.Duration(s.groupConfigInt(ctx, g.name, "share.session.timeout.ms")) * time.Millisecond
	m := sm.members[req.MemberID]
	switch req.MemberEpoch {
	case -1:
		if m == nil {
			return fail(kerr.UnknownMemberID.Code, "")
		}
		s.removeShareMember(g, m, "left")
		resp.MemberID, resp.MemberEpoch = &req.MemberID, -1
		return now(resp)
	case 0:
		if m == nil {
			if len(sm.members) >= maxShareMembers {
				return fail(kerr.GroupMaxSizeReached.Code, "")
			}
			m = &shareMember{id: req.MemberID, assignment: map[metastore.TopicID][]int32{}}
			sm.members[m.id] = m
		}
	default:
		if m == nil {
			return fail(kerr.UnknownMemberID.Code, "")
		}
		if req.MemberEpoch != m.epoch && req.MemberEpoch != m.prevEpoch {
			return fail(kerr.FencedMemberEpoch.Code, "")
		}
	}
	m.clientID, m.host = rc.clientID, clientHost(rc)
	if req.RackID != nil {
		m.rack = req.RackID
	}
	if req.SubscribedTopicNames != nil {
		m.topics = slices.Sorted(slices.Values(slices.Compact(slices.Sorted(slices.Values(req.SubscribedTopicNames)))))
	}
	s.shareSessionTimer(g, m, timeout)
	s.rebalanceShare(ctx, sm)
	before := m.epoch
	if m.epoch != sm.epoch {
		m.prevEpoch, m.epoch = m.epoch, sm.epoch
	}
	resp.MemberID, resp.MemberEpoch = &req.MemberID, m.epoch
	if req.MemberEpoch == 0 || req.SubscribedTopicNames != nil || m.epoch != before {
		resp.Assignment = shareAssignment(m)
	}
	return now(resp)
}
