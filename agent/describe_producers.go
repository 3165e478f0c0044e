package agent

// DescribeProducers (key 61): v0 (KIP-664; kafka-transactions.sh
// describe-producers and find-hanging, kadm's DescribeProducers).
//
// Per partition, the producers the partition's state in etcd holds (the
// same state every agent sequences against, so every agent answers
// alike): producer ID, epoch, the last sequence of its last batch (-1 for
// none, e.g. only a transaction marker), LastTimestamp the wall-clock time
// of its last write's commit (Kafka gives the batch's max timestamp), and
// CurrentTxnStartOffset the first offset of its open transaction in the
// partition (-1 when none). CoordinatorEpoch is -1: a transaction's
// coordinator has no epoch in shale (its claim in etcd fences it).
// Producers expire from the state as they do for de-duplication. An
// unknown topic or partition is UNKNOWN_TOPIC_OR_PARTITION; each topic
// needs READ (TOPIC_AUTHORIZATION_FAILED), as in Kafka.

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.DescribeProducers, 0, 0, (*Server).handleDescribeProducers, onTopics(kmsg.ACLOperationRead, describeProducersTopics))
}

func (s *Server) handleDescribeProducers(ctx context.Context, _ *reqCtx, req *kmsg.DescribeProducersRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewDescribeProducersResponseTopic()
		ot.Topic = rt.Topic
		t, terr := s.topics.get(ctx, rt.Topic)
		for _, p := range rt.Partitions {
			op := kmsg.NewDescribeProducersResponseTopicPartition()
			op.Partition = p
			switch {
			case terr != nil && (errors.Is(terr, metastore.ErrTopicNotFound) || errors.Is(terr, metastore.ErrInvalid)):
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case terr != nil:
				op.ErrorCode = errCode(s.log, "describe producers: get topic", terr)
			case p < 0 || p >= t.Partitions && !s.refreshPartitions(ctx, &t, p):
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				st, err := s.meta.PartitionState(ctx, t.ID, p)
				if err != nil {
					op.ErrorCode = errCode(s.log, "describe producers: partition state", err)
					break
				}
				op.ActiveProducers = activeProducers(st)
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return now(resp)
}

// activeProducers lists a partition state's producers by producer ID.
func activeProducers(st metastore.PartitionState) []kmsg.DescribeProducersResponseTopicPartitionActiveProducer {
	ids := make([]int64, 0, len(st.Producers)+len(st.Txns))
	for id := range st.Producers {
		ids = append(ids, id)
	}
	for id := range st.Txns {
		if st.Producers[id] == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]kmsg.DescribeProducersResponseTopicPartitionActiveProducer, 0, len(ids))
	for _, id := range ids {
		ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
		ap.ProducerID, ap.ProducerEpoch, ap.LastTimestamp, ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = id, -1, -1, -1, -1
		if ps := st.Producers[id]; ps != nil {
			ap.ProducerEpoch, ap.LastTimestamp = int32(ps.Epoch), ps.LastMs
			if n := len(ps.Batches); n > 0 {
				ap.LastSequence = ps.Batches[n-1].LastSeq
			}
		}
		if first, ok := st.Txns[id]; ok {
			ap.CurrentTxnStartOffset = first
		}
		out = append(out, ap)
	}
	return out
}
