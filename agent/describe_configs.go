package agent

// DescribeConfigs (key 32): v0-v4.
//
// Topics: every topic config shale knows (configs.go), with the topic's own
// value (source DYNAMIC_TOPIC_CONFIG) or the default (DEFAULT_CONFIG), or
// only the names asked for. Types (v3+) and documentation (v3+, on request)
// are filled; synonyms are not (IncludeSynonyms returns none). Brokers
// (a live agent's node ID): a few read-only settings
// (STATIC_BROKER_CONFIG), for tools that read broker defaults, answered
// from this agent's settings, which all agents share except broker.id;
// then the dynamic broker configs set (broker_configs.go), the node's own
// (DYNAMIC_BROKER_CONFIG) over the cluster-wide defaults
// (DYNAMIC_DEFAULT_BROKER_CONFIG). The name "" (the defaults) lists only
// the dynamic defaults, as Kafka; a node ID that is no live agent is
// INVALID_REQUEST "Unexpected broker id". Groups: the group
// configs (group_configs.go), set or default. Other resource types
// are INVALID_REQUEST.

import (
	"context"
	"errors"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.DescribeConfigs, 0, 4, (*Server).handleDescribeConfigs, onConfigs(kmsg.ACLOperationDescribeConfigs, describeConfigsResources, describeConfigsResource))
}

func (s *Server) handleDescribeConfigs(ctx context.Context, _ *reqCtx, req *kmsg.DescribeConfigsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		or := kmsg.NewDescribeConfigsResponseResource()
		or.ResourceType, or.ResourceName = rr.ResourceType, rr.ResourceName
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if it, ok := lookupInternal(rr.ResourceName); ok {
				or.Configs = describeTopicConfigs(it.Configs, rr.ConfigNames, req.IncludeDocumentation)
				break
			}
			t, err := s.meta.GetTopic(ctx, rr.ResourceName)
			if err != nil {
				or.ErrorCode, or.ErrorMessage = errCode(s.log, "describe configs: get topic", err), errMessage(err)
				if errors.Is(err, metastore.ErrInvalid) {
					or.ErrorCode = kerr.InvalidTopicException.Code
				}
				break
			}
			or.Configs = describeTopicConfigs(t.Configs, rr.ConfigNames, req.IncludeDocumentation)
		case kmsg.ConfigResourceTypeBroker:
			if err := s.checkBrokerResource(ctx, rr.ResourceName); err != nil {
				or.ErrorCode, or.ErrorMessage = brokerConfigErr(s, err)
				break
			}
			dyn, err := s.describeDynamicBrokerConfigs(ctx, rr.ResourceName, rr.ConfigNames, req.IncludeDocumentation)
			if err != nil {
				or.ErrorCode, or.ErrorMessage = errCode(s.log, "describe configs: broker", err), errMessage(err)
				break
			}
			if rr.ResourceName != "" {
				or.Configs = s.brokerConfigs(rr.ConfigNames)
			}
			or.Configs = append(or.Configs, dyn...)
		case kmsg.ConfigResourceTypeGroupConfig:
			cfgs, err := s.describeGroupConfigs(ctx, rr.ResourceName, rr.ConfigNames, req.IncludeDocumentation)
			if err != nil {
				or.ErrorCode, or.ErrorMessage = errCode(s.log, "describe configs: group", err), errMessage(err)
				break
			}
			or.Configs = cfgs
		default:
			or.ErrorCode = kerr.InvalidRequest.Code
			or.ErrorMessage = kmsg.StringPtr("shale describes only topic and broker configs")
		}
		resp.Resources = append(resp.Resources, or)
	}
	return now(resp)
}

// brokerConfigs lists this agent's read-only settings under Kafka's names.
func (s *Server) brokerConfigs(names []string) []kmsg.DescribeConfigsResponseResourceConfig {
	all := []struct {
		name string
		typ  kmsg.ConfigType
		val  string
	}{
		{"auto.create.topics.enable", kmsg.ConfigTypeBoolean, strconv.FormatBool(s.cfg.AutoCreateTopics)},
		{"broker.id", kmsg.ConfigTypeInt, strconv.Itoa(int(s.NodeID()))},
		{"connections.max.idle.ms", kmsg.ConfigTypeLong, strconv.FormatInt(s.cfg.IdleTimeout.Milliseconds(), 10)},
		{"default.replication.factor", kmsg.ConfigTypeInt, "1"},
		{"log.cleanup.policy", kmsg.ConfigTypeList, "delete"},
		{"log.retention.bytes", kmsg.ConfigTypeLong, topicConfigs[configRetentionBytes].def},
		{"log.retention.ms", kmsg.ConfigTypeLong, topicConfigs[configRetentionMs].def},
		{"message.max.bytes", kmsg.ConfigTypeInt, strconv.Itoa(defaultMaxMessage)},
		{"num.partitions", kmsg.ConfigTypeInt, strconv.Itoa(int(s.cfg.DefaultPartitions))},
		{"socket.request.max.bytes", kmsg.ConfigTypeInt, strconv.Itoa(int(s.cfg.MaxFrameBytes))},
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, c := range all {
		if names != nil && !want[c.name] {
			continue
		}
		rc := kmsg.NewDescribeConfigsResponseResourceConfig()
		rc.Name, rc.Value, rc.ConfigType = c.name, kmsg.StringPtr(c.val), c.typ
		rc.ReadOnly = true
		rc.Source = kmsg.ConfigSourceStaticBrokerConfig
		out = append(out, rc)
	}
	return out
}
