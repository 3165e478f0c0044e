package agent

// ConsumerGroupDescribe (key 69): v0-v1, KIP-848 consumer groups.
//
// The coordinator describes the group from memory: state (Empty,
// Assigning, Reconciling, Stable), group epoch, target assignment epoch,
// assignor, and each member with its epoch, subscription (names and
// regex), current assignment and target assignment, topic names filled
// from the agent's topic view. A group another agent coordinates is
// NOT_COORDINATOR; one nobody coordinates is Empty if it is a KIP-848
// group (its type recorded in etcd), else GROUP_ID_NOT_FOUND, as is a
// classic group, as in Kafka. A group whose members subscribe to or
// are assigned (now or as target) a topic the caller may not DESCRIBE is
// TOPIC_AUTHORIZATION_FAILED, with no members, as Kafka answers it.

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.ConsumerGroupDescribe, 0, 1, (*Server).handleConsumerGroupDescribe, onGroups(kmsg.ACLOperationDescribe, consumerGroupDescribeGroups).
		alsoInHandler(need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic}))
}

var consumerGroupDescribeGroups = items[*kmsg.ConsumerGroupDescribeRequest, *kmsg.ConsumerGroupDescribeResponse, string]{
	list: func(r *kmsg.ConsumerGroupDescribeRequest) *[]string { return &r.Groups },
	deny: func(resp *kmsg.ConsumerGroupDescribeResponse, g string, code int16) {
		rg := kmsg.NewConsumerGroupDescribeResponseGroup()
		rg.Group, rg.ErrorCode = g, code
		resp.Groups = append(resp.Groups, rg)
	},
}

func (s *Server) handleConsumerGroupDescribe(ctx context.Context, rc *reqCtx, req *kmsg.ConsumerGroupDescribeRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	w := s.who(rc)
	_, _ = s.topicView(ctx) // names for the assignments; an old view will do
	for _, name := range req.Groups {
		d := s.describeConsumerGroup(ctx, name)
		if d.ErrorCode == 0 {
			var topics []string
			for _, m := range d.Members {
				topics = append(topics, m.SubscribedTopics...)
				topics = appendAssignedTopics(topics, m.Assignment, m.TargetAssignment)
			}
			var code int16
			if d.AuthorizedOperations, code = w.describedGroup(name, req.IncludeAuthorizedOperations, topics); code != 0 {
				d = kmsg.NewConsumerGroupDescribeResponseGroup()
				d.Group, d.ErrorCode, d.ErrorMessage = name, code, kmsg.StringPtr(describedTopicsDenied)
			}
		}
		resp.Groups = append(resp.Groups, d)
	}
	return now(resp)
}

func (s *Server) describeConsumerGroup(ctx context.Context, name string) kmsg.ConsumerGroupDescribeResponseGroup {
	d := kmsg.NewConsumerGroupDescribeResponseGroup()
	d.Group, d.AuthorizedOperations = name, -2147483648
	if name == "" {
		d.ErrorCode = kerr.InvalidGroupID.Code
		return d
	}
	notFound := func() kmsg.ConsumerGroupDescribeResponseGroup {
		msg := "Group " + name + " not found."
		d.ErrorCode, d.ErrorMessage = kerr.GroupIDNotFound.Code, &msg
		return d
	}
	if g := s.groups().lookup(name); g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.state == stateDead {
			return notFound()
		}
		if g.cg == nil {
			msg := "Group " + name + " is not a consumer group."
			d.ErrorCode, d.ErrorMessage = kerr.GroupIDNotFound.Code, &msg
			return d
		}
		cg := g.cg
		names := g.c.topicNames()
		d.State, d.Epoch, d.AssignmentEpoch, d.AssignorName = cg.state(), cg.epoch, cg.targetEpoch, cg.assignor
		if d.AssignorName == "" {
			d.AssignorName = "uniform"
		}
		for _, m := range cg.sortedMembers() {
			dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
			dm.MemberID, dm.InstanceID, dm.RackID, dm.MemberEpoch = m.id, m.instanceID, m.rackID, m.epoch
			dm.ClientID, dm.ClientHost, dm.SubscribedTopics, dm.MemberType = m.clientID, m.clientHost, m.topics, 1
			if m.classic != nil {
				dm.MemberType = 0 // a classic member (consumer_group_migration.go)
			}
			if m.regex != nil {
				src := m.regexSrc
				dm.SubscribedTopicRegex = &src
			}
			if dm.SubscribedTopics == nil {
				dm.SubscribedTopics = []string{}
			}
			dm.Assignment, dm.TargetAssignment = describedAssignment(m.assigned, names), describedAssignment(m.target, names)
			d.Members = append(d.Members, dm)
		}
		return d
	}
	holder, err := s.meta.GroupCoordinator(ctx, name)
	if err != nil {
		d.ErrorCode = errCode(s.log, "consumer group describe", err)
		return d
	}
	if holder >= 0 {
		d.ErrorCode = kerr.NotCoordinator.Code
		return d
	}
	// Nobody coordinates it: a KIP-848 group whose members left (its type
	// is recorded) is Empty, as Kafka describes it until it is deleted.
	typ, err := s.meta.GroupType(ctx, name)
	if err != nil {
		d.ErrorCode = errCode(s.log, "consumer group describe", err)
		return d
	}
	if !metastore.IsConsumerType(typ) {
		return notFound()
	}
	d.State, d.AssignorName, d.Members = "Empty", "uniform", []kmsg.ConsumerGroupDescribeResponseGroupMember{}
	return d
}

func describedAssignment(a map[tid][]int32, names map[tid]string) kmsg.Assignment {
	var out kmsg.Assignment
	out.TopicPartitions = []kmsg.AssignmentTopicPartition{}
	for _, id := range cgTopicIDs(a) {
		tp := kmsg.NewAssignmentTopicPartition()
		tp.TopicID, tp.Topic, tp.Partitions = id, names[id], a[id]
		out.TopicPartitions = append(out.TopicPartitions, tp)
	}
	return out
}

// topicNames maps topic IDs to names from the last topic view.
func (c *coordinator) topicNames() map[tid]string {
	tv := c.cachedTopicView()
	out := make(map[tid]string, len(tv.byName))
	for n, t := range tv.byName {
		out[tid(t.ID)] = n
	}
	return out
}

func (cg *cgroup) sortedMembers() []*cmember {
	out := make([]*cmember, 0, len(cg.members))
	for _, m := range cg.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *cmember) int { return strings.Compare(a.id, b.id) })
	return out
}

// describeConsumer fills a DescribeGroups answer for a KIP-848 group, g.mu
// held (describe_groups.go).
func (g *group) describeConsumer(d kmsg.DescribeGroupsResponseGroup) kmsg.DescribeGroupsResponseGroup {
	cg := g.cg
	names := g.c.topicNames()
	d.State, d.ProtocolType, d.Protocol = cg.state(), "consumer", cg.assignor
	if d.Protocol == "" {
		d.Protocol = "uniform"
	}
	for _, m := range cg.sortedMembers() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
		md := kmsg.NewConsumerMemberMetadata()
		md.Version = 3
		md.Topics = append([]string{}, m.topics...)
		md.Rack = m.rackID
		dm.ProtocolMetadata = md.AppendTo(nil)
		if m.classic != nil && len(m.classic.protocols) > 0 {
			dm.ProtocolMetadata = m.classic.protocols[0].Metadata // what it joined with
		}
		ma := kmsg.NewConsumerMemberAssignment()
		ma.Version = 3
		for _, id := range cgTopicIDs(m.assigned) {
			t := kmsg.NewConsumerMemberAssignmentTopic()
			t.Topic, t.Partitions = names[id], m.assigned[id]
			ma.Topics = append(ma.Topics, t)
		}
		dm.MemberAssignment = ma.AppendTo(nil)
		d.Members = append(d.Members, dm)
	}
	return d
}

// appendAssignedTopics appends the topic names of assignments to topics.
func appendAssignedTopics(topics []string, as ...kmsg.Assignment) []string {
	for _, a := range as {
		for _, tp := range a.TopicPartitions {
			topics = append(topics, tp.Topic)
		}
	}
	return topics
}
