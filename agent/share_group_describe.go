package agent

// ShareGroupDescribe (key 77): v0-v1.
//
// Answered by the group's coordinator (NOT_COORDINATOR elsewhere): state
// (Empty or Stable), group and assignment epochs, assignor "simple", and
// every member with its assignment. A group that is not a share group is
// GROUP_ID_NOT_FOUND. Authorized operations are filled when asked. A
// group whose members subscribe to or are assigned a topic the caller may
// not DESCRIBE is TOPIC_AUTHORIZATION_FAILED, with no members, as in Kafka.

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.ShareGroupDescribe, 0, 1, (*Server).handleShareGroupDescribe, onGroups(kmsg.ACLOperationDescribe, shareGroupDescribeItems).
		alsoInHandler(need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic}))
}

var shareGroupDescribeItems = items[*kmsg.ShareGroupDescribeRequest, *kmsg.ShareGroupDescribeResponse, string]{
	list: func(r *kmsg.ShareGroupDescribeRequest) *[]string { return &r.GroupIDs },
	deny: func(resp *kmsg.ShareGroupDescribeResponse, g string, code int16) {
		rg := kmsg.NewShareGroupDescribeResponseGroup()
		rg.GroupID, rg.ErrorCode = g, code
		resp.Groups = append(resp.Groups, rg)
	},
}

func (s *Server) handleShareGroupDescribe(ctx context.Context, rc *reqCtx, req *kmsg.ShareGroupDescribeRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
	w := s.who(rc)
	for _, name := range req.GroupIDs {
		rg := s.describeShareGroup(ctx, name)
		if rg.ErrorCode == 0 {
			var topics []string
			for _, m := range rg.Members {
				topics = append(topics, m.SubscribedTopicNames...)
				for _, tp := range m.Assignment.TopicPartitions {
					topics = append(topics, tp.Topic)
				}
			}
			var code int16
			if rg.AuthorizedOperations, code = w.describedGroup(name, req.IncludeAuthorizedOperations, topics); code != 0 {
				rg = kmsg.NewShareGroupDescribeResponseGroup()
				rg.GroupID, rg.ErrorCode, rg.ErrorMessage = name, code, kmsg.StringPtr(describedTopicsDenied)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return now(resp)
}

func (s *Server) describeShareGroup(ctx context.Context, name string) kmsg.ShareGroupDescribeResponseGroup {
	rg := kmsg.NewShareGroupDescribeResponseGroup()
	rg.GroupID = name
	rg.AuthorizedOperations = -2147483648
	if name == "" {
		rg.ErrorCode = kerr.InvalidGroupID.Code
		return rg
	}
	g, code := s.groups().lock(ctx, name)
	if code != 0 {
		rg.ErrorCode = code
		return rg
	}
	defer g.mu.Unlock()
	if !s.isShareGroup(ctx, g) {
		rg.ErrorCode = kerr.GroupIDNotFound.Code
		rg.ErrorMessage = kmsg.StringPtr("group " + name + " is not a share group")
		return rg
	}
	rg.GroupState, rg.Assignor = "Empty", "simple"
	sm := g.share
	if sm == nil {
		return rg
	}
	if len(sm.members) > 0 {
		rg.GroupState = "Stable"
	}
	rg.GroupEpoch, rg.AssignmentEpoch = sm.epoch, sm.epoch
	for _, m := range sortedShareMembers(sm) {
		dm := kmsg.NewShareGroupDescribeResponseGroupMember()
		dm.MemberID, dm.RackID, dm.MemberEpoch = m.id, m.rack, m.epoch
		dm.ClientID, dm.ClientHost, dm.SubscribedTopicNames = m.clientID, m.host, m.topics
		for _, id := range sortedTopicIDs(m.assignment) {
			tp := kmsg.NewShareGroupDescribeResponseGroupMemberAssignmentTopicPartition()
			tp.TopicID, tp.Partitions = id, m.assignment[id]
			if t, err := s.topics.getByID(ctx, id); err == nil {
				tp.Topic = t.Name
			}
			dm.Assignment.TopicPartitions = append(dm.Assignment.TopicPartitions, tp)
		}
		rg.Members = append(rg.Members, dm)
	}
	return rg
}

func sortedShareMembers(sm *shareMembers) []*shareMember {
	out := make([]*shareMember, 0, len(sm.members))
	for _, m := range sm.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *shareMember) int { return strings.Compare(a.id, b.id) })
	return out
}
