package agent

// DescribeShareGroupOffsets (key 90): v0-v1, AlterShareGroupOffsets (key
// 91): v0, DeleteShareGroupOffsets (key 92): v0. The share-partition
// start offsets (SPSO) of share groups, as kgo and kadm route them: to the
// group's coordinator.
//
// Describe answers each partition's start offset from etcd (-1 for a
// partition with no state) and, v1, its lag (records from the start
// offset to the high watermark not yet acknowledged or archived; -1 when
// unknown); topics nil means every partition with state. Any agent
// answers it. Alter (only for a group with no member: NON_EMPTY_GROUP
// otherwise, from its coordinator) sets start offsets, forgetting the
// partitions' in-flight records, and creates the share group if needed;
// Delete removes topics' states, so those partitions start again from
// share.auto.offset.reset. A classic group is GROUP_ID_NOT_FOUND; an
// unknown topic UNKNOWN_TOPIC_OR_PARTITION. ACLs, as Kafka checks them:
// DESCRIBE group and topic for Describe (a topic named without DESCRIBE
// is TOPIC_AUTHORIZATION_FAILED; listed in full, it is left out), READ
// group and topic for Alter, DELETE group and READ topic for Delete.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/share"
)

func init() {
	register(kmsg.DescribeShareGroupOffsets, 0, 1, (*Server).handleDescribeShareGroupOffsets, custom(func(g *gate, req *kmsg.DescribeShareGroupOffsetsRequest, run func() (reply, error)) (reply, error) {
		check := g.groupCheck(kmsg.ACLOperationDescribe)
		return filtered(req, describeShareOffsetsGroups, func(x kmsg.DescribeShareGroupOffsetsRequestGroup) int16 { return check(x.GroupID) }, run)
	}, need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup}, need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic}))
	register(kmsg.AlterShareGroupOffsets, 0, 0, (*Server).handleAlterShareGroupOffsets, onGroup(kmsg.ACLOperationRead, alterShareOffsetsGroup).
		alsoInHandler(need{kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic}))
	register(kmsg.DeleteShareGroupOffsets, 0, 0, (*Server).handleDeleteShareGroupOffsets, onGroup(kmsg.ACLOperationDelete, deleteShareOffsetsGroup).
		alsoInHandler(need{kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic}))
}

var describeShareOffsetsGroups = items[*kmsg.DescribeShareGroupOffsetsRequest, *kmsg.DescribeShareGroupOffsetsResponse, kmsg.DescribeShareGroupOffsetsRequestGroup]{
	list: func(r *kmsg.DescribeShareGroupOffsetsRequest) *[]kmsg.DescribeShareGroupOffsetsRequestGroup {
		return &r.Groups
	},
	deny: func(resp *kmsg.DescribeShareGroupOffsetsResponse, g kmsg.DescribeShareGroupOffsetsRequestGroup, code int16) {
		rg := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
		rg.GroupID, rg.ErrorCode = g.GroupID, code
		resp.Groups = append(resp.Groups, rg)
	},
}

var alterShareOffsetsGroup = single[*kmsg.AlterShareGroupOffsetsRequest, *kmsg.AlterShareGroupOffsetsResponse]{
	name:    func(r *kmsg.AlterShareGroupOffsetsRequest) string { return r.GroupID },
	errCode: func(r *kmsg.AlterShareGroupOffsetsResponse) *int16 { return &r.ErrorCode },
}

var deleteShareOffsetsGroup = single[*kmsg.DeleteShareGroupOffsetsRequest, *kmsg.DeleteShareGroupOffsetsResponse]{
	name:    func(r *kmsg.DeleteShareGroupOffsetsRequest) string { return r.GroupID },
	errCode: func(r *kmsg.DeleteShareGroupOffsetsResponse) *int16 { return &r.ErrorCode },
}

func (s *Server) handleDescribeShareGroupOffsets(ctx context.Context, rc *reqCtx, req *kmsg.DescribeShareGroupOffsetsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DescribeShareGroupOffsetsResponse)
	w := s.who(rc)
	for _, rg := range req.Groups {
		resp.Groups = append(resp.Groups, s.describeShareOffsets(ctx, w, rg))
	}
	return now(resp)
}

func (s *Server) describeShareOffsets(ctx context.Context, w who, rg kmsg.DescribeShareGroupOffsetsRequestGroup) kmsg.DescribeShareGroupOffsetsResponseGroup {
	og := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
	og.GroupID = rg.GroupID
	if code := s.shareGroupCode(ctx, rg.GroupID); code != 0 {
		og.ErrorCode = code
		return og
	}
	states, err := s.meta.ShareStates(ctx, rg.GroupID)
	if err != nil {
		og.ErrorCode = errCode(s.log, "describe share group offsets", err)
		return og
	}
	byPart := map[sharePartKey]metastore.ShareState{}
	for _, st := range states {
		byPart[sharePartKey{rg.GroupID, st.TopicID, st.Partition}] = st
	}
	answer := func(t metastore.Topic, p int32) kmsg.DescribeShareGroupOffsetsResponseGroupTopicPartition {
		op := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopicPartition()
		op.Partition, op.StartOffset, op.LeaderEpoch, op.Lag = p, -1, -1, -1
		ss, ok := byPart[sharePartKey{rg.GroupID, t.ID, p}]
		if !ok {
			return op
		}
		st, err := share.Unmarshal(ss.Data)
		if err != nil {
			op.ErrorCode = errCode(s.log, "describe share group offsets: decode", err)
			return op
		}
		op.StartOffset, op.LeaderEpoch = st.Start, 0
		if _, _, hwm, err := s.eng.CachedStableOffsets(ctx, t.ID, p); err == nil {
			st.Expire(time.Now().UnixMilli(), s.shareLimits(ctx, rg.GroupID))
			c := st.Count()
			op.Lag = max(0, hwm-st.Start-int64(c.Acknowledged+c.Archived))
		}
		return op
	}
	if rg.Topics == nil {
		byTopic := map[metastore.TopicID]int{}
		for _, ss := range states {
			t, err := s.topics.getByID(ctx, ss.TopicID)
			if err != nil || !w.canTopic(kmsg.ACLOperationDescribe, t.Name) {
				continue // its topic was deleted, or is not the caller's to see
			}
			j, ok := byTopic[t.ID]
			if !ok {
				ot := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopic()
				ot.Topic, ot.TopicID = t.Name, t.ID
				og.Topics = append(og.Topics, ot)
				j = len(og.Topics) - 1
				byTopic[t.ID] = j
			}
			og.Topics[j].Partitions = append(og.Topics[j].Partitions, answer(t, ss.Partition))
		}
		return og
	}
	for _, rt := range rg.Topics {
		ot := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopic()
		ot.Topic = rt.Topic
		t, err := s.topics.get(ctx, rt.Topic)
		allowed := w.canTopic(kmsg.ACLOperationDescribe, rt.Topic)
		for _, p := range rt.Partitions {
			if !allowed || err != nil || p < 0 || p >= t.Partitions {
				op := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopicPartition()
				op.Partition, op.StartOffset, op.LeaderEpoch, op.Lag = p, -1, -1, -1
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
				if !allowed {
					op.ErrorCode = kerr.TopicAuthorizationFailed.Code
				}
				ot.Partitions = append(ot.Partitions, op)
				continue
			}
			ot.TopicID = t.ID
			ot.Partitions = append(ot.Partitions, answer(t, p))
		}
		og.Topics = append(og.Topics, ot)
	}
	return og
}

// lockEmptyShareGroup locks the group on its coordinator and checks it is
// a share group (or may become one) with no member.
func (s *Server) lockEmptyShareGroup(ctx context.Context, name string, create bool) (*group, int16) {
	if name == "" {
		return nil, kerr.InvalidGroupID.Code
	}
	g, code := s.groups().lock(ctx, name)
	if code != 0 {
		return nil, code
	}
	switch {
	case g.protocolType != "" || len(g.members) > 0 || len(g.pending) > 0:
		code = kerr.GroupIDNotFound.Code
	case g.share.active():
		code = kerr.NonEmptyGroup.Code
	case !s.isShareGroup(ctx, g):
		if !create {
			code = kerr.GroupIDNotFound.Code
		} else if err := s.meta.CreateShareGroup(ctx, name); err != nil {
			code = errCode(s.log, "alter share group offsets: record group", err)
		} else {
			g.share = &shareMembers{members: map[string]*shareMember{}}
		}
	}
	if code != 0 {
		g.mu.Unlock()
		return nil, code
	}
	return g, 0
}

func (s *Server) handleAlterShareGroupOffsets(ctx context.Context, rc *reqCtx, req *kmsg.AlterShareGroupOffsetsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.AlterShareGroupOffsetsResponse)
	g, code := s.lockEmptyShareGroup(ctx, req.GroupID, true)
	if code != 0 {
		resp.ErrorCode = code
		return now(resp)
	}
	defer g.mu.Unlock()
	w := s.who(rc)
	for _, rt := range req.Topics {
		ot := kmsg.NewAlterShareGroupOffsetsResponseTopic()
		ot.Topic = rt.Topic
		t, terr := s.topics.get(ctx, rt.Topic)
		allowed := w.canTopic(kmsg.ACLOperationRead, rt.Topic)
		if allowed {
			ot.TopicID = t.ID
		}
		for _, rp := range rt.Partitions {
			op := kmsg.NewAlterShareGroupOffsetsResponseTopicPartition()
			op.Partition = rp.Partition
			switch {
			case !allowed:
				op.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case terr != nil || rp.Partition < 0 || rp.Partition >= t.Partitions:
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.StartOffset < 0:
				op.ErrorCode = kerr.InvalidRequest.Code
			default:
				k := sharePartKey{req.GroupID, t.ID, rp.Partition}
				err := s.shareReg().update(ctx, k, func() (*share.Partition, error) { return share.New(rp.StartOffset), nil },
					func(st *share.Partition) (bool, error) {
						st.Reset(rp.StartOffset)
						return true, nil
					})
				op.ErrorCode = shareAckCode(s, err)
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return now(resp)
}

func (s *Server) handleDeleteShareGroupOffsets(ctx context.Context, rc *reqCtx, req *kmsg.DeleteShareGroupOffsetsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DeleteShareGroupOffsetsResponse)
	g, code := s.lockEmptyShareGroup(ctx, req.GroupID, false)
	if code != 0 {
		resp.ErrorCode = code
		return now(resp)
	}
	defer g.mu.Unlock()
	w := s.who(rc)
	for _, rt := range req.Topics {
		ot := kmsg.NewDeleteShareGroupOffsetsResponseTopic()
		ot.Topic = rt.Topic
		if !w.canTopic(kmsg.ACLOperationRead, rt.Topic) {
			ot.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, ot)
			continue
		}
		t, err := s.topics.get(ctx, rt.Topic)
		if err != nil {
			ot.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if !errors.Is(err, metastore.ErrTopicNotFound) && !errors.Is(err, metastore.ErrInvalid) {
				ot.ErrorCode = errCode(s.log, "delete share group offsets", err)
			}
			resp.Topics = append(resp.Topics, ot)
			continue
		}
		ot.TopicID = t.ID
		if err := s.meta.DeleteShareStates(ctx, req.GroupID, t.ID); err != nil {
			ot.ErrorCode = errCode(s.log, "delete share group offsets", err)
		}
		s.shareReg().forgetTopic(req.GroupID, t.ID)
		resp.Topics = append(resp.Topics, ot)
	}
	return now(resp)
}
