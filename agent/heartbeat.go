package agent

// Heartbeat (key 12): v0-v4.
//
// As in Kafka: keeps a member's session alive; REBALANCE_IN_PROGRESS tells
// it to rejoin, ILLEGAL_GENERATION that it is behind, UNKNOWN_MEMBER_ID
// that the group forgot it (session expired, or the coordinator moved to
// another agent and members must rejoin), FENCED_INSTANCE_ID that a newer
// incarnation of its static instance took over. A classic member of a
// consumer-protocol group is answered from its KIP-848 state
// (consumer_group_migration.go, classicHeartbeat).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.Heartbeat, 0, 4, (*Server).handleHeartbeat, onGroup(kmsg.ACLOperationRead, heartbeatGroup))
}

func (s *Server) handleHeartbeat(ctx context.Context, _ *reqCtx, req *kmsg.HeartbeatRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = s.heartbeat(ctx, req)
	return now(resp)
}

func (s *Server) heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) int16 {
	g, code := s.groups().lock(ctx, req.Group)
	if code != 0 {
		return code
	}
	defer g.mu.Unlock()
	if g.cg != nil {
		return g.classicHeartbeat(req) // consumer_group_migration.go
	}
	if g.state == stateEmpty {
		g.told(req.MemberID)
		return kerr.UnknownMemberID.Code
	}
	m, code := g.known(req.MemberID, req.InstanceID)
	if code != 0 {
		return code
	}
	if g.membersStale {
		g.recordMembers()
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	g.touch(m)
	if g.state == statePreparing {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}
