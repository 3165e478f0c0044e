package agent

// CreateTopics (key 19): v0-v7.
//
// NumPartitions must be 1..100000, or -1 for Config.DefaultPartitions (v4+).
// The replication factor is accepted and ignored when it is -1 or >= 1
// (durability comes from the bucket, not from replicas); other values are
// INVALID_REPLICATION_FACTOR. A manual replica assignment only fixes the
// partition count (its broker IDs are ignored); it requires NumPartitions and
// ReplicationFactor -1, as in Kafka. Configs are validated against the topic
// configs shale knows (configs.go): unknown names, bad values and configs
// shale cannot honour (message.timestamp.type=LogAppendTime) are
// INVALID_CONFIG, with a message naming the config and why.
// ValidateOnly checks everything without creating. From v5 the answer
// carries the partition count, replication factor 1 and the topic's configs;
// from v7 the topic ID. A topic named twice in one request is
// INVALID_REQUEST for both, as in Kafka.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.CreateTopics, 0, 7, (*Server).handleCreateTopics, custom(authorizeCreateTopics, need{kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic}))
}

func (s *Server) handleCreateTopics(ctx context.Context, _ *reqCtx, req *kmsg.CreateTopicsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := make(map[string]int, len(req.Topics))
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		ot := kmsg.NewCreateTopicsResponseTopic()
		ot.Topic = rt.Topic
		if seen[rt.Topic] > 1 {
			ot.ErrorCode = kerr.InvalidRequest.Code
			ot.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("topic %q is named more than once in the request", rt.Topic))
			resp.Topics = append(resp.Topics, ot)
			continue
		}
		partitions, configs, kerrv, err := s.checkNewTopic(&rt)
		if err == nil && !req.ValidateOnly {
			var t metastore.Topic
			t, err = s.meta.CreateTopic(ctx, rt.Topic, partitions, configs)
			switch {
			case errors.Is(err, metastore.ErrTopicExists):
				kerrv, err = kerr.TopicAlreadyExists, fmt.Errorf("topic %q already exists", rt.Topic)
			case errors.Is(err, metastore.ErrInvalid):
				kerrv = kerr.InvalidRequest
			case err != nil:
				ot.ErrorCode = errCode(s.log, "create topic", err)
				ot.ErrorMessage = errMessage(err)
				resp.Topics = append(resp.Topics, ot)
				continue
			default:
				s.topics.put(t)
				ot.TopicID = t.ID
				s.log.Info("topic created", "topic", t.Name, "partitions", t.Partitions, "id", t.ID.String())
			}
		} else if err == nil && req.ValidateOnly {
			if _, gerr := s.meta.GetTopic(ctx, rt.Topic); gerr == nil {
				kerrv, err = kerr.TopicAlreadyExists, fmt.Errorf("topic %q already exists", rt.Topic)
			}
		}
		if err != nil {
			ot.ErrorCode = kerrv.Code
			ot.ErrorMessage = errMessage(err)
			resp.Topics = append(resp.Topics, ot)
			continue
		}
		ot.NumPartitions = partitions
		ot.ReplicationFactor = 1
		for _, c := range describeTopicConfigs(configs, nil, false) {
			oc := kmsg.NewCreateTopicsResponseTopicConfig()
			oc.Name, oc.Value, oc.Source, oc.IsSensitive, oc.ReadOnly = c.Name, c.Value, int8(c.Source), false, false
			ot.Configs = append(ot.Configs, oc)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return now(resp)
}

// checkNewTopic validates a topic to create and returns its partition count
// and configs, or the Kafka error and a message.
func (s *Server) checkNewTopic(rt *kmsg.CreateTopicsRequestTopic) (int32, map[string]string, *kerr.Error, error) {
	if err := metastore.ValidTopicName(rt.Topic); err != nil {
		return 0, nil, kerr.InvalidTopicException, err
	}
	if _, ok := lookupInternal(rt.Topic); ok {
		return 0, nil, kerr.TopicAlreadyExists, fmt.Errorf("topic %q already exists: it is internal", rt.Topic)
	}
	partitions := rt.NumPartitions
	if len(rt.ReplicaAssignment) > 0 {
		if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
			return 0, nil, kerr.InvalidRequest, errors.New("with a replica assignment, NumPartitions and ReplicationFactor must be -1")
		}
		for i, a := range rt.ReplicaAssignment {
			if a.Partition != int32(i) {
				return 0, nil, kerr.InvalidReplicaAssignment, fmt.Errorf("replica assignment partitions must be 0..%d in order", len(rt.ReplicaAssignment)-1)
			}
		}
		partitions = int32(len(rt.ReplicaAssignment))
	}
	if partitions == -1 {
		partitions = s.cfg.DefaultPartitions
	}
	if partitions < 1 || partitions > metastore.MaxPartitions {
		return 0, nil, kerr.InvalidPartitions, fmt.Errorf("partition count %d not in 1..%d", partitions, metastore.MaxPartitions)
	}
	if rt.ReplicationFactor == 0 || rt.ReplicationFactor < -1 {
		return 0, nil, kerr.InvalidReplicationFactor, fmt.Errorf("replication factor %d must be -1 or >= 1", rt.ReplicationFactor)
	}
	var configs map[string]string
	for _, c := range rt.Configs {
		if err := validateTopicConfig(c.Name, c.Value); err != nil {
			return 0, nil, kerr.InvalidConfig, err
		}
		if configs == nil {
			configs = make(map[string]string, len(rt.Configs))
		}
		configs[c.Name] = *c.Value
	}
	if err := validateTopicConfigSet(configs); err != nil {
		return 0, nil, kerr.InvalidConfig, err
	}
	return partitions, configs, nil, nil
}
