package agent

// ListOffsets (key 2): v1-v11.
//
// Timestamps: -1 latest (the high watermark), -2 earliest (the log start
// offset), -3 the record with the largest timestamp (v7+), a timestamp >= 0
// the first record at or after it (offset -1 when none). Shale keeps every
// byte in the bucket, so -4 (earliest local, v8+) is the same as -2 and -5
// (latest tiered, v9+) the same as -1; -6 (earliest pending upload, v11+)
// finds nothing, because an acknowledged record is already uploaded, and is
// answered with offset -1. With read_committed (IsolationLevel 1, v2+)
// latest is the last stable offset and a timestamp lookup finding a
// record at or past it answers -1, as in Kafka. Leader epochs are 0; the requested
// CurrentLeaderEpoch is not checked. v0 (old-style offset lists) is not
// served.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.ListOffsets, 1, 11, (*Server).handleListOffsets, onTopics(kmsg.ACLOperationDescribe, listOffsetsTopics))
}

func (s *Server) handleListOffsets(ctx context.Context, _ *reqCtx, req *kmsg.ListOffsetsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		ot := &resp.Topics[ti]
		*ot = kmsg.NewListOffsetsResponseTopic()
		ot.Topic = rt.Topic
		t, terr := s.topics.get(ctx, rt.Topic)
		ot.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(rt.Partitions))
		for pi := range rt.Partitions {
			p := &rt.Partitions[pi]
			op := &ot.Partitions[pi]
			*op = kmsg.NewListOffsetsResponseTopicPartition()
			op.Partition = p.Partition
			op.Offset, op.Timestamp, op.LeaderEpoch = -1, -1, 0
			switch {
			case terr != nil:
				op.ErrorCode = errCode(s.log, "list offsets: get topic", terr)
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
			ts := p.Timestamp
			switch ts {
			case -4:
				ts = engine.EarliestTimestamp
			case -5:
				ts = engine.LatestTimestamp
			case -6:
				continue // nothing is pending upload: offset -1
			}
			off, stamp, err := s.eng.ListOffsetIsolated(ctx, t.ID, p.Partition, ts, req.IsolationLevel == 1)
			if err != nil {
				op.ErrorCode = errCode(s.log, "list offsets", err)
				continue
			}
			op.Offset, op.Timestamp = off, stamp
		}
	}
	return now(resp)
}
