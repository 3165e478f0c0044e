package agent

// ConsumerGroupHeartbeat (key 68): v0-v1, KIP-848 consumer groups
// (consumer_group.go).
//
// Validation as Kafka's (throwIfConsumerGroupHeartbeatRequestIsInvalid):
// an empty group ID, an empty instance ID, a v1 request without a member
// ID, a join (epoch 0) without a rebalance timeout, without a subscription
// or with owned partitions, a static leave (epoch -2) without an instance
// ID, or an epoch below -2 are INVALID_REQUEST; an assignor other than
// uniform or range is UNSUPPORTED_ASSIGNOR; a regex RE2 cannot compile is
// INVALID_REGULAR_EXPRESSION. Then, on the group: a join of a classic
// group with members converts it when the migration policy allows
// (consumer_group.go, Online migration; else GROUP_ID_NOT_FOUND, and so is
// any other epoch), an empty one becomes a consumer group; an unknown
// member, or a classic member of the group, is UNKNOWN_MEMBER_ID (or
// FENCED_INSTANCE_ID when its instance ID belongs to another member); an
// epoch ahead of the member's, or behind it other than the previous epoch
// with owned partitions within its assignment, is FENCED_MEMBER_EPOCH; a
// join with an instance ID another active member holds is
// UNRELEASED_INSTANCE_ID. The session timeout and heartbeat interval are
// the group's configs consumer.session.timeout.ms and
// consumer.heartbeat.interval.ms when set (to other values than Kafka's
// defaults, 45 s and 5 s), else the agent's (Config.ConsumerSessionTimeout
// and Config.ConsumerHeartbeatInterval, flags
// --group-consumer-session-timeout and --group-consumer-heartbeat-interval,
// Kafka's group.consumer.session.timeout.ms and
// group.consumer.heartbeat.interval.ms).

import (
	"context"
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/assignor"
	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.ConsumerGroupHeartbeat, 0, 1, (*Server).handleConsumerGroupHeartbeat, onGroup(kmsg.ACLOperationRead, consumerHeartbeatGroup))
}

var consumerHeartbeatGroup = single[*kmsg.ConsumerGroupHeartbeatRequest, *kmsg.ConsumerGroupHeartbeatResponse]{
	name:    func(r *kmsg.ConsumerGroupHeartbeatRequest) string { return r.Group },
	errCode: func(r *kmsg.ConsumerGroupHeartbeatResponse) *int16 { return &r.ErrorCode },
}

// consumerTimeouts returns a consumer group's session timeout and
// heartbeat interval: its group configs consumer.session.timeout.ms and
// consumer.heartbeat.interval.ms (group_configs.go) when set to another
// value than Kafka's default, else the agent's (Config).
func (s *Server) consumerTimeouts(ctx context.Context, group string) (session, interval time.Duration) {
	session, interval = DefaultConsumerSessionTimeout, DefaultConsumerHeartbeatInterval
	if s.cfg.ConsumerSessionTimeout > 0 {
		session = s.cfg.ConsumerSessionTimeout
	}
	if s.cfg.ConsumerHeartbeatInterval > 0 {
		interval = s.cfg.ConsumerHeartbeatInterval
	}
	if ms := time.Duration(s.groupConfigInt(ctx, group, "consumer.session.timeout.ms")) * time.Millisecond; ms != DefaultConsumerSessionTimeout {
		session = ms
	}
	if ms := time.Duration(s.groupConfigInt(ctx, group, "consumer.heartbeat.interval.ms")) * time.Millisecond; ms != DefaultConsumerHeartbeatInterval {
		interval = ms
	}
	return session, interval
}

// topicView returns the topics subscriptions resolve against (internal
// ones included, as in Kafka), read again from etcd when older than a
// second.
func (s *Server) topicView(ctx context.Context) (*topicView, error) {
	c := s.groups()
	if tv := c.tv.Load(); tv != nil && time.Since(tv.at) < time.Second {
		return tv, nil
	}
	ts, err := s.topics.list(ctx)
	if err != nil {
		return nil, err
	}
	tv := &topicView{at: time.Now(), byName: map[string]metastore.Topic{}}
	// Internal topics too: Kafka's regex resolution does not skip them
	// (franz-go's Test848RegexBrokerResolves relies on it).
	for _, t := range append(ts, internalTopics...) {
		tv.byName[t.Name] = t
		tv.names = append(tv.names, t.Name)
	}
	slices.Sort(tv.names)
	c.tv.Store(tv)
	return tv, nil
}

// cachedTopicView is the last topic view, for timers (no etcd read under
// the group's lock).
func (c *coordinator) cachedTopicView() *topicView {
	if tv := c.tv.Load(); tv != nil {
		return tv
	}
	return &topicView{byName: map[string]metastore.Topic{}}
}

func invalid(resp *kmsg.ConsumerGroupHeartbeatResponse, msg string) (reply, error) {
	resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, &msg
	return now(resp)
}

func (s *Server) handleConsumerGroupHeartbeat(ctx context.Context, rc *reqCtx, req *kmsg.ConsumerGroupHeartbeatRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	resp.MemberEpoch = req.MemberEpoch
	switch {
	case req.Group == "":
		return invalid(resp, "GroupId can't be empty.")
	case req.InstanceID != nil && *req.InstanceID == "":
		return invalid(resp, "InstanceId can't be empty.")
	case req.Version >= 1 && req.MemberID == "":
		return invalid(resp, "MemberId can't be empty.")
	case req.MemberEpoch < -2:
		return invalid(resp, "MemberEpoch is invalid.")
	case req.MemberEpoch == -2 && req.InstanceID == nil:
		return invalid(resp, "InstanceId can't be null.")
	case req.MemberEpoch == 0 && req.RebalanceTimeoutMillis == -1:
		return invalid(resp, "RebalanceTimeoutMs must be provided in first request.")
	case req.MemberEpoch == 0 && (req.Topics == nil || len(req.Topics) > 0):
		return invalid(resp, "TopicPartitions must be empty when (re-)joining.")
	case req.MemberEpoch == 0 && req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil:
		return invalid(resp, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
	}
	if req.ServerAssignor != nil && !assignor.Valid(*req.ServerAssignor) {
		resp.ErrorCode = kerr.UnsupportedAssignor.Code
		return now(resp)
	}
	var re *regexp.Regexp
	if req.SubscribedTopicRegex != nil {
		var err error
		if re, err = compileSubscriptionRegex(*req.SubscribedTopicRegex); err != nil {
			msg := "SubscribedTopicRegex does not compile: " + err.Error()
			resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRegularExpression.Code, &msg
			return now(resp)
		}
	}
	session, interval := s.consumerTimeouts(ctx, req.Group)
	resp.HeartbeatIntervalMillis = int32(interval.Milliseconds())
	tv, err := s.topicView(ctx)
	if err != nil {
		resp.ErrorCode = errCode(s.log, "consumer group heartbeat: list topics", err)
		return now(resp)
	}
	g, code := s.groups().lock(ctx, req.Group)
	if code != 0 {
		resp.ErrorCode = code
		return now(resp)
	}
	defer g.mu.Unlock()
	if g.cg == nil {
		if len(g.members) > 0 || len(g.pending) > 0 || g.state != stateEmpty {
			// A classic group with members: converted when a member joins
			// and the policy allows it (consumer_group_migration.go).
			code, msg := kerr.GroupIDNotFound.Code, "Group "+req.Group+" is not a consumer group."
			if req.MemberEpoch == 0 {
				code, msg = g.upgradeToConsumer(s.cfg.ConsumerMigrationPolicy, tv, session)
			}
			if code != 0 {
				resp.ErrorCode, resp.ErrorMessage = code, &msg
				return now(resp)
			}
		} else {
			g.cg, g.protocolType = newCgroup(s.cfg.Metrics), "consumer"
		}
	}
	g.cg.session = session
	h := &cgHeartbeat{s: s, g: g, cg: g.cg, req: req, resp: resp, tv: tv, re: re, rc: rc}
	switch req.MemberEpoch {
	case 0:
		h.join()
	case -1:
		h.leave()
	case -2:
		h.staticLeave()
	default:
		h.heartbeat()
	}
	g.syncGroupType()
	return now(resp)
}

// cgHeartbeat is one ConsumerGroupHeartbeat being handled, g.mu held.
type cgHeartbeat struct {
	s    *Server
	g    *group
	cg   *cgroup
	req  *kmsg.ConsumerGroupHeartbeatRequest
	resp *kmsg.ConsumerGroupHeartbeatResponse
	tv   *topicView
	re   *regexp.Regexp
	rc   *reqCtx
}

func (h *cgHeartbeat) owned() []ownedTopic {
	out := make([]ownedTopic, 0, len(h.req.Topics))
	for _, t := range h.req.Topics {
		out = append(out, ownedTopic{id: t.TopicID, parts: t.Partitions})
	}
	return out
}

// subscribe applies the request's subscription and assignor to m and
// reports whether they changed.
func (h *cgHeartbeat) subscribe(m *cmember) bool {
	changed := false
	if h.req.SubscribedTopicNames != nil {
		names := slices.Clone(h.req.SubscribedTopicNames)
		slices.Sort(names)
		names = slices.Compact(names)
		if !slices.Equal(names, m.topics) {
			m.topics, changed = names, true
		}
	}
	if h.req.SubscribedTopicRegex != nil && *h.req.SubscribedTopicRegex != m.regexSrc {
		m.regex, m.regexSrc, changed = h.re, *h.req.SubscribedTopicRegex, true
		if m.regexSrc == "" {
			m.regex = nil
		}
	}
	if h.req.ServerAssignor != nil && *h.req.ServerAssignor != m.assignor {
		m.assignor, changed = *h.req.ServerAssignor, true
	}
	if m.assignor != "" {
		h.cg.assignor = m.assignor
	}
	if h.req.RebalanceTimeoutMillis > 0 {
		m.rebalance = time.Duration(h.req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if h.req.RackID != nil {
		m.rackID = h.req.RackID
	}
	return changed
}

func (h *cgHeartbeat) join() {
	req, cg := h.req, h.cg
	id := req.MemberID
	if id == "" { // v0: the coordinator names the member
		id = newMemberID(h.rc.clientID)
	}
	cg.told(id)
	if m := cg.members[id]; m != nil && m.epoch != -2 {
		if m.classic != nil { // it speaks KIP-848 now
			m.classic.stop()
			m.classic = nil
		}
		// An active member rejoining (after a fencing it did not see,
		// or to resubscribe): it owns nothing now.
		h.rejoin(m)
		return
	}
	if cg.active() >= maxGroupMembers && cg.members[id] == nil {
		h.resp.ErrorCode = kerr.GroupMaxSizeReached.Code
		return
	}
	m := &cmember{id: id, clientID: h.rc.clientID, clientHost: clientHost(h.rc), instanceID: req.InstanceID,
		rebalance: defConsumerRebalanceTimeout, target: map[tid][]int32{}, assigned: map[tid][]int32{}, revoking: map[tid][]int32{}}
	if req.InstanceID != nil {
		if oldID, ok := cg.static[*req.InstanceID]; ok {
			if old := cg.members[oldID]; old != nil {
				if old.epoch != -2 && oldID != id {
					msg := "Static member " + *req.InstanceID + " is still active as " + oldID + "."
					h.resp.ErrorCode, h.resp.ErrorMessage = kerr.UnreleasedInstanceID.Code, &msg
					return
				}
				// The instance comes back: it inherits what it held.
				m.target, m.assigned = cloneAssignment(old.target), cloneAssignment(old.assigned)
				m.assignEpochs, m.topics, m.regex, m.regexSrc, m.assignor = old.assignEpochs, old.topics, old.regex, old.regexSrc, old.assignor
				cg.fence(old)
				delete(cg.members, oldID)
			}
		}
		cg.static[*req.InstanceID] = id
	} else if old := cg.members[id]; old != nil {
		cg.fence(old)
		delete(cg.members, id)
	}
	h.subscribe(m)
	cg.members[id] = m
	cg.bump(h.tv)
	cg.claim(m.assigned, m.id, m.epoch) // an inheriting static member keeps its partitions
	cg.reconcile(m, nil, true)
	h.g.touchConsumer(m)
	h.respond(m, true)
	h.g.c.s.log.Info("consumer group member joined", "group", h.g.name, "member", id, "epoch", m.epoch, "group_epoch", cg.epoch)
}

// rejoin: an active member sent epoch 0. As in Kafka, it keeps its ID and
// its target, and starts over owning nothing.
func (h *cgHeartbeat) rejoin(m *cmember) {
	cg := h.cg
	m.clientID, m.clientHost = h.rc.clientID, clientHost(h.rc)
	cg.release(m.assigned, m.id)
	cg.release(m.revoking, m.id)
	m.assigned, m.revoking, m.assignEpochs, m.state = map[tid][]int32{}, map[tid][]int32{}, nil, cmStable
	m.epoch, m.prevEpoch = 0, 0
	if h.subscribe(m) || h.topicsMoved() {
		cg.bump(h.tv)
	}
	cg.reconcile(m, nil, true)
	h.g.touchConsumer(m)
	h.respond(m, true)
}

// topicsMoved reports whether the subscribed topics' metadata changed
// since the target was computed.
func (h *cgHeartbeat) topicsMoved() bool {
	return h.cg.signature(h.tv) != h.cg.topicSig
}

func (h *cgHeartbeat) leave() {
	cg, id := h.cg, h.req.MemberID
	m := cg.members[id]
	if m == nil {
		cg.told(id)
		h.resp.ErrorCode = kerr.UnknownMemberID.Code
		return
	}
	h.g.removeConsumer(m, "left")
	h.resp.MemberID, h.resp.MemberEpoch = &id, -1
}

// staticLeave: a static member leaves for now (epoch -2); its partitions
// stay reserved for its instance until it rejoins or its session ends.
func (h *cgHeartbeat) staticLeave() {
	cg, id := h.cg, h.req.MemberID
	m := cg.members[id]
	if m == nil {
		h.resp.ErrorCode = kerr.UnknownMemberID.Code
		return
	}
	if m.instanceID == nil || *m.instanceID != *h.req.InstanceID {
		h.g.removeConsumer(m, "left")
		h.resp.MemberID, h.resp.MemberEpoch = &id, -1
		return
	}
	cg.release(m.revoking, m.id)
	m.revoking = map[tid][]int32{}
	if m.rebal != nil {
		m.rebal.Stop()
	}
	m.epoch = -2
	cg.release(m.assigned, m.id)
	cg.claim(m.assigned, m.id, -2)
	h.g.touchConsumer(m) // it is removed for good if it does not come back within the session timeout
	h.resp.MemberID, h.resp.MemberEpoch = &id, -2
}

func (h *cgHeartbeat) heartbeat() {
	req, cg := h.req, h.cg
	m := cg.members[req.MemberID]
	if m == nil || m.epoch == -2 || m.classic != nil {
		if req.InstanceID != nil {
			if owner, ok := cg.static[*req.InstanceID]; ok && owner != req.MemberID {
				h.resp.ErrorCode = kerr.FencedInstanceID.Code
				return
			}
		}
		cg.told(req.MemberID)
		h.resp.ErrorCode = kerr.UnknownMemberID.Code
		return
	}
	if req.MemberEpoch != m.epoch {
		if req.MemberEpoch > m.epoch || req.MemberEpoch != m.prevEpoch || req.Topics == nil || !isSubset(h.owned(), m.assigned) {
			msg := "The member epoch " + itoa(req.MemberEpoch) + " is fenced: the member's epoch is " + itoa(m.epoch) + "."
			h.resp.ErrorCode, h.resp.ErrorMessage = kerr.FencedMemberEpoch.Code, &msg
			return
		}
	}
	h.g.touchConsumer(m)
	full := req.RebalanceTimeoutMillis != -1 && (req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil) && req.Topics != nil
	changed := false
	if full || req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil || req.ServerAssignor != nil {
		changed = h.subscribe(m)
	}
	if changed || h.topicsMoved() {
		cg.bump(h.tv)
	}
	moved := cg.reconcile(m, h.owned(), req.Topics != nil)
	h.respond(m, full || moved)
}

// respond fills the answer and arms m's rebalance timer while it has
// revocations to acknowledge.
func (h *cgHeartbeat) respond(m *cmember, withAssignment bool) {
	id := m.id
	h.resp.MemberID, h.resp.MemberEpoch = &id, m.epoch
	if withAssignment {
		a := new(kmsg.ConsumerGroupHeartbeatResponseAssignment)
		for _, tid := range cgTopicIDs(m.assigned) {
			t := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
			t.TopicID, t.Partitions = tid, slices.Clone(m.assigned[tid])
			a.Topics = append(a.Topics, t)
		}
		h.resp.Assignment = a
	}
	h.g.armRevocation(m)
}
