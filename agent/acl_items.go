package agent

// Typed accessors of the items each API's permission checks (acl_enforce.go),
// and the rules of the APIs whose permission is more than a list of items.
// A refused item is answered by a response item carrying its key fields,
// the fields the request and response items share, and the error code at
// every level.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// topicRef is how an item names its topic: by name (when name is set) or
// by ID.
type topicRef struct {
	name *string
	id   [16]byte
}

// byName: an item naming its topic in a string field (empty: none).
func byName(t string) topicRef { return byNameOrID(t, [16]byte{}) }

// byNameOrID: an item with a topic name field, empty when it uses its ID.
func byNameOrID(t string, id [16]byte) topicRef {
	if t != "" {
		return topicRef{name: &t}
	}
	return topicRef{id: id}
}

// topicName: an item that is a topic name.
func topicName(t string) topicRef { return topicRef{name: &t} }

var produceTopics = items[*kmsg.ProduceRequest, *kmsg.ProduceResponse, kmsg.ProduceRequestTopic]{
	list: func(r *kmsg.ProduceRequest) *[]kmsg.ProduceRequestTopic { return &r.Topics },
	name: func(t kmsg.ProduceRequestTopic) topicRef { return byNameOrID(t.Topic, t.TopicID) },
	deny: func(resp *kmsg.ProduceResponse, t kmsg.ProduceRequestTopic, code int16) {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	},
}

// authorizeProduce: WRITE on each topic. With acks=0 nothing is answered,
// not even when every topic is refused.
func authorizeProduce(g *gate, r *kmsg.ProduceRequest, run func() (reply, error)) (reply, error) {
	check := topicCheck(g, kmsg.ACLOperationWrite, produceTopics.name)
	if r.Acks == 0 {
		denied, _ := filterItems(&r.Topics, check)
		if len(denied) > 0 && len(r.Topics) == 0 {
			return reply{noResponse: true}, nil
		}
		return run()
	}
	return filtered(r, produceTopics, check, run)
}

var listOffsetsTopics = items[*kmsg.ListOffsetsRequest, *kmsg.ListOffsetsResponse, kmsg.ListOffsetsRequestTopic]{
	list: func(r *kmsg.ListOffsetsRequest) *[]kmsg.ListOffsetsRequestTopic { return &r.Topics },
	name: func(t kmsg.ListOffsetsRequestTopic) topicRef { return byName(t.Topic) },
	deny: func(resp *kmsg.ListOffsetsResponse, t kmsg.ListOffsetsRequestTopic, code int16) {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition, rp.ErrorCode, rp.Timestamp = p.Partition, code, p.Timestamp
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	},
}

var describeProducersTopics = items[*kmsg.DescribeProducersRequest, *kmsg.DescribeProducersResponse, kmsg.DescribeProducersRequestTopic]{
	list: func(r *kmsg.DescribeProducersRequest) *[]kmsg.DescribeProducersRequestTopic { return &r.Topics },
	name: func(t kmsg.DescribeProducersRequestTopic) topicRef { return byName(t.Topic) },
	deny: func(resp *kmsg.DescribeProducersResponse, t kmsg.DescribeProducersRequestTopic, code int16) {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	},
}

var offsetForLeaderEpochTopics = items[*kmsg.OffsetForLeaderEpochRequest, *kmsg.OffsetForLeaderEpochResponse, kmsg.OffsetForLeaderEpochRequestTopic]{
	list: func(r *kmsg.OffsetForLeaderEpochRequest) *[]kmsg.OffsetForLeaderEpochRequestTopic { return &r.Topics },
	name: func(t kmsg.OffsetForLeaderEpochRequestTopic) topicRef { return byName(t.Topic) },
	deny: func(resp *kmsg.OffsetForLeaderEpochResponse, t kmsg.OffsetForLeaderEpochRequestTopic, code int16) {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition, rp.ErrorCode, rp.LeaderEpoch = p.Partition, code, p.LeaderEpoch
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	},
}

var deleteRecordsTopics = items[*kmsg.DeleteRecordsRequest, *kmsg.DeleteRecordsResponse, kmsg.DeleteRecordsRequestTopic]{
	list: func(r *kmsg.DeleteRecordsRequest) *[]kmsg.DeleteRecordsRequestTopic { return &r.Topics },
	name: func(t kmsg.DeleteRecordsRequestTopic) topicRef { return byName(t.Topic) },
	deny: func(resp *kmsg.DeleteRecordsResponse, t kmsg.DeleteRecordsRequestTopic, code int16) {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	},
}

var createPartitionsTopics = items[*kmsg.CreatePartitionsRequest, *kmsg.CreatePartitionsResponse, kmsg.CreatePartitionsRequestTopic]{
	list: func(r *kmsg.CreatePartitionsRequest) *[]kmsg.CreatePartitionsRequestTopic { return &r.Topics },
	name: func(t kmsg.CreatePartitionsRequestTopic) topicRef { return byName(t.Topic) },
	deny: func(resp *kmsg.CreatePartitionsResponse, t kmsg.CreatePartitionsRequestTopic, code int16) {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic, rt.ErrorCode = t.Topic, code
		resp.Topics = append(resp.Topics, rt)
	},
}

var createTopicsTopics = items[*kmsg.CreateTopicsRequest, *kmsg.CreateTopicsResponse, kmsg.CreateTopicsRequestTopic]{
	list: func(r *kmsg.CreateTopicsRequest) *[]kmsg.CreateTopicsRequestTopic { return &r.Topics },
	name: func(t kmsg.CreateTopicsRequestTopic) topicRef { return byName(t.Topic) },
	deny: func(resp *kmsg.CreateTopicsResponse, t kmsg.CreateTopicsRequestTopic, code int16) {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic, rt.ErrorCode = t.Topic, code
		rt.NumPartitions, rt.ReplicationFactor = t.NumPartitions, t.ReplicationFactor
		rt.Configs = make([]kmsg.CreateTopicsResponseTopicConfig, 0, len(t.Configs))
		for _, c := range t.Configs {
			rc := kmsg.NewCreateTopicsResponseTopicConfig()
			rc.Name, rc.Value = c.Name, c.Value
			rt.Configs = append(rt.Configs, rc)
		}
		resp.Topics = append(resp.Topics, rt)
	},
}

// authorizeCreateTopics: CREATE on the cluster, or else on each topic.
func authorizeCreateTopics(g *gate, r *kmsg.CreateTopicsRequest, run func() (reply, error)) (reply, error) {
	if g.w.canCluster(kmsg.ACLOperationCreate) {
		return run()
	}
	return filtered(r, createTopicsTopics, topicCheck(g, kmsg.ACLOperationCreate, createTopicsTopics.name), run)
}

func denyDeleteTopic(resp *kmsg.DeleteTopicsResponse, name *string, id [16]byte, code int16) {
	rt := kmsg.NewDeleteTopicsResponseTopic()
	rt.Topic, rt.TopicID, rt.ErrorCode = name, id, code
	resp.Topics = append(resp.Topics, rt)
}

var deleteTopicNames = items[*kmsg.DeleteTopicsRequest, *kmsg.DeleteTopicsResponse, string]{
	list: func(r *kmsg.DeleteTopicsRequest) *[]string { return &r.TopicNames },
	name: topicName,
	deny: func(resp *kmsg.DeleteTopicsResponse, t string, code int16) {
		denyDeleteTopic(resp, &t, [16]byte{}, code)
	},
}

var deleteTopicsTopics = items[*kmsg.DeleteTopicsRequest, *kmsg.DeleteTopicsResponse, kmsg.DeleteTopicsRequestTopic]{
	list: func(r *kmsg.DeleteTopicsRequest) *[]kmsg.DeleteTopicsRequestTopic { return &r.Topics },
	name: func(t kmsg.DeleteTopicsRequestTopic) topicRef { return topicRef{name: t.Topic, id: t.TopicID} },
	deny: func(resp *kmsg.DeleteTopicsResponse, t kmsg.DeleteTopicsRequestTopic, code int16) {
		denyDeleteTopic(resp, t.Topic, t.TopicID, code)
	},
}

// authorizeDeleteTopics: DELETE on each topic, named (v0-v5) or named or
// identified (v6+).
func authorizeDeleteTopics(g *gate, r *kmsg.DeleteTopicsRequest, run func() (reply, error)) (reply, error) {
	if r.Version < 6 {
		return filtered(r, deleteTopicNames, topicCheck(g, kmsg.ACLOperationDelete, deleteTopicNames.name), run)
	}
	return filtered(r, deleteTopicsTopics, topicCheck(g, kmsg.ACLOperationDelete, deleteTopicsTopics.name), run)
}

var describeConfigsResources = items[*kmsg.DescribeConfigsRequest, *kmsg.DescribeConfigsResponse, kmsg.DescribeConfigsRequestResource]{
	list: func(r *kmsg.DescribeConfigsRequest) *[]kmsg.DescribeConfigsRequestResource { return &r.Resources },
	deny: func(resp *kmsg.DescribeConfigsResponse, c kmsg.DescribeConfigsRequestResource, code int16) {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName, rr.ErrorCode = c.ResourceType, c.ResourceName, code
		resp.Resources = append(resp.Resources, rr)
	},
}

func describeConfigsResource(c kmsg.DescribeConfigsRequestResource) (kmsg.ConfigResourceType, string) {
	return c.ResourceType, c.ResourceName
}

var alterConfigsResources = items[*kmsg.AlterConfigsRequest, *kmsg.AlterConfigsResponse, kmsg.AlterConfigsRequestResource]{
	list: func(r *kmsg.AlterConfigsRequest) *[]kmsg.AlterConfigsRequestResource { return &r.Resources },
	deny: func(resp *kmsg.AlterConfigsResponse, c kmsg.AlterConfigsRequestResource, code int16) {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName, rr.ErrorCode = c.ResourceType, c.ResourceName, code
		resp.Resources = append(resp.Resources, rr)
	},
}

func alterConfigsResource(c kmsg.AlterConfigsRequestResource) (kmsg.ConfigResourceType, string) {
	return c.ResourceType, c.ResourceName
}

var incrementalAlterConfigsResources = items[*kmsg.IncrementalAlterConfigsRequest, *kmsg.IncrementalAlterConfigsResponse, kmsg.IncrementalAlterConfigsRequestResource]{
	list: func(r *kmsg.IncrementalAlterConfigsRequest) *[]kmsg.IncrementalAlterConfigsRequestResource {
		return &r.Resources
	},
	deny: func(resp *kmsg.IncrementalAlterConfigsResponse, c kmsg.IncrementalAlterConfigsRequestResource, code int16) {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName, rr.ErrorCode = c.ResourceType, c.ResourceName, code
		resp.Resources = append(resp.Resources, rr)
	},
}

func incrementalAlterConfigsResource(c kmsg.IncrementalAlterConfigsRequestResource) (kmsg.ConfigResourceType, string) {
	return c.ResourceType, c.ResourceName
}

var describeGroupsGroups = items[*kmsg.DescribeGroupsRequest, *kmsg.DescribeGroupsResponse, string]{
	list: func(r *kmsg.DescribeGroupsRequest) *[]string { return &r.Groups },
	deny: func(resp *kmsg.DescribeGroupsResponse, g string, code int16) {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group, rg.ErrorCode = g, code
		resp.Groups = append(resp.Groups, rg)
	},
}

var deleteGroupsGroups = items[*kmsg.DeleteGroupsRequest, *kmsg.DeleteGroupsResponse, string]{
	list: func(r *kmsg.DeleteGroupsRequest) *[]string { return &r.Groups },
	deny: func(resp *kmsg.DeleteGroupsResponse, g string, code int16) {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group, rg.ErrorCode = g, code
		resp.Groups = append(resp.Groups, rg)
	},
}

var joinGroupGroup = single[*kmsg.JoinGroupRequest, *kmsg.JoinGroupResponse]{
	name:    func(r *kmsg.JoinGroupRequest) string { return r.Group },
	errCode: func(r *kmsg.JoinGroupResponse) *int16 { return &r.ErrorCode },
}

var syncGroupGroup = single[*kmsg.SyncGroupRequest, *kmsg.SyncGroupResponse]{
	name:    func(r *kmsg.SyncGroupRequest) string { return r.Group },
	errCode: func(r *kmsg.SyncGroupResponse) *int16 { return &r.ErrorCode },
}

var heartbeatGroup = single[*kmsg.HeartbeatRequest, *kmsg.HeartbeatResponse]{
	name:    func(r *kmsg.HeartbeatRequest) string { return r.Group },
	errCode: func(r *kmsg.HeartbeatResponse) *int16 { return &r.ErrorCode },
}

var leaveGroupGroup = single[*kmsg.LeaveGroupRequest, *kmsg.LeaveGroupResponse]{
	name:    func(r *kmsg.LeaveGroupRequest) string { return r.Group },
	errCode: func(r *kmsg.LeaveGroupResponse) *int16 { return &r.ErrorCode },
}

var describeClusterCluster = single[*kmsg.DescribeClusterRequest, *kmsg.DescribeClusterResponse]{
	errCode: func(r *kmsg.DescribeClusterResponse) *int16 { return &r.ErrorCode },
}
