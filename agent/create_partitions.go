package agent

// CreatePartitions (key 37): v0-v3.
//
// Raises a topic's partition count (INVALID_PARTITIONS when the new count is
// not larger, or above 100000). A manual assignment is accepted when it has
// one entry per new partition; its broker IDs are ignored (every agent
// serves every partition). ValidateOnly checks without changing anything.
// A topic named twice in one request is INVALID_REQUEST, as in Kafka.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.CreatePartitions, 0, 3, (*Server).handleCreatePartitions, onTopics(kmsg.ACLOperationAlter, createPartitionsTopics))
}

// errPartitions marks a refused partition count inside UpdateTopic.
var errPartitions = errors.New("agent: invalid partition count")

func (s *Server) handleCreatePartitions(ctx context.Context, _ *reqCtx, req *kmsg.CreatePartitionsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	seen := make(map[string]int, len(req.Topics))
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		ot := kmsg.NewCreatePartitionsResponseTopic()
		ot.Topic = rt.Topic
		fail := func(e *kerr.Error, err error) {
			ot.ErrorCode, ot.ErrorMessage = e.Code, errMessage(err)
		}
		switch {
		case seen[rt.Topic] > 1:
			fail(kerr.InvalidRequest, fmt.Errorf("topic %q is named more than once in the request", rt.Topic))
		case isInternal(rt.Topic):
			fail(kerr.InvalidTopicException, fmt.Errorf("%s is an internal topic: its partitions cannot change", rt.Topic))
		case rt.Count > metastore.MaxPartitions:
			fail(kerr.InvalidPartitions, fmt.Errorf("partition count %d above %d", rt.Count, metastore.MaxPartitions))
		default:
			check := func(t *metastore.Topic) error {
				if rt.Count <= t.Partitions {
					return fmt.Errorf("%w: topic %q has %d partitions; the new count %d must be larger", errPartitions, t.Name, t.Partitions, rt.Count)
				}
				if rt.Assignment != nil && len(rt.Assignment) != int(rt.Count-t.Partitions) {
					return fmt.Errorf("%w: %d assignments for %d new partitions", errPartitions, len(rt.Assignment), rt.Count-t.Partitions)
				}
				t.Partitions = rt.Count
				return nil
			}
			var err error
			if req.ValidateOnly {
				var t metastore.Topic
				if t, err = s.meta.GetTopic(ctx, rt.Topic); err == nil {
					err = check(&t)
				}
			} else {
				var t metastore.Topic
				if t, err = s.meta.UpdateTopic(ctx, rt.Topic, check); err == nil {
					s.topics.put(t)
					s.log.Info("partitions added", "topic", t.Name, "partitions", t.Partitions)
				}
			}
			switch {
			case err == nil:
			case errors.Is(err, errPartitions):
				fail(kerr.InvalidPartitions, err)
			case errors.Is(err, metastore.ErrInvalid):
				fail(kerr.UnknownTopicOrPartition, err)
			default:
				ot.ErrorCode, ot.ErrorMessage = errCode(s.log, "create partitions", err), errMessage(err)
			}
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return now(resp)
}
