package agent

// IncrementalAlterConfigs (key 44): v0-v1.
//
// Changes named topic configs and keeps the others: SET (validated as in
// CreateTopics), DELETE (back to the default), APPEND and SUBTRACT (list
// configs only; the result is validated too, so cleanup.policy never
// holds an unknown item). A bad config or operation is INVALID_CONFIG, a config
// named twice in one resource INVALID_REQUEST. ValidateOnly checks without
// writing. Broker resources take Kafka's dynamic broker configs that shale
// accepts (SET, DELETE, APPEND and SUBTRACT on list configs; stored, no
// effect) and refuse the others (broker_configs.go). Group configs
// (resource type 32) take SET and DELETE (group_configs.go).

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.IncrementalAlterConfigs, 0, 1, (*Server).handleIncrementalAlterConfigs, onConfigs(kmsg.ACLOperationAlterConfigs, incrementalAlterConfigsResources, incrementalAlterConfigsResource))
}

func (s *Server) handleIncrementalAlterConfigs(ctx context.Context, _ *reqCtx, req *kmsg.IncrementalAlterConfigsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		or := kmsg.NewIncrementalAlterConfigsResponseResource()
		or.ResourceType, or.ResourceName = rr.ResourceType, rr.ResourceName
		if rr.ResourceType == kmsg.ConfigResourceTypeGroupConfig {
			err := s.alterGroupConfigs(ctx, rr.ResourceName, req.ValidateOnly, rr.Configs)
			or.ErrorCode, or.ErrorMessage = configErrCode(s, err), errMessage(err)
			resp.Resources = append(resp.Resources, or)
			continue
		}
		if rr.ResourceType == kmsg.ConfigResourceTypeBroker {
			err := s.alterBrokerConfigs(ctx, rr.ResourceName, req.ValidateOnly, rr.Configs)
			or.ErrorCode, or.ErrorMessage = brokerConfigErr(s, err)
			resp.Resources = append(resp.Resources, or)
			continue
		}
		if rr.ResourceType != kmsg.ConfigResourceTypeTopic {
			or.ErrorCode, or.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("shale alters topic, broker and group configs only")
			resp.Resources = append(resp.Resources, or)
			continue
		}
		seen := map[string]bool{}
		dup := ""
		for _, c := range rr.Configs {
			if seen[c.Name] {
				dup = c.Name
			}
			seen[c.Name] = true
		}
		if dup != "" {
			or.ErrorCode, or.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr(fmt.Sprintf("config %q named more than once", dup))
			resp.Resources = append(resp.Resources, or)
			continue
		}
		err := s.updateTopicConfigs(ctx, rr.ResourceName, req.ValidateOnly, func(cur map[string]string) (map[string]string, error) {
			return applyIncremental(cur, rr.Configs)
		})
		or.ErrorCode, or.ErrorMessage = configErrCode(s, err), errMessage(err)
		resp.Resources = append(resp.Resources, or)
	}
	return now(resp)
}

// applyIncremental returns cur with the operations applied; errors wrap
// errConfig.
func applyIncremental(cur map[string]string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (map[string]string, error) {
	next := maps.Clone(cur)
	if next == nil {
		next = map[string]string{}
	}
	for _, op := range ops {
		def, known := topicConfigs[op.Name]
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if err := validateTopicConfig(op.Name, op.Value); err != nil {
				return nil, fmt.Errorf("%w: %v", errConfig, err)
			}
			next[op.Name] = *op.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, op.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if !known || def.typ != kmsg.ConfigTypeList {
				return nil, fmt.Errorf("%w: %q is not a list config", errConfig, op.Name)
			}
			if op.Value == nil {
				return nil, fmt.Errorf("%w: null value for %q", errConfig, op.Name)
			}
			v, _ := topicConfigValue(next, op.Name)
			items := appendSubtract(v, op)
			joined := strings.Join(items, ",")
			if err := validateTopicConfig(op.Name, &joined); err != nil {
				return nil, fmt.Errorf("%w: %v", errConfig, err)
			}
			next[op.Name] = joined
		default:
			return nil, fmt.Errorf("%w: unknown operation %d for %q", errConfig, op.Op, op.Name)
		}
	}
	if err := validateTopicConfigSet(next); err != nil {
		return nil, fmt.Errorf("%w: %v", errConfig, err)
	}
	return next, nil
}

func splitList(v string) []string {
	var out []string
	for _, it := range strings.Split(v, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// appendSubtract applies an APPEND or SUBTRACT operation to the list
// config value cur: the items of op.Value not yet in it are appended, or
// those in it removed. It returns the resulting items.
func appendSubtract(cur string, op kmsg.IncrementalAlterConfigsRequestResourceConfig) []string {
	items := splitList(cur)
	for _, it := range splitList(*op.Value) {
		i := slices.Index(items, it)
		switch {
		case op.Op == kmsg.IncrementalAlterConfigOpAppend && i < 0:
			items = append(items, it)
		case op.Op == kmsg.IncrementalAlterConfigOpSubtract && i >= 0:
			items = slices.Delete(items, i, i+1)
		}
	}
	return items
}
