package agent

// JoinGroup (key 11): v0-v9, the classic group protocol (groups.go,
// groups_state.go).
//
// As in Kafka: v4+ members joining without a member ID get
// MEMBER_ID_REQUIRED with their new ID and must join again with it (within
// their session timeout); a static member (group.instance.id, v5+) that
// rejoins without a member ID replaces its previous incarnation (which is
// fenced with FENCED_INSTANCE_ID) and, when the group is Stable and its
// protocols are unchanged, gets the current generation back without a
// rebalance. A known follower rejoining a Stable group with unchanged
// protocols also gets the current generation; any other join triggers a
// rebalance, answered when every member has rejoined or the rebalance
// timeout passes. SkipAssignment (v9) is always false. v0 uses the session
// timeout as the rebalance timeout. Validation follows Kafka's order: an
// empty group ID is INVALID_GROUP_ID, then a session timeout outside
// Kafka's default bounds (group.min.session.timeout.ms 6 s,
// group.max.session.timeout.ms 30 min) is INVALID_SESSION_TIMEOUT, then no
// protocols or another protocol type is INCONSISTENT_GROUP_PROTOCOL, and so
// is a join to a share group (share_groups.go). A join to a
// consumer-protocol (KIP-848) group that has members is served from its
// KIP-848 state (consumer_group_migration.go, classicJoin: answered at
// once, generation = member epoch, no leader), and so is one to a
// consumer-protocol group in its failover grace (consumer_group.go); an
// empty consumer-protocol group becomes a classic group again, as in
// Kafka.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.JoinGroup, 0, 9, (*Server).handleJoinGroup, onGroup(kmsg.ACLOperationRead, joinGroupGroup))
}

func (s *Server) handleJoinGroup(ctx context.Context, rc *reqCtx, req *kmsg.JoinGroupRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	empty := ""
	resp.Generation, resp.Protocol, resp.MemberID = -1, &empty, req.MemberID
	fail := func(code int16) (reply, error) { resp.ErrorCode = code; return now(resp) }

	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || rebalance <= 0 {
		rebalance = session
	}
	rebalance = min(rebalance, maxRebalanceTimeout)
	// Kafka's order: the group ID, then the session timeout, then the
	// protocols (kafka-go's own tests check it).
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	if session < minSessionTimeout || session > maxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	size := 0
	for _, p := range req.Protocols {
		size += len(p.Name) + len(p.Metadata)
	}
	if size > maxMemberBytes {
		s.log.Info("join group: protocol metadata too large", "group", req.Group, "bytes", size)
		return fail(kerr.InvalidRequest.Code)
	}
	// The topics a consumer group's classic member subscribes to, and
	// the partitions it owns, resolve against a topic view
	// (consumer_group_migration.go): a join that finds the group a
	// consumer group (also one it claimed itself, as after a failover)
	// reads the view with the lock released and looks again (a classic
	// group's join needs none).
	var tv *topicView
	g, code := s.groups().lock(ctx, req.Group)
	if code != 0 {
		return fail(code)
	}
	if g.cg != nil {
		g.mu.Unlock()
		var err error
		if tv, err = s.topicView(ctx); err != nil {
			return fail(errCode(s.log, "join group: list topics", err))
		}
		if g, code = s.groups().lock(ctx, req.Group); code != 0 {
			return fail(code)
		}
	}
	defer g.mu.Unlock()
	if g.cg != nil {
		// A consumer-protocol (KIP-848) group: with members, or members
		// of a dead coordinator that may still own partitions (its
		// failover grace), the joining member is served from its state as
		// a classic member; an empty one becomes classic again.
		if g.consumerMembersLeft() || g.cg.inGrace() {
			if tv == nil { // converted between the two locks
				tv = g.c.cachedTopicView()
			}
			return now(g.classicJoin(rc, req, session, rebalance, tv))
		}
		g.cg = nil
	}
	if !g.accepts(req.ProtocolType, req.Protocols, req.MemberID) || len(g.members) == 0 && s.isShareGroup(ctx, g) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	fresh := &member{instanceID: req.InstanceID, clientID: rc.clientID, clientHost: clientHost(rc),
		protoType: req.ProtocolType, protocols: req.Protocols, session: session, rebalance: rebalance}

	wait := func(m *member) (reply, error) {
		ch := make(chan joinResult, 1)
		m.joinCh = ch
		return reply{wait: func(ctx context.Context) (kmsg.Response, error) {
			select {
			case r := <-ch:
				if r.resp == nil {
					resp.ErrorCode = r.code
					return resp, nil
				}
				r.resp.Version = req.Version
				return r.resp, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}}, nil
	}

	if req.MemberID == "" {
		if len(g.members)+len(g.pending) >= maxGroupMembers {
			return fail(kerr.GroupMaxSizeReached.Code)
		}
		fresh.id = newMemberID(rc.clientID)
		if req.InstanceID != nil {
			if oldID, ok := g.static[*req.InstanceID]; ok {
				return s.replaceStatic(g, g.members[oldID], fresh, resp, wait)
			}
			g.add(fresh)
			return waitAfter(g, fresh, wait)
		}
		if req.Version >= 4 {
			id := fresh.id
			g.pending[id] = time.AfterFunc(session, func() {
				g.mu.Lock()
				defer g.mu.Unlock()
				delete(g.pending, id)
			})
			resp.MemberID = id
			return fail(kerr.MemberIDRequired.Code)
		}
		g.add(fresh)
		return waitAfter(g, fresh, wait)
	}

	if t, ok := g.pending[req.MemberID]; ok {
		t.Stop()
		delete(g.pending, req.MemberID)
		if req.InstanceID != nil {
			if _, taken := g.static[*req.InstanceID]; taken {
				return fail(kerr.FencedInstanceID.Code)
			}
		}
		fresh.id = req.MemberID
		g.add(fresh)
		return waitAfter(g, fresh, wait)
	}
	m, code := g.fenced(req.MemberID, req.InstanceID)
	if code != 0 {
		return fail(code)
	}
	same := m.protoType == req.ProtocolType && sameProtocols(m.protocols, req.Protocols)
	m.protocols, m.protoType, m.session, m.rebalance = req.Protocols, req.ProtocolType, session, rebalance
	m.clientID, m.clientHost = rc.clientID, clientHost(rc)
	switch {
	case g.state == stateCompleting && same:
		r := g.joinResponse(m)
		if m.id == g.leader {
			r.Members = g.completingMembers()
		}
		g.touch(m)
		r.Version = req.Version
		return now(r)
	case g.state == stateStable && same && m.id != g.leader:
		g.touch(m)
		r := g.joinResponse(m)
		r.Version = req.Version
		return now(r)
	}
	if m.joinCh != nil { // a second join from the same member: the first is superseded
		m.joinCh <- joinResult{code: kerr.RebalanceInProgress.Code}
		m.joinCh = nil
	}
	r, err := wait(m)
	g.rebalance()
	return r, err
}

// waitAfter registers m's join wait after add started the rebalance, then
// completes the join if m was the last one missing.
func waitAfter(g *group, m *member, wait func(*member) (reply, error)) (reply, error) {
	r, err := wait(m)
	g.maybeCompleteJoin()
	return r, err
}

// replaceStatic gives a static member's instance to a new member ID,
// fencing the old one.
func (s *Server) replaceStatic(g *group, old, fresh *member, resp *kmsg.JoinGroupResponse, wait func(*member) (reply, error)) (reply, error) {
	same := old.protoType == fresh.protoType && sameProtocols(old.protocols, fresh.protocols)
	delete(g.members, old.id)
	if old.expiry != nil {
		old.expiry.Stop()
	}
	g.answerWaiters(old, kerr.FencedInstanceID.Code)
	fresh.assignment = old.assignment
	g.members[fresh.id] = fresh
	g.static[*fresh.instanceID] = fresh.id
	wasLeader := g.leader == old.id
	if wasLeader {
		g.leader = fresh.id
	}
	s.log.Info("static member replaced", "group", g.name, "instance", *fresh.instanceID, "old", old.id, "new", fresh.id)
	g.recordMembers() // before fresh may own old's partitions
	if g.state == stateStable && same && !wasLeader {
		g.touch(fresh)
		r := g.joinResponse(fresh)
		r.Version = resp.Version
		return now(r)
	}
	r, err := wait(fresh)
	g.rebalance()
	return r, err
}

// completingMembers is the member list the leader gets again when it
// rejoins during CompletingRebalance.
func (g *group) completingMembers() []kmsg.JoinGroupResponseMember {
	var all []kmsg.JoinGroupResponseMember
	for _, m := range g.sortedMembers() {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID, jm.InstanceID, jm.ProtocolMetadata = m.id, m.instanceID, m.metadata(g.protocol)
		all = append(all, jm)
	}
	return all
}

func clientHost(rc *reqCtx) string {
	if rc == nil || rc.conn == nil || rc.conn.nc == nil {
		return ""
	}
	return "/" + rc.conn.nc.RemoteAddr().String()
}
