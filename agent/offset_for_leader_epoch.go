package agent

// OffsetForLeaderEpoch (key 23): v0-v4.
//
// Consumers use it to detect log truncation after a leader change. A shale
// partition has one leader epoch forever (0, as Metadata reports) and its
// log is never truncated at its end. Answers follow Kafka's
// LeaderEpochFileCache.endOffsetFor with epoch 0 the only and latest epoch:
// epoch 0 ends at the high watermark; an undefined (negative) epoch, or one
// above 0 (no such epoch yet), gets epoch -1 and offset -1. As in Kafka's
// Partition, a CurrentLeaderEpoch other than -1 (none) is checked against
// 0: a newer one is UNKNOWN_LEADER_EPOCH (older cannot be). ReplicaID (v3+,
// follower requests) has no effect.

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
			if p.CurrentLeaderEpoch > 0 {
				op.ErrorCode = kerr.UnknownLeaderEpoch.Code
				continue
			}
			if p.LeaderEpoch != 0 {
				continue // no such epoch: undefined, as Kafka answers
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
