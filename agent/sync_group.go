package agent

// SyncGroup (key 14): v0-v5.
//
// As in Kafka: the leader's SyncGroup carries every member's assignment and
// moves the group to Stable, answering the followers waiting for theirs;
// the coordinator only relays assignments (assignors run in the clients).
// A SyncGroup during PreparingRebalance gets REBALANCE_IN_PROGRESS, one for
// another generation ILLEGAL_GENERATION. An assignment larger than
// maxMemberBytes (or all of them together larger than the frame limit
// allows) is refused with INVALID_REQUEST and the group rebalances. v5's
// protocol type and name, when given, must match the group's
// (INCONSISTENT_GROUP_PROTOCOL). A classic member of a consumer-protocol
// group gets its current assignment from the group's KIP-848 state
// (consumer_group_migration.go, classicSync).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.SyncGroup, 0, 5, (*Server).handleSyncGroup, onGroup(kmsg.ACLOperationRead, syncGroupGroup))
}

func (s *Server) handleSyncGroup(ctx context.Context, _ *reqCtx, req *kmsg.SyncGroupRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(code int16) (reply, error) { resp.ErrorCode = code; return now(resp) }
	g, code := s.groups().lock(ctx, req.Group)
	if code != 0 {
		return fail(code)
	}
	defer g.mu.Unlock()
	if g.cg != nil {
		g.classicSync(req, resp) // a classic member of a consumer group
		return now(resp)
	}
	m, code := g.known(req.MemberID, req.InstanceID)
	if code != 0 {
		return fail(code)
	}
	if req.Generation != g.generation {
		return fail(kerr.IllegalGeneration.Code)
	}
	if (req.ProtocolType != nil && *req.ProtocolType != g.protocolType) || (req.Protocol != nil && *req.Protocol != g.protocol) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	switch g.state {
	case statePreparing:
		return fail(kerr.RebalanceInProgress.Code)
	case stateStable:
		g.touch(m)
		resp.MemberAssignment = m.assignment
		return now(resp)
	case stateCompleting:
	default:
		return fail(kerr.UnknownMemberID.Code)
	}
	g.touch(m)
	if m.id == g.leader {
		for _, a := range req.GroupAssignment {
			if len(a.MemberAssignment) > maxMemberBytes {
				s.log.Info("sync group: assignment too large; rebalancing", "group", g.name, "member", a.MemberID, "bytes", len(a.MemberAssignment))
				g.rebalance()
				return fail(kerr.InvalidRequest.Code)
			}
		}
		for _, mm := range g.members {
			mm.assignment = nil
		}
		for _, a := range req.GroupAssignment {
			if mm := g.members[a.MemberID]; mm != nil {
				mm.assignment = a.MemberAssignment
			}
		}
		g.state = stateStable
		g.stopTimer()
		for _, mm := range g.members {
			if mm.syncCh != nil {
				mm.syncCh <- syncResult{assignment: mm.assignment}
				mm.syncCh = nil
			}
		}
		resp.MemberAssignment = m.assignment
		return now(resp)
	}
	if m.syncCh != nil {
		m.syncCh <- syncResult{code: kerr.RebalanceInProgress.Code}
	}
	ch := make(chan syncResult, 1)
	m.syncCh = ch
	return reply{wait: func(ctx context.Context) (kmsg.Response, error) {
		select {
		case r := <-ch:
			resp.ErrorCode, resp.MemberAssignment = r.code, r.assignment
			return resp, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}, nil
}
