package agent

// Fetch (key 1): v4-v18.
//
// v4 is the first version that returns record batch v2. From v13 topics are
// named by ID (UNKNOWN_TOPIC_ID when none has it). Every agent answers for
// every partition.
//
// Long poll: the answer waits until MinBytes are available or MaxWaitMillis
// has passed; the engine's WaitForData channels (woken by an etcd watch of
// the partition states) end the wait early. MaxBytes and PartitionMaxBytes
// are honoured as Kafka does: partitions are filled in request order, and
// only the first batch of the first partition with data may exceed them.
//
// Differences from Kafka:
//   - Fetch sessions (KIP-227) are not kept: every answer has SessionID 0,
//     which tells the client no session was created, so it keeps sending
//     full fetches. A request naming a session gets FETCH_SESSION_ID_NOT_FOUND,
//     after which clients fall back to full fetches.
//   - There are no transactions, so read_committed reads the same as
//     read_uncommitted: LastStableOffset is the high watermark and there are
//     no aborted transactions.
//   - Leader epochs are ignored (always 0 in Metadata); follower fetching
//     fields (ReplicaID, ReplicaState, PreferredReadReplica) have no effect.
//
// Errors: OFFSET_OUT_OF_RANGE from the engine (with the log start offset
// and high watermark), UNKNOWN_TOPIC_OR_PARTITION, and other engine
// errors mapped by errCode. A partition with an error ends the long poll.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.Fetch, 4, 18, (*Server).handleFetch, onTopics(kmsg.ACLOperationRead, fetchTopics))
}

const defaultFetchMaxBytes = 50 << 20 // Kafka's fetch.max.bytes

type fetchPart struct {
	id     metastore.TopicID
	out    *kmsg.FetchResponseTopicPartition
	offset int64
	max    int32
	ok     bool // topic and partition exist
}

func (s *Server) handleFetch(ctx context.Context, rc *reqCtx, req *kmsg.FetchRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.SessionID = 0
	if req.SessionID != 0 {
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return now(resp)
	}
	var parts []fetchPart
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		ot := &resp.Topics[ti]
		*ot = kmsg.NewFetchResponseTopic()
		ot.Topic, ot.TopicID = rt.Topic, rt.TopicID
		t, terr := s.requestTopic(ctx, "fetch", req.Version >= 13, rt.TopicID, rt.Topic)
		ot.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		for pi := range rt.Partitions {
			p := &rt.Partitions[pi]
			op := &ot.Partitions[pi]
			*op = kmsg.NewFetchResponseTopicPartition()
			op.Partition = p.Partition
			fp := fetchPart{id: t.ID, out: op, offset: p.FetchOffset, max: p.PartitionMaxBytes}
			switch {
			case terr != nil:
				op.ErrorCode = terr.Code
			case p.Partition < 0 || p.Partition >= t.Partitions:
				if !s.refreshPartitions(ctx, &t, p.Partition) {
					op.ErrorCode = kerr.UnknownTopicOrPartition.Code
					break
				}
				fp.ok = true
			default:
				fp.ok = true
			}
			parts = append(parts, fp)
		}
	}

	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = defaultFetchMaxBytes
	}
	wait := time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond
	deadline := time.Now().Add(wait)
	// Reads (etcd, the bucket) are bounded too: a stuck read answers
	// REQUEST_TIMED_OUT instead of holding the connection.
	rctx, cancel := context.WithDeadline(ctx, deadline.Add(requestTimeout))
	defer cancel()
	for {
		// Take the wake-up channels before reading, so data committed
		// between the read and the wait is not missed.
		var wakes []<-chan struct{}
		if req.MinBytes > 0 && time.Now().Before(deadline) {
			for _, fp := range parts {
				if fp.ok {
					wakes = append(wakes, s.eng.WaitForData(fp.id, fp.out.Partition))
				}
			}
		}
		total, failed, err := s.fetchOnce(ctx, rctx, parts, maxBytes)
		if err != nil {
			return reply{}, err
		}
		if total >= int(req.MinBytes) || failed || len(wakes) == 0 || !time.Now().Before(deadline) {
			return now(resp)
		}
		// A graceful shutdown ends the wait early with what there is.
		if !waitAny(rc.waitCtx(ctx), wakes, time.Until(deadline)) {
			if ctx.Err() != nil {
				return reply{}, ctx.Err()
			}
			return now(resp) // nothing changed since the last read
		}
	}
}

// fetchOnce reads every partition into its response slot, with reads bounded
// by rctx. It returns the bytes read, whether any partition has an error, and
// an error only when the connection should close (ctx, the connection's
// context, ended).
func (s *Server) fetchOnce(ctx, rctx context.Context, parts []fetchPart, maxBytes int) (total int, failed bool, _ error) {
	for i := range parts {
		fp := &parts[i]
		op := fp.out
		if !fp.ok {
			failed = true
			continue
		}
		op.ErrorCode = 0
		// Never null: librdkafka rejects a null record set (-1) and drops the
		// whole response; Kafka always sends an empty one.
		op.RecordBatches = []byte{}
		limit := min(int(fp.max), maxBytes-total)
		if limit <= 0 && total > 0 || fp.max <= 0 {
			// No room left: report offsets only.
			start, next, err := s.eng.CachedOffsets(rctx, fp.id, op.Partition)
			if err != nil {
				if ctx.Err() != nil {
					return 0, false, ctx.Err()
				}
				op.ErrorCode = errCode(s.log, "fetch: offsets", err)
				failed = true
				continue
			}
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = next, next, start
			continue
		}
		res, err := s.eng.Fetch(rctx, fp.id, op.Partition, fp.offset, max(limit, 1))
		if err != nil && ctx.Err() != nil {
			return 0, false, ctx.Err()
		}
		op.HighWatermark, op.LastStableOffset, op.LogStartOffset = res.HighWatermark, res.HighWatermark, res.LogStartOffset
		if err != nil {
			op.ErrorCode = errCode(s.log, "fetch", err)
			if !errors.Is(err, kerr.OffsetOutOfRange) {
				op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
			}
			failed = true
			continue
		}
		if total > 0 && len(res.Records) > limit {
			continue // only the first partition with data may exceed the limits
		}
		if res.Records != nil {
			op.RecordBatches = res.Records
		}
		total += len(res.Records)
		s.cfg.Metrics.BytesOut(len(res.Records))
	}
	return total, failed, nil
}

// waitAny waits until one of chans is closed (true), or d passes or ctx ends
// (false).
func waitAny(ctx context.Context, chans []<-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	if len(chans) == 1 {
		select {
		case <-chans[0]:
			return true
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	woke := make(chan struct{})
	stop := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for _, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ch:
				once.Do(func() { close(woke) })
			case <-stop:
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	select {
	case <-woke:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}
