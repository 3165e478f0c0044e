package agent

// AddPartitionsToTxn (key 24): v0-v5.
//
// Answered by the transactional ID's coordinator (NOT_COORDINATOR
// elsewhere). Adds partitions to the producer's transaction, starting it
// (Ongoing, its timeout counted from now) if none is ongoing; the
// coordinator writes a marker into each at its end. A topic or partition
// that does not exist is UNKNOWN_TOPIC_OR_PARTITION and, as in Kafka,
// nothing of the request is added: the other partitions get
// OPERATION_NOT_ATTEMPTED. A wrong producer ID is
// INVALID_PRODUCER_ID_MAPPING, a wrong epoch PRODUCER_FENCED (v2+;
// INVALID_PRODUCER_EPOCH before), an end in progress
// CONCURRENT_TRANSACTIONS. Unlike Kafka, a transaction holds at most
// 5000 partitions (its state is one etcd value); beyond, INVALID_REQUEST.
//
// v4+ is the brokers' batched form (several transactional IDs per
// request; Kafka's partition leaders use it to verify a transactional
// produce, KIP-890 part 1). Each transaction is answered on its own;
// VerifyOnly adds nothing and answers INVALID_TXN_STATE for a partition
// that is not in the ongoing transaction. It needs CLUSTER_ACTION on the
// cluster (acl_enforce.go). shale's own agents verify produces by reading
// the transaction state in etcd (produce.go), not with this request.
//
// v5 is served as v4. Under KIP-890 part 2 (--transaction-version 2)
// clients send none: Produce v12+ adds its partitions itself
// (txn_verify.go).

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	// needs[0] is what the v4+ form, which kgo's Broker.Request sends, checks first.
	register(kmsg.AddPartitionsToTxn, 0, 5, (*Server).handleAddPartitionsToTxn,
		custom(authorizeAddPartitionsToTxn, needClusterAc, needTxnWrite, need{kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic}))
}

// txnTopic is one topic's partitions of an add, normalized across versions.
type txnTopic struct {
	topic      string
	partitions []int32
	codes      []int16
}

func (s *Server) handleAddPartitionsToTxn(ctx context.Context, _ *reqCtx, req *kmsg.AddPartitionsToTxnRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version < 4 {
		ts := make([]txnTopic, len(req.Topics))
		for i, t := range req.Topics {
			ts[i] = txnTopic{topic: t.Topic, partitions: t.Partitions}
		}
		s.addPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, false, ts, fencedCode(req.Version, 2))
		for _, t := range ts {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.topic
			for j, p := range t.partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, t.codes[j]
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return now(resp)
	}
	for _, tx := range req.Transactions {
		ts := make([]txnTopic, len(tx.Topics))
		for i, t := range tx.Topics {
			ts[i] = txnTopic{topic: t.Topic, partitions: t.Partitions}
		}
		s.addPartitions(ctx, tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly, ts, kerr.ProducerFenced.Code)
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		for _, t := range ts {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = t.topic
			for j, p := range t.partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition, rp.ErrorCode = p, t.codes[j]
				rt.Partitions = append(rt.Partitions, rp)
			}
			rtx.Topics = append(rtx.Topics, rt)
		}
		resp.Transactions = append(resp.Transactions, rtx)
	}
	return now(resp)
}

// addPartitions adds (or, with verifyOnly, checks) the partitions of ts
// to t's transaction, filling each topic's codes.
func (s *Server) addPartitions(ctx context.Context, t string, pid int64, epoch int16, verifyOnly bool, ts []txnTopic, fenced int16) {
	all := func(code int16) {
		for i := range ts {
			ts[i].codes = make([]int16, len(ts[i].partitions))
			for j := range ts[i].codes {
				ts[i].codes[j] = code
			}
		}
	}
	all(0)
	// Resolve topics first: any unknown one means nothing is attempted.
	ids := make([]metastore.TopicID, len(ts))
	missing := false
	for i, tt := range ts {
		tp, err := s.topics.get(ctx, tt.topic)
		for j, p := range tt.partitions {
			switch {
			case err != nil && !errors.Is(err, metastore.ErrTopicNotFound) && !errors.Is(err, metastore.ErrInvalid):
				ts[i].codes[j] = errCode(s.log, "add partitions to txn: get topic", err)
				missing = true
			case err != nil, p < 0 || p >= tp.Partitions && !s.refreshPartitions(ctx, &tp, p):
				ts[i].codes[j] = kerr.UnknownTopicOrPartition.Code
				missing = true
			}
		}
		ids[i] = tp.ID
	}
	if missing {
		for i := range ts {
			for j := range ts[i].codes {
				if ts[i].codes[j] == 0 {
					ts[i].codes[j] = kerr.OperationNotAttempted.Code
				}
			}
		}
		return
	}
	c := s.txns()
	e, code := c.lock(ctx, t)
	if code != 0 {
		all(code)
		return
	}
	defer e.mu.Unlock()
	if code := checkProducer(e, pid, epoch, fenced); code != 0 {
		all(code)
		return
	}
	if verifyOnly {
		for i, tt := range ts {
			for j, p := range tt.partitions {
				if e.st.Phase != metastore.TxnOngoing || !e.st.HasPartition(ids[i], p) {
					ts[i].codes[j] = kerr.InvalidTxnState.Code
				}
			}
		}
		return
	}
	var parts []metastore.TxnPartition
	for i, tt := range ts {
		for _, p := range tt.partitions {
			parts = append(parts, metastore.TxnPartition{Topic: tt.topic, TopicID: ids[i], Partition: p})
		}
	}
	st, added, code := withPartitions(e.st, parts)
	if code != 0 {
		all(code)
		return
	}
	if !added && st.Phase == e.st.Phase {
		return
	}
	if code := c.put(ctx, e, st); code != 0 {
		all(code)
	}
}

// withPartitions returns st with parts added (added: any was not in it
// yet), starting a transaction unless one is ongoing. code is
// CONCURRENT_TRANSACTIONS during an end, INVALID_REQUEST past
// maxTxnPartitions.
func withPartitions(st metastore.TxnState, parts []metastore.TxnPartition) (_ metastore.TxnState, added bool, code int16) {
	switch st.Phase {
	case metastore.TxnPrepareCommit, metastore.TxnPrepareAbort:
		return st, false, kerr.ConcurrentTransactions.Code
	case metastore.TxnOngoing:
		st.Partitions = slices.Clone(st.Partitions)
	default:
		st = st.Begin(time.Now().UnixMilli())
	}
	for _, p := range parts {
		if !st.HasPartition(p.TopicID, p.Partition) {
			st.Partitions, added = append(st.Partitions, p), true
		}
	}
	if len(st.Partitions) > maxTxnPartitions {
		return st, added, kerr.InvalidRequest.Code
	}
	return st, added, 0
}
