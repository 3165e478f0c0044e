package agent

// OffsetForLeaderEpoch (key 23): v0-v4.
//
// Consumers use it to detect log truncation after a leader change. A shale
// partition has one leader epoch forever (0, as Metadata reports) and its
// log is never truncated, so the answer for any epoch >= 0 is epoch 0 ending
// at the high watermark; a negative epoch gets epoch -1 and offset -1
// (undefined), as Kafka answers. CurrentLeaderEpoch is not checked.
// ReplicaID (v3+, follower requests) has no effect.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.OffsetForLeaderEpoch, 0, 4, (*Server).handleOffsetForLeaderEpoch, onTopics(kmsg.ACLOperationDescribe, offsetForLeaderEpochTopics))
}

func (s *Server) handleOffsetForLeaderEpoch(ctx context.Context, _ *reqCtx, req *kmsg.OffsetForLeaderEpochRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	resp.Topics = make([]kmsg.OffsetForLeaderEpochResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		ot := &resp.Topics[ti]
		*ot = kmsg.NewOffsetForLeaderEpochResponseTopic()
		ot.Topic = rt.Topic
		t, terr := s.topics.get(ctx, rt.Topic)
		ot.Partitions = make([]kmsg.OffsetForLeaderEpochResponseTopicPartition, len(rt.Partitions))
		for pi := range rt.Partitions {
			p := &rt.Partitions[pi]
			op := &ot.Partitions[pi]
			*op = kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			op.Partition = p.Partition
			op.LeaderEpoch, op.EndOffset = -1, -1
			switch {
			case terr != nil:
				op.ErrorCode = errCode(s.log, "offset for leader epoch: get topic", terr)
				if errors.Is(terr, metastore.ErrInvalid) {
					op.ErrorCode = kerr.UnknownTopicOrPartition.Code
				}
				continue
			case p.Partition < 0 || p.Partition >= t.Partitions:
				if !s.refreshPartitions(ctx, &t, p.Partition) {
					op.ErrorCode = kerr.UnknownTopicOrPartition.Code
					continue
				}
			}
			if p.LeaderEpoch < 0 {
				continue
			}
			_, next, err := s.eng.Offsets(ctx, t.ID, p.Partition)
			if err != nil {
				op.ErrorCode = errCode(s.log, "offset for leader epoch", err)
				continue
			}
			op.LeaderEpoch, op.EndOffset = 0, next
		}
	}
	return now(resp)
}
