package agent

// The permission rules of the APIs that check more than one resource, or
// answer a refusal in fields of their own (acl_enforce.go).

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

var offsetCommitTopics = items[*kmsg.OffsetCommitRequest, *kmsg.OffsetCommitResponse, kmsg.OffsetCommitRequestTopic]{
	list: func(r *kmsg.OffsetCommitRequest) *[]kmsg.OffsetCommitRequestTopic { return &r.Topics },
	name: func(t kmsg.OffsetCommitRequestTopic) topicRef { return byNameOrID(t.Topic, t.TopicID) },
	deny: func(resp *kmsg.OffsetCommitResponse, t kmsg.OffsetCommitRequestTopic, code int16) {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	},
}

// authorizeOffsetCommit: READ on the group (else every topic is answered
// GROUP_AUTHORIZATION_FAILED), then READ on each topic.
func authorizeOffsetCommit(g *gate, r *kmsg.OffsetCommitRequest, run func() (reply, error)) (reply, error) {
	if !g.w.canGroup(kmsg.ACLOperationRead, r.Group) {
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, t := range r.Topics {
			offsetCommitTopics.deny(resp, t, codeGroup)
		}
		return now(resp)
	}
	return filtered(r, offsetCommitTopics, topicCheck(g, kmsg.ACLOperationRead, offsetCommitTopics.name), run)
}

var offsetDeleteTopics = items[*kmsg.OffsetDeleteRequest, *kmsg.OffsetDeleteResponse, kmsg.OffsetDeleteRequestTopic]{
	list: func(r *kmsg.OffsetDeleteRequest) *[]kmsg.OffsetDeleteRequestTopic { return &r.Topics },
	name: func(t kmsg.OffsetDeleteRequestTopic) topicRef { return byName(t.Topic) },
	deny: func(resp *kmsg.OffsetDeleteResponse, t kmsg.OffsetDeleteRequestTopic, code int16) {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	},
}

// authorizeOffsetDelete: DELETE on the group, then READ on each topic.
func authorizeOffsetDelete(g *gate, r *kmsg.OffsetDeleteRequest, run func() (reply, error)) (reply, error) {
	if !g.w.canGroup(kmsg.ACLOperationDelete, r.Group) {
		resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = codeGroup
		return now(resp)
	}
	return filtered(r, offsetDeleteTopics, topicCheck(g, kmsg.ACLOperationRead, offsetDeleteTopics.name), run)
}

// offsetFetchPartitions answers partitions refused with code, no offset.
func offsetFetchPartitions[P any](parts []int32, mk func() P, set func(*P, int32, int16), code int16) []P {
	out := make([]P, 0, len(parts))
	for _, p := range parts {
		rp := mk()
		set(&rp, p, code)
		out = append(out, rp)
	}
	return out
}

var offsetFetchGroups = items[*kmsg.OffsetFetchRequest, *kmsg.OffsetFetchResponse, kmsg.OffsetFetchRequestGroup]{
	list: func(r *kmsg.OffsetFetchRequest) *[]kmsg.OffsetFetchRequestGroup { return &r.Groups },
	deny: func(resp *kmsg.OffsetFetchResponse, g kmsg.OffsetFetchRequestGroup, code int16) {
		rg := kmsg.NewOffsetFetchResponseGroup()
		rg.Group, rg.ErrorCode = g.Group, code
		rg.Topics = make([]kmsg.OffsetFetchResponseGroupTopic, 0, len(g.Topics))
		for _, t := range g.Topics {
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			rt.Partitions = offsetFetchPartitions(t.Partitions, kmsg.NewOffsetFetchResponseGroupTopicPartition,
				func(p *kmsg.OffsetFetchResponseGroupTopicPartition, n int32, code int16) {
					p.Partition, p.ErrorCode = n, code
				}, code)
			rg.Topics = append(rg.Topics, rt)
		}
		resp.Groups = append(resp.Groups, rg)
	},
}

var offsetFetchTopics = items[*kmsg.OffsetFetchRequest, *kmsg.OffsetFetchResponse, kmsg.OffsetFetchRequestTopic]{
	list: func(r *kmsg.OffsetFetchRequest) *[]kmsg.OffsetFetchRequestTopic { return &r.Topics },
	name: func(t kmsg.OffsetFetchRequestTopic) topicRef { return byName(t.Topic) },
	deny: func(resp *kmsg.OffsetFetchResponse, t kmsg.OffsetFetchRequestTopic, code int16) {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = offsetFetchPartitions(t.Partitions, kmsg.NewOffsetFetchResponseTopicPartition,
			func(p *kmsg.OffsetFetchResponseTopicPartition, n int32, code int16) {
				p.Partition, p.ErrorCode = n, code
			}, code)
		resp.Topics = append(resp.Topics, rt)
	},
}

// authorizeOffsetFetch: DESCRIBE on the group(s), and offsets of topics the
// principal may not describe are not revealed.
func authorizeOffsetFetch(g *gate, r *kmsg.OffsetFetchRequest, run func() (reply, error)) (reply, error) {
	w := g.w
	if r.Version >= 8 {
		rep, err := filtered(r, offsetFetchGroups, func(x kmsg.OffsetFetchRequestGroup) int16 {
			return g.groupCheck(kmsg.ACLOperationDescribe)(x.Group)
		}, run)
		if err == nil && rep.resp != nil {
			hideOffsetFetchTopics(w, rep.resp.(*kmsg.OffsetFetchResponse))
		}
		return rep, err
	}
	if !w.canGroup(kmsg.ACLOperationDescribe, r.Group) {
		resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = codeGroup
		for _, t := range r.Topics {
			offsetFetchTopics.deny(resp, t, codeGroup)
		}
		return now(resp)
	}
	rep, err := filtered(r, offsetFetchTopics, topicCheck(g, kmsg.ACLOperationDescribe, offsetFetchTopics.name), run)
	if err == nil && rep.resp != nil && r.Topics == nil {
		resp := rep.resp.(*kmsg.OffsetFetchResponse)
		kept := resp.Topics[:0]
		for _, t := range resp.Topics {
			if w.canTopic(kmsg.ACLOperationDescribe, t.Topic) {
				kept = append(kept, t)
			}
		}
		resp.Topics = kept
	}
	return rep, err
}

// hideOffsetFetchTopics answers, in an OffsetFetch v8+ response, the
// partitions of topics the principal may not describe with
// TOPIC_AUTHORIZATION_FAILED and no offset.
func hideOffsetFetchTopics(w who, resp *kmsg.OffsetFetchResponse) {
	for gi := range resp.Groups {
		for ti := range resp.Groups[gi].Topics {
			t := &resp.Groups[gi].Topics[ti]
			if w.canTopic(kmsg.ACLOperationDescribe, t.Topic) {
				continue
			}
			for pi := range t.Partitions {
				p := &t.Partitions[pi]
				p.ErrorCode, p.Offset, p.LeaderEpoch, p.Metadata = codeTopic, -1, -1, nil
			}
		}
	}
}

var findCoordinatorKeys = items[*kmsg.FindCoordinatorRequest, *kmsg.FindCoordinatorResponse, string]{
	list: func(r *kmsg.FindCoordinatorRequest) *[]string { return &r.CoordinatorKeys },
	deny: func(resp *kmsg.FindCoordinatorResponse, key string, code int16) {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.ErrorCode = key, code
		resp.Coordinators = append(resp.Coordinators, c)
	},
}

// authorizeFindCoordinator: DESCRIBE on each group key, or on each
// transactional ID for transaction coordinators.
func authorizeFindCoordinator(g *gate, r *kmsg.FindCoordinatorRequest, run func() (reply, error)) (reply, error) {
	check := func(key string) int16 {
		if r.CoordinatorType == 1 {
			if !g.w.can(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, key) {
				return codeTxnID
			}
			return 0
		}
		return g.groupCheck(kmsg.ACLOperationDescribe)(key)
	}
	if r.Version >= 4 {
		return filtered(r, findCoordinatorKeys, check, run)
	}
	if code := check(r.CoordinatorKey); code != 0 {
		resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.ErrorCode, resp.NodeID, resp.Port = code, -1, -1
		return now(resp)
	}
	return run()
}

// authorizeListGroups lists every group to a principal with DESCRIBE on the
// cluster, else only the groups it may describe.
func authorizeListGroups(g *gate, _ *kmsg.ListGroupsRequest, run func() (reply, error)) (reply, error) {
	rep, err := run()
	if err == nil && rep.resp != nil && !g.w.canCluster(kmsg.ACLOperationDescribe) {
		resp := rep.resp.(*kmsg.ListGroupsResponse)
		kept := resp.Groups[:0]
		for _, x := range resp.Groups {
			if g.w.canGroup(kmsg.ACLOperationDescribe, x.Group) {
				kept = append(kept, x)
			}
		}
		resp.Groups = kept
	}
	return rep, err
}

// authorizeInitProducerID: IDEMPOTENT_WRITE on the cluster or WRITE on any
// topic; WRITE on the transactional ID when one is named.
func authorizeInitProducerID(g *gate, r *kmsg.InitProducerIDRequest, run func() (reply, error)) (reply, error) {
	w := g.w
	ok := w.canCluster(kmsg.ACLOperationIdempotentWrite) || w.z == nil || w.z.AllowedAny(w.principal, w.host, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic)
	code := codeCluster
	if r.TransactionalID != nil {
		ok, code = w.can(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *r.TransactionalID), codeTxnID
	}
	if !ok {
		resp := r.ResponseKind().(*kmsg.InitProducerIDResponse)
		resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch = code, -1, -1
		return now(resp)
	}
	return run()
}

var metadataTopics = items[*kmsg.MetadataRequest, *kmsg.MetadataResponse, kmsg.MetadataRequestTopic]{
	list: func(r *kmsg.MetadataRequest) *[]kmsg.MetadataRequestTopic { return &r.Topics },
	name: func(t kmsg.MetadataRequestTopic) topicRef { return topicRef{name: t.Topic, id: t.TopicID} },
	deny: func(resp *kmsg.MetadataResponse, t kmsg.MetadataRequestTopic, code int16) {
		rt := kmsg.NewMetadataResponseTopic()
		rt.Topic, rt.TopicID, rt.ErrorCode = t.Topic, t.TopicID, code
		resp.Topics = append(resp.Topics, rt)
	},
}

// authorizeMetadata hides topics the principal may not describe and
// refuses auto-creation without CREATE.
func authorizeMetadata(g *gate, r *kmsg.MetadataRequest, run func() (reply, error)) (reply, error) {
	w, rc := g.w, g.rc
	denied, codes := filterItems(&r.Topics, topicCheck(g, kmsg.ACLOperationDescribe, metadataTopics.name))
	for _, t := range r.Topics {
		if t.Topic != nil && !w.canCluster(kmsg.ACLOperationCreate) && !w.canTopic(kmsg.ACLOperationCreate, *t.Topic) {
			rc.noAutoCreate = true
		}
	}
	if len(denied) > 0 && len(r.Topics) == 0 && r.Version == 0 {
		r.Topics = nil // v0: an empty list would mean "all topics"
		rc.noAutoCreate = true
	}
	rep, err := run()
	if err != nil || rep.resp == nil {
		return rep, err
	}
	resp := rep.resp.(*kmsg.MetadataResponse)
	kept := resp.Topics[:0]
	for _, t := range resp.Topics {
		if t.ErrorCode != 0 || t.Topic == nil || w.canTopic(kmsg.ACLOperationDescribe, *t.Topic) {
			kept = append(kept, t)
		}
	}
	resp.Topics = kept
	for i := range denied {
		metadataTopics.deny(resp, denied[i], codes[i])
	}
	return rep, nil
}
