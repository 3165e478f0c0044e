package agent

// AlterConfigs (key 33): v0-v2.
//
// Replaces a topic's whole config set (Kafka's non-incremental semantics:
// configs not named are reset to their defaults). Every config is validated
// as in CreateTopics (INVALID_CONFIG); the change is one compare-and-swap in
// etcd. ValidateOnly checks without writing. Other agents see the change
// within their topic cache TTL (1 s).
//
// Broker resources (a node ID, or "" for the cluster-wide defaults) take
// Kafka's dynamic broker configs: the resource's whole dynamic set is
// replaced, stored in etcd. shale accepts those that mean nothing on it
// (stored, described, no effect: their documentation says so) and refuses
// the static ones and those that map onto a shale setting
// (INVALID_REQUEST naming them and where shale takes them);
// broker_configs.go has the list and the decisions. Other resource types
// are INVALID_REQUEST.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.AlterConfigs, 0, 2, (*Server).handleAlterConfigs, onConfigs(kmsg.ACLOperationAlterConfigs, alterConfigsResources, alterConfigsResource))
}

func (s *Server) handleAlterConfigs(ctx context.Context, _ *reqCtx, req *kmsg.AlterConfigsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		or := kmsg.NewAlterConfigsResponseResource()
		or.ResourceType, or.ResourceName = rr.ResourceType, rr.ResourceName
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
		case kmsg.ConfigResourceTypeBroker:
			err := s.setBrokerConfigs(ctx, rr.ResourceName, req.ValidateOnly, rr.Configs)
			or.ErrorCode, or.ErrorMessage = brokerConfigErr(s, err)
			resp.Resources = append(resp.Resources, or)
			continue
		default:
			or.ErrorCode, or.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("shale alters topic and broker configs only with AlterConfigs")
			resp.Resources = append(resp.Resources, or)
			continue
		}
		// An unknown topic is UNKNOWN_TOPIC_OR_PARTITION before its configs
		// are looked at, as in Kafka since 2.7 (librdkafka's 0081_admin
		// checks the order).
		if _, err := s.topics.get(ctx, rr.ResourceName); err != nil {
			or.ErrorCode, or.ErrorMessage = configErrCode(s, err), errMessage(err)
			resp.Resources = append(resp.Resources, or)
			continue
		}
		configs := map[string]string{}
		var bad error
		for _, c := range rr.Configs {
			if err := validateTopicConfig(c.Name, c.Value); err != nil {
				bad = err
				break
			}
			configs[c.Name] = *c.Value
		}
		if bad == nil {
			bad = validateTopicConfigSet(configs)
		}
		if bad != nil {
			or.ErrorCode, or.ErrorMessage = kerr.InvalidConfig.Code, errMessage(bad)
			resp.Resources = append(resp.Resources, or)
			continue
		}
		err := s.updateTopicConfigs(ctx, rr.ResourceName, req.ValidateOnly, func(map[string]string) (map[string]string, error) {
			return configs, nil
		})
		or.ErrorCode, or.ErrorMessage = configErrCode(s, err), errMessage(err)
		resp.Resources = append(resp.Resources, or)
	}
	return now(resp)
}

// errConfig marks a config refused while computing the new set.
var errConfig = errors.New("agent: invalid config")

// updateTopicConfigs computes a topic's new configs from its current ones
// with fn and stores them (or, validateOnly, only checks that the topic
// exists and fn succeeds).
func (s *Server) updateTopicConfigs(ctx context.Context, name string, validateOnly bool, fn func(cur map[string]string) (map[string]string, error)) error {
	if validateOnly {
		t, err := s.meta.GetTopic(ctx, name)
		if err != nil {
			return err
		}
		_, err = fn(t.Configs)
		return err
	}
	t, err := s.meta.UpdateTopic(ctx, name, func(t *metastore.Topic) error {
		next, err := fn(t.Configs)
		if err != nil {
			return err
		}
		t.Configs = next
		return nil
	})
	if err != nil {
		return err
	}
	s.topics.put(t)
	s.log.Info("topic configs changed", "topic", name, "configs", t.Configs)
	return nil
}

func configErrCode(s *Server, err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, metastore.ErrInvalid):
		return kerr.InvalidRequest.Code
	default:
		return errCode(s.log, "alter configs", err)
	}
}
