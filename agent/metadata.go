package agent

// Metadata (key 3): v0-v13.
//
// Brokers are the live agents registered in etcd. Every agent serves every
// partition, so a partition's "leader" only spreads clients over agents: it
// is picked by hashing (topic, partition) over the live agents, and
// replicas and ISR are just that leader. No agent ever answers
// NOT_LEADER_OR_FOLLOWER. Leader epochs are always 0. The controller is the
// live agent with the lowest node ID (any agent handles admin requests).
// Topic IDs are returned from v10 and topics may be requested by ID
// (UNKNOWN_TOPIC_ID when none has it). A missing topic is created when
// Config.AutoCreateTopics is set and the request allows it (always before
// v4, AllowAutoTopicCreation from v4), with Config.DefaultPartitions
// partitions, and answered as Kafka answers the request that creates a
// topic: LEADER_NOT_AVAILABLE with no partitions (clients retry; the
// next Metadata shows it whole, through any agent). kafka-go's TestConn
// checks exactly that after DeleteTopics. Authorized operations (v8+) are computed
// from the ACLs when asked (authorized_ops.go). Internal topics
// (__consumer_offsets) are listed with IsInternal, see internal_topics.go.
// Topics are read from etcd for
// every Metadata request (not from the topic cache), so a change made
// through any agent is visible at once.
//
// A topic is created with all its partitions in one etcd transaction, so
// Metadata shows it with its partitions or not at all
// (UNKNOWN_TOPIC_OR_PARTITION, no partitions), never with 0 partitions:
// there is no "being created" state, through any agent, once CreateTopics
// has answered (TestMetadataOfJustCreatedTopic), nor while CreateTopics
// runs through another agent (TestMetadataWhileTopicIsBeingCreated).

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.Metadata, 0, 13, (*Server).handleMetadata, custom(authorizeMetadata, need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic}))
}

func (s *Server) handleMetadata(ctx context.Context, rc *reqCtx, req *kmsg.MetadataRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	defer s.metadataAuthorizedOps(rc, req, resp)
	agents := s.liveAgents(ctx)
	for _, a := range agents {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID = a.NodeID
		b.Host, b.Port = endpointFor(rc, a)
		if a.Rack != "" {
			b.Rack = kmsg.StringPtr(a.Rack)
		}
		resp.Brokers = append(resp.Brokers, b)
	}
	resp.ClusterID = kmsg.StringPtr(s.cfg.ClusterID)
	resp.ControllerID = controllerID(agents)

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		ts, err := s.topics.list(ctx)
		if err != nil {
			if req.Version >= 13 {
				resp.ErrorCode = errCode(s.log, "metadata: list topics", err)
				return now(resp)
			}
			return reply{}, err // nothing sensible to answer with: close
		}
		for _, t := range ts {
			resp.Topics = append(resp.Topics, metadataTopic(agents, t))
		}
		for _, t := range internalTopics {
			resp.Topics = append(resp.Topics, metadataTopic(agents, t))
		}
		return now(resp)
	}
	autoCreate := s.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation) && !rc.noAutoCreate
	for _, rt := range req.Topics {
		var (
			t   metastore.Topic
			err error
		)
		if it, ok := internalFor(rt); ok {
			resp.Topics = append(resp.Topics, metadataTopic(agents, it))
			continue
		}
		if rt.Topic == nil {
			t, err = s.topics.loadByID(ctx, metastore.TopicID(rt.TopicID))
			if err != nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = errCode(s.log, "metadata: get topic by id", err)
				if errors.Is(err, metastore.ErrTopicNotFound) {
					mt.ErrorCode = kerr.UnknownTopicID.Code
				}
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		} else {
			name := *rt.Topic
			t, err = s.topics.load(ctx, name) // fresh: Metadata is how clients learn of changes
			if errors.Is(err, metastore.ErrTopicNotFound) && autoCreate {
				var created bool
				if t, created, err = s.autoCreate(ctx, name); err == nil && created {
					mt := kmsg.NewMetadataResponseTopic()
					mt.Topic = kmsg.StringPtr(name)
					mt.ErrorCode = kerr.LeaderNotAvailable.Code
					resp.Topics = append(resp.Topics, mt)
					continue
				}
			}
			if err != nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic = kmsg.StringPtr(name)
				mt.ErrorCode = errCode(s.log, "metadata: get topic", err)
				if errors.Is(err, metastore.ErrInvalid) {
					mt.ErrorCode = kerr.InvalidTopicException.Code
				}
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		}
		resp.Topics = append(resp.Topics, metadataTopic(agents, t))
	}
	return now(resp)
}

// autoCreate creates a topic for Metadata, tolerating a concurrent creator
// (then created is false and t is that creator's topic).
func (s *Server) autoCreate(ctx context.Context, name string) (t metastore.Topic, created bool, err error) {
	if err := metastore.ValidTopicName(name); err != nil {
		return metastore.Topic{}, false, err
	}
	t, err = s.meta.CreateTopic(ctx, name, s.cfg.DefaultPartitions, nil)
	if errors.Is(err, metastore.ErrTopicExists) {
		t, err = s.topics.load(ctx, name)
		return t, false, err
	}
	if err != nil {
		return t, false, err
	}
	s.log.Info("topic auto-created", "topic", name, "partitions", t.Partitions, "id", t.ID.String())
	s.topics.put(t)
	return t, true, nil
}

// internalFor returns the internal topic a Metadata request topic names
// (by name, or by ID when it has no name).
func internalFor(rt kmsg.MetadataRequestTopic) (metastore.Topic, bool) {
	if rt.Topic != nil {
		return lookupInternal(*rt.Topic)
	}
	return lookupInternalID(metastore.TopicID(rt.TopicID))
}

func metadataTopic(agents []metastore.AgentInfo, t metastore.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(t.Name)
	mt.TopicID = t.ID
	_, mt.IsInternal = lookupInternal(t.Name)
	mt.Partitions = make([]kmsg.MetadataResponseTopicPartition, 0, t.Partitions)
	for p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p
		mp.Leader = leaderFor(agents, t.Name, p)
		mp.LeaderEpoch = 0
		mp.Replicas = []int32{mp.Leader}
		mp.ISR = []int32{mp.Leader}
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
