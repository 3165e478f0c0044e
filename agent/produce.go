package agent

// Produce (key 0): v3-v13.
//
// v3 is the first version that requires record batch v2; a batch with magic
// 0 or 1 is INVALID_RECORD (from the engine), a wrong CRC is
// CORRUPT_MESSAGE, a partition's records above the engine's limit or a batch
// above the topic's max.message.bytes is MESSAGE_TOO_LARGE. v13 names
// topics by ID (UNKNOWN_TOPIC_ID when none has it).
//
// Unlike Kafka, acks=1 and acks=-1 mean the same: the answer leaves only
// once the records are in the bucket and indexed in etcd. acks=0 gets no
// answer; when the request is refused outright (unknown topic, bad batch)
// the connection is closed instead, as Kafka does, so the client notices.
// Other acks values are INVALID_REQUIRED_ACKS.
//
// Transactional batches (txn_verify.go) are checked against the
// transactional ID's state in etcd before they reach the engine, as
// Kafka's KIP-890 part 1 verification does: the producer ID and epoch
// must be the ID's current ones (INVALID_PRODUCER_ID_MAPPING,
// INVALID_PRODUCER_EPOCH) and the partition in its ongoing transaction
// (INVALID_TXN_STATE). As Kafka checks its verification again at append,
// the engine checks again at the etcd commit that the transaction has
// not ended in the partition meanwhile (engine.ProduceTxn): a batch
// verified before an abort and committing after its marker is
// INVALID_TXN_STATE, not a transaction nobody will end. From v12 (KIP-890 part 2) the request first adds
// its partitions to the transaction itself, starting it if none is
// ongoing, as Kafka 4 does (clients send v12+ transactionally only when
// the transaction.version feature is 2: api_versions.go). Transactional
// batches without a transactional ID in the request are INVALID_RECORD.
//
// The read loop hands each partition's records to the engine in request
// order (so one producer's pipelined requests keep their order) and the wait
// for durability runs off the read loop, so a connection can have several
// produce requests in flight; answers are still written in request order.
// A request not durable within its timeout is REQUEST_TIMED_OUT (the records
// may still become durable: an idempotent retry is de-duplicated).
//
// A topic whose compression.type names a codec gets its batches
// recompressed before they reach the engine (compression.go). A compacted
// topic refuses records without a key (compacted.go).

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
	"github.com/shale-dev/shale/segment"
)

func init() {
	register(kmsg.Produce, 3, 13, (*Server).handleProduce, custom(authorizeTxnProduce, need{kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic}, needTxnWrite))
}

type producePart struct {
	ti, pi int
	pend   *engine.Pending
	id     metastore.TopicID
	stored int // bytes stored, when recompressed (compression.go); else 0
}

func (s *Server) handleProduce(ctx context.Context, rc *reqCtx, req *kmsg.ProduceRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = DefaultProduceTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)

	var refuse *kerr.Error
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		refuse = kerr.InvalidRequiredAcks
	}
	verify := txnVerifier{s: s, tid: req.TransactionID}
	if req.Version >= 12 && req.TransactionID != nil && refuse == nil {
		// KIP-890 part 2: the request adds its partitions to the
		// transaction (txn_verify.go).
		if parts, pid, epoch, ok := s.implicitPartitions(ctx, req); ok {
			verify.implicitAdd(ctx, parts, pid, epoch)
		}
	}

	var parts []producePart
	refused := false
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		ot := &resp.Topics[ti]
		*ot = kmsg.NewProduceResponseTopic()
		ot.Topic, ot.TopicID = rt.Topic, rt.TopicID
		t, terr := s.requestTopic(ctx, "produce", req.Version >= 13, rt.TopicID, rt.Topic)
		ot.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for pi := range rt.Partitions {
			p := &rt.Partitions[pi]
			op := &ot.Partitions[pi]
			*op = kmsg.NewProduceResponseTopicPartition()
			op.Partition = p.Partition
			op.BaseOffset, op.LogAppendTime, op.LogStartOffset = -1, -1, -1
			code, txn := int16(0), int64(0)
			switch {
			case refuse != nil:
				code = refuse.Code
			case terr != nil:
				code = terr.Code
			case p.Partition < 0 || p.Partition >= t.Partitions:
				if ok := s.refreshPartitions(ctx, &t, p.Partition); !ok {
					code = kerr.UnknownTopicOrPartition.Code
				}
			}
			if code == 0 && segment.HasBatchOver(p.Records, maxMessageBytes(t.Configs)) {
				code = kerr.MessageTooLarge.Code
			}
			if code == 0 {
				code, txn = verify.check(ctx, t.ID, p.Partition, p.Records)
			}
			if code == 0 {
				code, op.ErrorMessage, op.ErrorRecords = checkKeys(t.Configs, t.Name, p.Partition, p.Records) // compacted.go
			}
			records := p.Records
			if code == 0 {
				records, code = storedRecords(t.Configs, p.Records) // compression.go
			}
			if code != 0 {
				op.ErrorCode = code
				refused = true
				continue
			}
			pend := s.eng.ProduceTxn(wctx, t.ID, p.Partition, records, flushInterval(t.Configs), txn)
			pp := producePart{ti: ti, pi: pi, pend: pend, id: t.ID}
			if len(records) > 0 && len(p.Records) > 0 && &records[0] != &p.Records[0] { // recompressed
				pp.stored = len(records)
			}
			parts = append(parts, pp)
		}
	}

	// producer_byte_rate (quotas.go): the answer says the throttle time,
	// and the connection reads nothing more until it has passed.
	var produced int
	for _, rt := range req.Topics {
		for _, p := range rt.Partitions {
			produced += len(p.Records)
		}
	}
	if d := s.quotas.throttle(rc, quotaProducerByteRate, produced, time.Now(), false); d > 0 {
		resp.ThrottleMillis = int32(d / time.Millisecond)
		if c := rc.connOf(); c != nil {
			c.mute(d)
		}
	}
	if req.Acks == 0 {
		// Nothing is answered; a refusal known now closes the connection.
		defer cancel()
		for _, pp := range parts {
			select {
			case <-pp.pend.Done():
				if _, err := pp.pend.Wait(wctx); err != nil {
					refused = true
				}
			default:
			}
		}
		if refused {
			return reply{}, errors.New("acks=0 produce refused")
		}
		return reply{noResponse: true}, nil
	}
	if len(parts) == 0 {
		cancel()
		return now(resp)
	}
	var lastDone time.Time // the last partition's commit, for the reply stage
	return reply{wait: func(context.Context) (kmsg.Response, error) {
		defer cancel()
		for _, pp := range parts {
			op := &resp.Topics[pp.ti].Partitions[pp.pi]
			res, err := pp.pend.Wait(wctx)
			select {
			case <-pp.pend.Done():
				if at := pp.pend.DoneAt(); at.After(lastDone) {
					lastDone = at
				}
			default: // timed out or cancelled: no commit to measure from
			}
			if err != nil {
				if errors.Is(err, context.Canceled) && ctx.Err() != nil {
					return nil, ctx.Err() // connection closed
				}
				op.ErrorCode = errCode(s.log, "produce", err)
				op.ErrorMessage = errMessage(err)
				continue
			}
			s.cfg.Metrics.BytesIn(len(req.Topics[pp.ti].Partitions[pp.pi].Records))
			if pp.stored > 0 {
				s.countRecompressed(pp.id, len(req.Topics[pp.ti].Partitions[pp.pi].Records), pp.stored)
			}
			op.BaseOffset = res.BaseOffset
			op.LogStartOffset = res.LogStartOffset
		}
		return resp, nil
	}, written: func() {
		if !lastDone.IsZero() {
			s.cfg.Metrics.Stage(metrics.StageReply, time.Since(lastDone))
		}
	}}, nil
}

// refreshPartitions re-reads a topic whose cached partition count does not
// include partition (it may just have grown) and reports whether it does now.
func (s *Server) refreshPartitions(ctx context.Context, t *metastore.Topic, partition int32) bool {
	if partition < 0 {
		return false
	}
	nt, err := s.topics.load(ctx, t.Name)
	if err != nil || nt.ID != t.ID {
		return false
	}
	*t = nt
	return partition < nt.Partitions
}
