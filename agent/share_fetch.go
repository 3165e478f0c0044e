package agent

// ShareFetch (key 78): v1-v2 (KIP-932, KIP-1206, KIP-1222).
//
// Acquires records of the share session's partitions for the member, up
// to MaxRecords (500 when 0), and applies the acknowledgements it carries,
// one compare-and-swap in etcd per partition changed (share_groups.go).
// Records returned are whole batches read from the first acquired offset;
// only what they cover is acquired, so every acquired offset is in the
// answer (AcquiredRecords; the client skips the rest). Sessions: epoch 0
// opens one from the request's partitions (acknowledgements then are
// INVALID_REQUEST), a positive epoch must be the session's
// (INVALID_SHARE_SESSION_EPOCH; SHARE_SESSION_NOT_FOUND when there is
// none) and adds the request's partitions and drops ForgottenTopicsData,
// -1 closes it after its acknowledgements, releasing the member's other
// records of its partitions; so does the close of the connection that
// last used it (Kafka's share session cache does the same on disconnect). IsRenewAck (v2) only applies acknowledgements
// (type 4, RENEW, extends locks) and needs every fetch limit zero
// (INVALID_REQUEST). share.isolation.level=read_committed stops at the
// last stable offset and never delivers aborted records (share_groups.go,
// Isolation). Long poll: with nothing acquired the answer waits up
// to MaxWaitMillis for new records (the engine's WaitForData), for
// records this agent released, or for lock expiry (checked every
// shareWaitTick). A group that is not a share group is GROUP_ID_NOT_FOUND;
// an empty or over-long member ID INVALID_REQUEST. READ on the group, and
// on each topic (TOPIC_AUTHORIZATION_FAILED per partition).

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/share"
)

func init() {
	register(kmsg.ShareFetch, 1, 2, (*Server).handleShareFetch, onGroup(kmsg.ACLOperationRead, shareFetchGroup))
}

var shareFetchGroup = single[*kmsg.ShareFetchRequest, *kmsg.ShareFetchResponse]{
	name:    func(r *kmsg.ShareFetchRequest) string { return deref(r.GroupID) },
	errCode: func(r *kmsg.ShareFetchResponse) *int16 { return &r.ErrorCode },
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

const (
	defaultShareMaxRecords = 500
	shareWaitTick          = 250 * time.Millisecond
	sharePartitionMaxBytes = 1 << 20
)

// shareTarget is one partition a ShareFetch or ShareAcknowledge serves.
type shareTarget struct {
	key  sharePartKey
	name string
	code int16 // resolving it failed
	acks []share.AckBatch
	// acked: the request acknowledged records of it (the answer names it).
	acked bool
}

func (s *Server) handleShareFetch(ctx context.Context, rc *reqCtx, req *kmsg.ShareFetchRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
	group, member := deref(req.GroupID), deref(req.MemberID)
	fail := func(code int16, msg string) (reply, error) {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = kmsg.StringPtr(msg)
		}
		return now(resp)
	}
	renew := req.Version >= 2 && req.IsRenewAck
	switch {
	case group == "":
		return fail(kerr.InvalidGroupID.Code, "empty group ID")
	case member == "" || len(member) > share.MaxMemberID:
		return fail(kerr.InvalidRequest.Code, "member ID must be 1 to 255 bytes")
	case renew && (req.MaxBytes != 0 || req.MinBytes != 0 || req.MaxRecords != 0 || req.MaxWaitMillis != 0):
		return fail(kerr.InvalidRequest.Code, "a renew acknowledgement takes no fetch limits")
	}
	if code := s.shareGroupCode(ctx, group); code != 0 {
		return fail(code, "")
	}
	resp.AcquisitionLockTimeoutMillis = int32(s.shareLimits(ctx, group).Lock.Milliseconds())
	r := s.shareReg()
	acks := map[shareSessPart][]share.AckBatch{}
	var ackOrder []shareSessPart
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			if len(p.AcknowledgementBatches) == 0 {
				continue
			}
			sp := shareSessPart{metastore.TopicID(t.TopicID), p.Partition}
			if _, dup := acks[sp]; !dup {
				ackOrder = append(ackOrder, sp)
			}
			for _, b := range p.AcknowledgementBatches {
				acks[sp] = append(acks[sp], share.AckBatch{First: b.FirstOffset, Last: b.LastOffset, Types: ackTypes(b.AcknowledgeTypes)})
			}
		}
	}
	sk := shareSessKey{group, member}
	r.mu.Lock()
	sess := r.sessions[sk]
	switch {
	case req.ShareSessionEpoch == -1:
		if sess == nil {
			r.mu.Unlock()
			return fail(kerr.ShareSessionNotFound.Code, "")
		}
		delete(r.sessions, sk)
		r.mu.Unlock()
		lim := s.shareLimits(ctx, group)
		res := s.shareAcks(ctx, rc, group, member, acks, ackOrder, lim, renew)
		s.releaseSession(ctx, group, member, sess.parts, lim)
		shareFetchAnswer(resp, nil, nil, nil, res)
		return now(resp)
	case req.ShareSessionEpoch == 0:
		if len(acks) > 0 {
			r.mu.Unlock()
			return fail(kerr.InvalidRequest.Code, "a new share session carries no acknowledgements")
		}
		if sess == nil && len(r.sessions) >= maxShareSessions {
			r.mu.Unlock()
			return fail(kerr.ShareSessionLimitReached.Code, "")
		}
		sess = &shareSession{fresh: map[shareSessPart]bool{}}
		r.sessions[sk] = sess
		if c := rc.connOf(); c != nil {
			c.shareSessions.Store(true)
		}
	case sess == nil:
		r.mu.Unlock()
		return fail(kerr.ShareSessionNotFound.Code, "")
	case sess.epoch != req.ShareSessionEpoch:
		r.mu.Unlock()
		return fail(kerr.InvalidShareSessionEpoch.Code, "")
	}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			sp := shareSessPart{metastore.TopicID(t.TopicID), p.Partition}
			if !containsPart(sess.parts, sp) {
				sess.parts = append(sess.parts, sp)
				sess.fresh[sp] = true
			}
		}
	}
	for _, f := range req.ForgottenTopicsData {
		for _, p := range f.Partitions {
			sp := shareSessPart{metastore.TopicID(f.TopicID), p}
			for i, q := range sess.parts {
				if q == sp {
					sess.parts = append(sess.parts[:i], sess.parts[i+1:]...)
					break
				}
			}
			delete(sess.fresh, sp)
		}
	}
	sess.epoch++
	if sess.epoch < 1 {
		sess.epoch = 1
	}
	sess.conn = rc.connOf()
	parts := append([]shareSessPart(nil), sess.parts...)
	fresh := sess.fresh
	sess.fresh = map[shareSessPart]bool{}
	start := int(sess.epoch)
	r.mu.Unlock()

	lim := s.shareLimits(ctx, group)
	if renew {
		shareFetchAnswer(resp, nil, nil, nil, s.shareAcks(ctx, rc, group, member, acks, ackOrder, lim, true))
		return now(resp)
	}
	// Acknowledgements for partitions outside the session are applied on
	// their own; the session's go with their acquisition.
	outside := map[shareSessPart][]share.AckBatch{}
	var outsideOrder []shareSessPart
	for _, sp := range ackOrder {
		if !containsPart(parts, sp) {
			outside[sp] = acks[sp]
			outsideOrder = append(outsideOrder, sp)
		}
	}
	outsideRes := s.shareAcks(ctx, rc, group, member, outside, outsideOrder, lim, false)

	maxRecords := int(req.MaxRecords)
	if maxRecords <= 0 {
		maxRecords = defaultShareMaxRecords
	}
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = defaultFetchMaxBytes
	}
	targets := s.shareTargets(ctx, rc, group, parts)
	for i := range targets {
		targets[i].acks = acks[shareSessPart{targets[i].key.id, targets[i].key.p}]
		targets[i].acked = len(targets[i].acks) > 0
	}
	if n := len(targets); n > 1 {
		k := start % n
		targets = append(targets[k:], targets[:k]...)
	}
	committed := s.groupConfig(ctx, group, "share.isolation.level") == "read_committed"
	wait := time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond
	deadline := time.Now().Add(wait)
	out := make([]kmsg.ShareFetchResponseTopicPartition, len(targets))
	for i := range out {
		out[i] = kmsg.NewShareFetchResponseTopicPartition()
		out[i].Partition = targets[i].key.p
		out[i].CurrentLeader.LeaderID, out[i].CurrentLeader.LeaderEpoch = -1, -1
		out[i].ErrorCode = targets[i].code
	}
	run := func(ctx context.Context) (kmsg.Response, error) {
		rctx, cancel := context.WithDeadline(ctx, deadline.Add(requestTimeout))
		defer cancel()
		for {
			var wakes []<-chan struct{}
			if time.Now().Before(deadline) {
				wakes = append(wakes, r.wakeCh())
				for _, t := range targets {
					if t.code == 0 {
						wakes = append(wakes, s.eng.WaitForData(t.key.id, t.key.p))
					}
				}
			}
			got, failed := s.shareAcquireAll(rctx, targets, out, member, lim, committed, maxRecords, maxBytes)
			for i := range targets {
				targets[i].acks = nil // applied once
			}
			if got > 0 || failed || len(wakes) == 0 || !time.Now().Before(deadline) {
				break
			}
			if !waitAny(rc.waitCtx(ctx), wakes, min(time.Until(deadline), shareWaitTick)) && ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		shareFetchAnswer(resp, targets, out, fresh, outsideRes)
		return resp, nil
	}
	return reply{wait: run}, nil
}

func containsPart(ps []shareSessPart, p shareSessPart) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func ackTypes(ts []int8) []share.AckType {
	out := make([]share.AckType, len(ts))
	for i, t := range ts {
		out[i] = share.AckType(t)
	}
	return out
}

// shareTargets resolves and authorizes the session's partitions.
func (s *Server) shareTargets(ctx context.Context, rc *reqCtx, group string, parts []shareSessPart) []shareTarget {
	w := s.who(rc)
	out := make([]shareTarget, 0, len(parts))
	for _, sp := range parts {
		t := shareTarget{key: sharePartKey{group, sp.id, sp.p}}
		topic, terr := s.requestTopic(ctx, "share fetch", true, sp.id, "")
		switch {
		case terr != nil:
			t.code = terr.Code
		case !w.canTopic(kmsg.ACLOperationRead, topic.Name):
			t.code = kerr.TopicAuthorizationFailed.Code
		case sp.p < 0 || sp.p >= topic.Partitions:
			if !s.refreshPartitions(ctx, &topic, sp.p) {
				t.code = kerr.UnknownTopicOrPartition.Code
			}
		}
		t.name = topic.Name
		out = append(out, t)
	}
	return out
}

// shareAcquireAll applies each target's acknowledgements and acquires
// records into out, up to maxRecords in all. It returns the records
// acquired and whether a partition failed. With committed
// (share.isolation.level=read_committed) it acquires nothing at or past
// the last stable offset, and archives the records of aborted
// transactions instead of delivering them (KIP-932); control batches are
// delivered in the acquired ranges, as Kafka does, and clients
// acknowledge them as gaps.
func (s *Server) shareAcquireAll(ctx context.Context, targets []shareTarget, out []kmsg.ShareFetchResponseTopicPartition, member string, lim share.Limits, committed bool, maxRecords, maxBytes int) (int, bool) {
	got, failed := 0, false
	for i := range targets {
		t := &targets[i]
		if t.code != 0 {
			failed = true
			continue
		}
		op := &out[i]
		var records []byte
		var ranges []share.Range
		var ackErr error
		acks := t.acks
		err := s.shareReg().update(ctx, t.key, s.shareInit(ctx, t.key.group, t.key.id, t.key.p), func(st *share.Partition) (bool, error) {
			records, ranges, ackErr = nil, nil, nil
			now := time.Now().UnixMilli()
			logStart, lso, hwm, err := s.eng.CachedStableOffsets(ctx, t.key.id, t.key.p)
			if err != nil {
				return false, err
			}
			if committed {
				hwm = lso
			}
			changed := st.TruncateTo(logStart)
			changed = st.Expire(now, lim) || changed
			if len(acks) > 0 {
				if ackErr = st.Acknowledge(member, now, lim, acks, false); ackErr == nil {
					changed = true
				}
			}
			left := maxRecords - got
			from, ok := st.NextAvailable(hwm)
			if left <= 0 || maxBytes <= 0 || !ok {
				return changed, nil
			}
			res, err := s.eng.FetchIsolated(ctx, t.key.id, t.key.p, from, min(sharePartitionMaxBytes, maxBytes), committed)
			if err != nil {
				if errors.Is(err, kerr.OffsetOutOfRange) {
					return changed, nil // retention moved the log start: next time
				}
				return false, err
			}
			last := lastOffsetIn(res.Records)
			if last < from {
				return changed, nil
			}
			ranges = st.Acquire(member, now, lim, left, min(hwm, last+1))
			if len(ranges) == 0 {
				return changed, nil
			}
			for _, a := range abortedRanges(res.Records, res.Aborted) {
				ranges = st.Skip(member, ranges, a[0], a[1])
			}
			if len(ranges) == 0 {
				return true, nil
			}
			records = res.Records
			return true, nil
		})
		if len(acks) > 0 {
			op.AcknowledgeErrorCode = shareAckCode(s, ackErr)
			if err == nil && ackErr == nil {
				s.countShareAcks(acks)
			}
		}
		if err != nil {
			if len(acks) > 0 && ackErr == nil {
				op.AcknowledgeErrorCode = shareAckCode(s, err)
			}
			op.ErrorCode = shareAckCode(s, err)
			failed = true
			continue
		}
		if len(ranges) == 0 {
			continue
		}
		op.Records = records
		var acquired, redelivered int64
		for _, rg := range ranges {
			acquired += rg.Last - rg.First + 1
			if rg.Count > 1 {
				redelivered += rg.Last - rg.First + 1
			}
			ar := kmsg.NewShareFetchResponseTopicPartitionAcquiredRecord()
			ar.FirstOffset, ar.LastOffset, ar.DeliveryCount = rg.First, rg.Last, rg.Count
			op.AcquiredRecords = append(op.AcquiredRecords, ar)
			got += int(rg.Last - rg.First + 1)
		}
		maxBytes -= len(records)
		s.cfg.Metrics.BytesOut(len(records))
		s.cfg.Metrics.ShareAcquired(acquired, redelivered)
	}
	return got, failed
}

// abortedRanges returns the offset ranges of the data batches in b that
// belong to the aborted transactions of aborted: a transactional batch of
// producer P is aborted when an aborted transaction of P spans its base
// offset (from its first offset to its abort marker).
func abortedRanges(b []byte, aborted []metastore.AbortedTxn) [][2]int64 {
	if len(aborted) == 0 {
		return nil
	}
	batches, _ := segment.SplitBatches(b, false)
	var out [][2]int64
	for _, bt := range batches {
		h := bt.Header
		if !h.IsTransactional() || h.IsControl() {
			continue
		}
		for _, a := range aborted {
			if a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset <= a.LastOffset {
				out = append(out, [2]int64{h.BaseOffset, h.LastOffset()})
				break
			}
		}
	}
	return out
}

// lastOffsetIn returns the last offset of the whole batches in b (-1 when
// none).
func lastOffsetIn(b []byte) int64 {
	last := int64(-1)
	batches, err := segment.SplitBatches(b, false)
	if err != nil && len(batches) == 0 {
		return -1
	}
	for _, bt := range batches {
		last = max(last, bt.Header.LastOffset())
	}
	return last
}

// shareAckCode maps an acknowledgement's or acquisition's error to Kafka's
// code.
func shareAckCode(s *Server, err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, share.ErrInvalidRecordState):
		return kerr.InvalidRecordState.Code
	case errors.Is(err, share.ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	case errors.Is(err, metastore.ErrNotShareGroup), errors.Is(err, errShareGone):
		return kerr.GroupIDNotFound.Code
	case errors.Is(err, metastore.ErrConflict):
		return kerr.RequestTimedOut.Code
	}
	return errCode(s.log, "share partition", err)
}

// shareFetchAnswer groups the partitions' answers by topic: those with
// records, an error, an acknowledgement, or new to the session; then the
// acknowledgements of partitions outside the session.
func shareFetchAnswer(resp *kmsg.ShareFetchResponse, targets []shareTarget, out []kmsg.ShareFetchResponseTopicPartition, fresh map[shareSessPart]bool, acks []shareAckResult) {
	idx := map[metastore.TopicID]int{}
	add := func(id metastore.TopicID, op kmsg.ShareFetchResponseTopicPartition) {
		if op.Records == nil {
			op.Records = []byte{}
		}
		j, ok := idx[id]
		if !ok {
			ot := kmsg.NewShareFetchResponseTopic()
			ot.TopicID = id
			resp.Topics = append(resp.Topics, ot)
			j = len(resp.Topics) - 1
			idx[id] = j
		}
		resp.Topics[j].Partitions = append(resp.Topics[j].Partitions, op)
	}
	for i, t := range targets {
		op := out[i]
		sp := shareSessPart{t.key.id, t.key.p}
		if len(op.AcquiredRecords) == 0 && op.ErrorCode == 0 && !t.acked && !fresh[sp] {
			continue
		}
		add(t.key.id, op)
	}
	for _, a := range acks {
		op := kmsg.NewShareFetchResponseTopicPartition()
		op.Partition, op.AcknowledgeErrorCode = a.part.p, a.code
		op.CurrentLeader.LeaderID, op.CurrentLeader.LeaderEpoch = -1, -1
		add(a.part.id, op)
	}
}
