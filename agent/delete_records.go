package agent

// DeleteRecords (key 21): v0-v2.
//
// Advances each partition's log start offset to the requested offset (-1:
// the high watermark) in etcd, in one transaction per partition that also
// deletes the index entries lying wholly below it (metastore.TruncateBefore);
// their objects go to garbage collection. As in Kafka, records below the
// new start become unreadable at once (Fetch answers OFFSET_OUT_OF_RANGE,
// ListOffsets earliest returns the new start) even when they share an
// index entry or a compacted segment with records above it. An offset past
// the high watermark is OFFSET_OUT_OF_RANGE; an offset below the current
// start changes nothing and returns the current start. Produce commits racing
// the truncation retry; they are never refused because of it. The timeout is
// not used: the answer is sent once etcd has committed.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.DeleteRecords, 0, 2, (*Server).handleDeleteRecords, onTopics(kmsg.ACLOperationDelete, deleteRecordsTopics))
}

func (s *Server) handleDeleteRecords(ctx context.Context, _ *reqCtx, req *kmsg.DeleteRecordsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewDeleteRecordsResponseTopic()
		ot.Topic = rt.Topic
		t, terr := s.topics.get(ctx, rt.Topic)
		for _, rp := range rt.Partitions {
			op := kmsg.NewDeleteRecordsResponseTopicPartition()
			op.Partition, op.LowWatermark = rp.Partition, -1
			switch {
			case terr != nil:
				op.ErrorCode = errCode(s.log, "delete records: get topic", terr)
				if errors.Is(terr, metastore.ErrInvalid) {
					op.ErrorCode = kerr.UnknownTopicOrPartition.Code
				}
			case (rp.Partition < 0 || rp.Partition >= t.Partitions) && !s.refreshPartitions(ctx, &t, rp.Partition):
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				op.LowWatermark, op.ErrorCode = s.deleteRecords(ctx, t.ID, rp.Partition, rp.Offset)
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return now(resp)
}

func (s *Server) deleteRecords(ctx context.Context, id metastore.TopicID, partition int32, offset int64) (int64, int16) {
	if offset == -1 {
		_, next, err := s.eng.Offsets(ctx, id, partition)
		if err != nil {
			return -1, errCode(s.log, "delete records: offsets", err)
		}
		offset = next
	}
	if offset < 0 {
		return -1, kerr.OffsetOutOfRange.Code
	}
	start, err := s.meta.TruncateBefore(ctx, id, partition, offset)
	if errors.Is(err, metastore.ErrOffsetOutOfRange) {
		return -1, kerr.OffsetOutOfRange.Code
	}
	if err != nil {
		return -1, errCode(s.log, "delete records", err)
	}
	// Let this agent's view catch up now rather than through the watch.
	_, _, _ = s.eng.Offsets(ctx, id, partition)
	s.log.Info("records deleted", "topic_id", id.String(), "partition", partition, "log_start", start)
	return start, 0
}
