package agent

// FindCoordinator (key 10): v0-v6, batched keys from v4.
//
// Group keys (CoordinatorType 0) and transactional IDs (type 1): the agent
// holding the key's coordinator key in etcd, or, when nobody holds it, the
// rendezvous-hash winner of the key over the live agents; when that is
// this agent it claims the key at once (groups.go, txn_coord.go). A
// holder that is no longer a live agent (its lease is expiring) is
// COORDINATOR_NOT_AVAILABLE, so clients retry until another agent takes
// over. Other types (share groups) are INVALID_REQUEST; an empty group ID
// INVALID_GROUP_ID, an empty transactional ID INVALID_REQUEST.

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
		txn := req.CoordinatorType == 1
		switch {
		case req.CoordinatorType != 0 && !txn:
			c.ErrorCode = kerr.InvalidRequest.Code
			return c
		case key == "" && txn:
			c.ErrorCode = kerr.InvalidRequest.Code
			return c
		case key == "":
			c.ErrorCode = kerr.InvalidGroupID.Code
			return c
		}
		if agents == nil {
			agents = s.liveAgents(ctx)
		}
		var a metastore.AgentInfo
		var code int16
		if txn {
			a, code = s.txnCoordinatorFor(ctx, key, agents)
		} else {
			a, code = s.coordinatorFor(ctx, key, agents)
		}
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

// txnCoordinatorFor is coordinatorFor for a transactional ID.
func (s *Server) txnCoordinatorFor(ctx context.Context, t string, agents []metastore.AgentInfo) (metastore.AgentInfo, int16) {
	holder, err := s.meta.TxnCoordinator(ctx, t)
	if err != nil {
		s.log.Warn("find coordinator: read etcd", "transactional_id", t, "err", err)
		return metastore.AgentInfo{}, kerr.CoordinatorNotAvailable.Code
	}
	if holder < 0 {
		win, ok := rendezvous(agents, t)
		if !ok {
			return metastore.AgentInfo{}, kerr.CoordinatorNotAvailable.Code
		}
		if win.NodeID != s.NodeID() {
			return win, 0
		}
		e, code := s.txns().lock(ctx, t)
		if code == 0 {
			e.mu.Unlock()
		} else if code != kerr.NotCoordinator.Code && code != kerr.ConcurrentTransactions.Code {
			return metastore.AgentInfo{}, code
		}
		if holder, err = s.meta.TxnCoordinator(ctx, t); err != nil || holder < 0 {
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
