package agent

// FindCoordinator (key 10): v0-v6, batched keys from v4.
//
// Group keys only (CoordinatorType 0): the agent holding the group's
// coordinator key in etcd, or, when nobody holds it, the rendezvous-hash
// winner of the group ID over the live agents; when that is this agent it
// claims the group at once (groups.go). A holder that is no longer a live
// agent (its lease is expiring) is COORDINATOR_NOT_AVAILABLE, so clients
// retry until another agent takes over. Transaction coordinators (type 1)
// are COORDINATOR_NOT_AVAILABLE: shale has no transactions. Other types
// (share groups) are INVALID_REQUEST; an empty group ID INVALID_GROUP_ID.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.FindCoordinator, 0, 6, (*Server).handleFindCoordinator, custom(authorizeFindCoordinator, need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup}))
}

func (s *Server) handleFindCoordinator(ctx context.Context, rc *reqCtx, req *kmsg.FindCoordinatorRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	var agents []metastore.AgentInfo
	find := func(key string) kmsg.FindCoordinatorResponseCoordinator {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Port = key, -1, -1
		switch {
		case req.CoordinatorType == 1:
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			c.ErrorMessage = kmsg.StringPtr("shale has no transaction coordinator")
			return c
		case req.CoordinatorType != 0:
			c.ErrorCode = kerr.InvalidRequest.Code
			return c
		case key == "":
			c.ErrorCode = kerr.InvalidGroupID.Code
			return c
		}
		if agents == nil {
			agents = s.liveAgents(ctx)
		}
		a, code := s.coordinatorFor(ctx, key, agents)
		if code != 0 {
			c.ErrorCode = code
			return c
		}
		c.NodeID = a.NodeID
		c.Host, c.Port = endpointFor(rc, a)
		return c
	}
	if req.Version >= 4 {
		for _, k := range req.CoordinatorKeys {
			resp.Coordinators = append(resp.Coordinators, find(k))
		}
		return now(resp)
	}
	c := find(req.CoordinatorKey)
	resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
	return now(resp)
}

// coordinatorFor returns the agent coordinating group, claiming it for this
// agent when nobody holds it and this agent is the rendezvous winner.
func (s *Server) coordinatorFor(ctx context.Context, group string, agents []metastore.AgentInfo) (metastore.AgentInfo, int16) {
	holder, err := s.meta.GroupCoordinator(ctx, group)
	if err != nil {
		s.log.Warn("find coordinator: read etcd", "group", group, "err", err)
		return metastore.AgentInfo{}, kerr.CoordinatorNotAvailable.Code
	}
	if holder < 0 {
		win, ok := rendezvous(agents, group)
		if !ok {
			return metastore.AgentInfo{}, kerr.CoordinatorNotAvailable.Code
		}
		if win.NodeID != s.NodeID() {
			return win, 0
		}
		if _, code := s.groups().acquire(ctx, group); code != 0 && code != kerr.NotCoordinator.Code {
			return metastore.AgentInfo{}, code
		}
		if holder, err = s.meta.GroupCoordinator(ctx, group); err != nil || holder < 0 {
			return metastore.AgentInfo{}, kerr.CoordinatorNotAvailable.Code
		}
	}
	for _, a := range agents {
		if a.NodeID == holder {
			return a, 0
		}
	}
	return metastore.AgentInfo{}, kerr.CoordinatorNotAvailable.Code
}
