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
// are honoured as Kafka does: partitions are filled in order, and
// only the first batch of the first partition with data may exceed them.
// Partitions are read in request order (an incremental fetch: the
// session's order).
//
// Fetch sessions (KIP-227), as Kafka's FetchManager keeps them, per agent
// (each agent is its own broker to clients; a session lives in the memory
// of the agent that made it, and a restarted agent answers
// FETCH_SESSION_ID_NOT_FOUND, after which clients start a new one). From
// v7 the request's SessionID and SessionEpoch say:
//   - epoch 0 (INITIAL): a full fetch that opens a new session; a non-zero
//     SessionID names a session to close first. The answer carries every
//     requested partition and the new session's ID (0 when the cache of
//     1000 sessions is full and none may be evicted: a session unused for
//     2 minutes is, else the smallest if the new one is larger; also when
//     its partitions do not fit the 262,144 all sessions may hold, a bound
//     Kafka does not have: an incremental fetch growing a session past it
//     closes the session with FETCH_SESSION_ID_NOT_FOUND).
//   - epoch -1 (FINAL): a sessionless full fetch, as before v7: the session
//     the SessionID names (any ID) is closed, every requested partition is
//     answered, and the answer's SessionID is 0.
//   - any other epoch: an incremental fetch of session SessionID. An unknown
//     ID answers FETCH_SESSION_ID_NOT_FOUND, an epoch other than the
//     session's INVALID_FETCH_SESSION_EPOCH, a session made with topic IDs
//     (v13+) used by name or the reverse FETCH_SESSION_TOPIC_ID_ERROR: each
//     at the top level with no topics and SessionID 0, as Kafka answers
//     them. Otherwise the requested partitions are added to the session or
//     update it (fetch offset, max bytes), ForgottenTopics are removed, the
//     session's epoch advances, and every partition of the session is read
//     with its cached fetch offset; the answer holds only the partitions
//     with records, an error, or a high watermark or log start offset that
//     changed since the session last answered them. Partitions that
//     returned records move to the end of the session's order. A session
//     left with no partition is closed and the fetch answered sessionless.
//
// Authorization (READ on the topic) is checked here for every partition
// read, the session's included, so an ACL removed while a session is open
// applies at its next fetch: TOPIC_AUTHORIZATION_FAILED for a topic named
// by name whether or not it exists, UNKNOWN_TOPIC_ID for an unknown ID.
// Every partition that is read or refused is named in the answer with its
// error, as Kafka does.
//
// Differences from Kafka:
//   - Isolation (IsolationLevel): read_uncommitted reads up to the high
//     watermark, markers included (clients skip control batches);
//     read_committed stops before the last stable offset (the first offset
//     of the partition's oldest open transaction) and lists, when the
//     records returned hold transactional batches, the aborted
//     transactions that overlap them, from the partition's
//     aborted-transaction index in etcd. LastStableOffset is answered at
//     both levels.
//   - Leader epochs are ignored (always 0 in Metadata); follower fetching
//     fields (ReplicaID, ReplicaState, PreferredReadReplica) have no effect.
//
// Errors: OFFSET_OUT_OF_RANGE from the engine (with the log start offset
// and high watermark), UNKNOWN_TOPIC_OR_PARTITION, and other engine
// errors mapped by errCode. A partition with any other error is answered
// with high watermark, last stable offset and log start offset -1, as
// Kafka's FetchResponse.partitionResponse answers it
// (TestFetchErrorAnswersNamePartitions). A partition with an error ends
// the long poll.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
)

func init() {
	// READ on each topic is checked by handleFetch (fetchParts), for the
	// session's partitions as for the request's.
	register(kmsg.Fetch, 4, 18, (*Server).handleFetch, inHandler[*kmsg.FetchRequest](kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic))
}

const defaultFetchMaxBytes = 50 << 20 // Kafka's fetch.max.bytes

type fetchPart struct {
	id     metastore.TopicID
	out    *kmsg.FetchResponseTopicPartition
	offset int64
	max    int32
	ok     bool // topic and partition exist

	name string // the topic's name ("" for an unknown ID)
}

// fetchParts resolves and authorizes the partitions to read, in order;
// each gets its answer slot.
func (s *Server) fetchParts(ctx context.Context, rc *reqCtx, byID bool, wanted []sessPart) []fetchPart {
	w := s.who(rc)
	type resolved struct {
		t    metastore.Topic
		code int16
	}
	topics := make(map[sessKey]resolved)
	slots := make([]kmsg.FetchResponseTopicPartition, len(wanted))
	parts := make([]fetchPart, len(wanted))
	for i, wp := range wanted {
		tk := sessKey{id: wp.key.id, name: wp.key.name}
		r, seen := topics[tk]
		if !seen {
			if !byID && !w.canTopic(kmsg.ACLOperationRead, tk.name) {
				r.code = kerr.TopicAuthorizationFailed.Code
			} else if t, terr := s.requestTopic(ctx, "fetch", byID, tk.id, tk.name); terr != nil {
				r.code = terr.Code
			} else if !w.canTopic(kmsg.ACLOperationRead, t.Name) {
				r.code = kerr.TopicAuthorizationFailed.Code
			} else {
				r.t = t
			}
			topics[tk] = r
		}
		op := &slots[i]
		*op = kmsg.NewFetchResponseTopicPartition()
		op.Partition = wp.key.part
		// Kafka's answer for a partition it cannot read
		// (FetchResponse.partitionResponse): offsets -1, not 0, so a
		// client cannot take a refused partition for an empty one.
		op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
		// Never null, an error answer's neither: librdkafka rejects a null
		// record set (-1) and drops the whole response; Kafka always sends
		// an empty one.
		op.RecordBatches = []byte{}
		fp := fetchPart{id: r.t.ID, out: op, offset: wp.offset, max: wp.max, name: r.t.Name}
		if fp.name == "" {
			fp.name = tk.name
		}
		switch {
		case r.code != 0:
			op.ErrorCode = r.code
		case wp.key.part < 0 || wp.key.part >= r.t.Partitions:
			t := r.t
			if !s.refreshPartitions(ctx, &t, wp.key.part) {
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			topics[tk] = resolved{t: t}
			fp.ok = true
		default:
			fp.ok = true
		}
		parts[i] = fp
	}
	return parts
}

// fetchAnswer fills resp from the partitions read, grouping consecutive
// partitions of one topic as Kafka does, and applies the session: an
// incremental answer keeps only what changed, a full fetch with epoch 0
// opens a session holding what it answered.
func (s *Server) fetchAnswer(req *kmsg.FetchRequest, resp *kmsg.FetchResponse, sf sessionFetch, parts []fetchPart) {
	keep := func(int) bool { return true }
	switch {
	case sf.session != nil:
		slots := make([]*kmsg.FetchResponseTopicPartition, len(parts))
		for i := range parts {
			slots[i] = parts[i].out
		}
		k := sf.session.filterIncremental(sf.wanted, slots)
		keep = func(i int) bool { return k[i] }
		resp.SessionID = sf.session.id
	case sf.create:
		cached := make([]sessPart, len(parts))
		for i, fp := range parts {
			cached[i] = sf.wanted[i]
			cached[i].hw, cached[i].lso, cached[i].stable = fp.out.HighWatermark, fp.out.LogStartOffset, fp.out.LastStableOffset
			if fp.out.ErrorCode != 0 {
				cached[i].hw = -1
			}
		}
		resp.SessionID = s.fetchSessions.create(req.Version >= 13, cached)
	}
	var last sessKey
	for i, fp := range parts {
		if !keep(i) {
			continue
		}
		k := sf.wanted[i].key
		tk := sessKey{id: k.id, name: k.name}
		if len(resp.Topics) == 0 || tk != last {
			ot := kmsg.NewFetchResponseTopic()
			ot.TopicID, ot.Topic = tk.id, fp.name
			resp.Topics = append(resp.Topics, ot)
			last = tk
		}
		ot := &resp.Topics[len(resp.Topics)-1]
		ot.Partitions = append(ot.Partitions, *fp.out)
	}
}

func (s *Server) handleFetch(ctx context.Context, rc *reqCtx, req *kmsg.FetchRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	sf := s.fetchSessions.openSession(req)
	if sf.errCode != 0 {
		resp.ErrorCode = sf.errCode
		return now(resp)
	}
	parts := s.fetchParts(ctx, rc, req.Version >= 13, sf.wanted)
	done := func() (reply, error) {
		if d := s.fetchThrottle(rc, parts); d > 0 {
			// consumer_byte_rate (quotas.go): no records and no new
			// session, as Kafka's throttled answer; muted meanwhile.
			resp.ThrottleMillis = int32(d / time.Millisecond)
			if sf.session != nil {
				resp.SessionID = sf.session.id
			}
			if c := rc.connOf(); c != nil {
				c.mute(d)
			}
			return now(resp)
		}
		s.fetchAnswer(req, resp, sf, parts)
		return now(resp)
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
		total, failed, err := s.fetchOnce(ctx, rctx, parts, maxBytes, req.IsolationLevel == 1)
		if err != nil {
			return reply{}, err
		}
		if total >= int(req.MinBytes) || failed || len(wakes) == 0 || !time.Now().Before(deadline) {
			return done()
		}
		// A graceful shutdown ends the wait early with what there is.
		if !waitAny(rc.waitCtx(ctx), wakes, time.Until(deadline)) {
			if ctx.Err() != nil {
				return reply{}, ctx.Err()
			}
			return done() // nothing changed since the last read
		}
	}
}

// fetchThrottle counts the records a fetch would answer against the
// client's consumer_byte_rate and returns its throttle time (0: answer).
func (s *Server) fetchThrottle(rc *reqCtx, parts []fetchPart) time.Duration {
	n := 0
	for _, fp := range parts {
		if fp.out != nil {
			n += len(fp.out.RecordBatches)
		}
	}
	return s.quotas.throttle(rc, quotaConsumerByteRate, n, time.Now(), true)
}

// fetchOnce reads every partition into its response slot, with reads bounded
// by rctx. It returns the bytes read, whether any partition has an error, and
// an error only when the connection should close (ctx, the connection's
// context, ended).
func (s *Server) fetchOnce(ctx, rctx context.Context, parts []fetchPart, maxBytes int, readCommitted bool) (total int, failed bool, _ error) {
	s.prefetch(rctx, parts, maxBytes)
	var nexts []int64 // where each partition's answer ends, once one has records
	defer func() {
		if nexts != nil {
			s.prefetchNext(parts, nexts, maxBytes)
		}
	}()
	for i := range parts {
		fp := &parts[i]
		op := fp.out
		if !fp.ok {
			failed = true
			continue
		}
		op.ErrorCode = 0
		op.RecordBatches = []byte{} // never null (above)
		limit := min(int(fp.max), maxBytes-total)
		if limit <= 0 && total > 0 || fp.max <= 0 {
			// No room left: report offsets only.
			start, lso, next, err := s.eng.CachedStableOffsets(rctx, fp.id, op.Partition)
			if err != nil {
				if ctx.Err() != nil {
					return 0, false, ctx.Err()
				}
				op.ErrorCode = errCode(s.log, "fetch: offsets", err)
				failed = true
				continue
			}
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = next, lso, start
			continue
		}
		res, err := s.eng.FetchIsolated(rctx, fp.id, op.Partition, fp.offset, max(limit, 1), readCommitted)
		if err != nil && ctx.Err() != nil {
			return 0, false, ctx.Err()
		}
		op.HighWatermark, op.LastStableOffset, op.LogStartOffset = res.HighWatermark, res.LastStableOffset, res.LogStartOffset
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
		op.AbortedTransactions = nil
		if readCommitted {
			op.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			for _, a := range res.Aborted {
				at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
				op.AbortedTransactions = append(op.AbortedTransactions, at)
			}
		}
		if len(res.Records) > 0 {
			if nexts == nil {
				nexts = make([]int64, len(parts))
				for j := range nexts {
					nexts[j] = -1
				}
			}
			nexts[i] = nextOffset(res.Records)
		}
		total += len(res.Records)
		s.cfg.Metrics.BytesOut(len(res.Records))
	}
	return total, failed, nil
}

// prefetch starts the engine's read-ahead of every partition the fetch
// will read, with the byte limits it will read them with at most (each
// partition's own, within what the request's limit leaves), so that a
// consumer replaying several partitions gets them from the bucket
// concurrently rather than one after the other. Only a fetch of several
// partitions needs it: the engine reads ahead of a single one itself.
func (s *Server) prefetch(rctx context.Context, parts []fetchPart, maxBytes int) {
	if len(parts) < 2 {
		return
	}
	s.eng.Prefetch(rctx, prefetchParts(parts, nil, maxBytes)...)
}

// prefetchNext starts, once a fetch has read records, the read-ahead of
// the consumer's next fetch: every partition from the offset this answer
// ends at (nexts[i], or its fetch offset), with this fetch's limits. It
// runs while the answer is written and the consumer decodes it, so the
// next fetch of a consumer replaying history finds its spans in memory
// instead of waiting for their GETs (the engine plans nothing for a
// partition read to its end, and reads nothing that is on local disk).
func (s *Server) prefetchNext(parts []fetchPart, nexts []int64, maxBytes int) {
	pp := prefetchParts(parts, nexts, maxBytes)
	if len(pp) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
		defer cancel()
		s.eng.Prefetch(ctx, pp...)
	}()
}

// prefetchParts is what a fetch of parts (from nexts[i] when nexts is
// not nil and nexts[i] >= 0, else from the fetch offsets) reads at most:
// each partition's limit within what the request's limit leaves.
func prefetchParts(parts []fetchPart, nexts []int64, maxBytes int) []engine.PrefetchPart {
	var pp []engine.PrefetchPart
	left := maxBytes
	for i := range parts {
		fp := &parts[i]
		if !fp.ok || fp.max <= 0 {
			continue
		}
		limit := min(int(fp.max), left)
		if limit <= 0 {
			break
		}
		off := fp.offset
		if nexts != nil && nexts[i] >= 0 {
			off = nexts[i]
		}
		pp = append(pp, engine.PrefetchPart{Topic: fp.id, Partition: fp.out.Partition, Offset: off, MaxBytes: limit})
		left -= limit
	}
	return pp
}

// nextOffset is the offset after the last batch of records (-1 when it
// holds none).
func nextOffset(records []byte) int64 {
	next := int64(-1)
	for pos := 0; pos+segment.BatchHeaderSize <= len(records); {
		h, err := segment.ParseBatchHeader(records[pos:])
		if err != nil {
			break
		}
		next = h.LastOffset() + 1
		pos += int(h.Length)
	}
	return next
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
