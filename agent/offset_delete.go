package agent

// OffsetDelete (key 47): v0.
//
// As in Kafka: deletes committed offsets of a group's partitions, unless
// the group has members whose consumer subscription includes the topic
// (GROUP_SUBSCRIBED_TO_TOPIC for each of its partitions). A group nobody
// knows is GROUP_ID_NOT_FOUND; an unknown topic UNKNOWN_TOPIC_OR_PARTITION.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.OffsetDelete, 0, 0, (*Server).handleOffsetDelete, custom(authorizeOffsetDelete, need{kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup}, need{kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic}))
}

func (s *Server) handleOffsetDelete(ctx context.Context, _ *reqCtx, req *kmsg.OffsetDeleteRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	g, code := s.groups().lock(ctx, req.Group)
	if code != 0 {
		resp.ErrorCode = code
		return now(resp)
	}
	defer g.mu.Unlock()
	offs, err := s.meta.FetchGroupOffsets(ctx, req.Group)
	if err != nil {
		resp.ErrorCode = errCode(s.log, "offset delete", err)
		return now(resp)
	}
	if len(offs) == 0 && len(g.members) == 0 && !g.consumerMembersLeft() {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return now(resp)
	}
	subscribed := g.subscribedTopics()
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		_, terr := s.topics.get(ctx, t.Topic)
		var del []int32
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case terr != nil:
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case subscribed[t.Topic]:
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			default:
				del = append(del, p.Partition)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(del) > 0 {
			if err := s.meta.DeleteGroupOffsets(ctx, g.name, g.lease, t.Topic, del); err != nil {
				code := groupErr(s, "offset delete", err)
				for i := range rt.Partitions {
					if rt.Partitions[i].ErrorCode == 0 {
						rt.Partitions[i].ErrorCode = code
					}
				}
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return now(resp)
}

// subscribedTopics returns the topics the members' consumer-protocol
// metadata subscribes to (none for other protocol types).
func (g *group) subscribedTopics() map[string]bool {
	out := map[string]bool{}
	if g.cg != nil {
		tv := g.c.cachedTopicView()
		for _, m := range g.cg.members {
			for _, t := range m.resolve(tv) {
				out[t] = true
			}
		}
		return out
	}
	if g.protocolType != "consumer" {
		return out
	}
	for _, m := range g.members {
		md := m.metadata(g.protocol)
		if g.protocol == "" && len(m.protocols) > 0 {
			md = m.protocols[0].Metadata
		}
		var cm kmsg.ConsumerMemberMetadata
		if err := cm.ReadFrom(md); err != nil {
			continue
		}
		for _, t := range cm.Topics {
			out[t] = true
		}
	}
	return out
}
