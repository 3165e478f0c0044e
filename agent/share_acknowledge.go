package agent

// ShareAcknowledge (key 79): v1-v2 (KIP-932, KIP-1222).
//
// Applies acknowledgements (0 GAP, 1 ACCEPT, 2 RELEASE, 3 REJECT, and 4
// RENEW with IsRenewAck, v2) of records the member acquired, each
// partition's batches all or none, one compare-and-swap in etcd per
// partition: only once etcd has them is the answer sent. Per partition:
// INVALID_RECORD_STATE for a record not acquired by this member (or whose
// lock expired), INVALID_REQUEST for malformed batches (overlapping,
// unordered, type lists of the wrong length, unknown types, offsets never
// delivered). The share session (share_fetch.go) must exist
// (SHARE_SESSION_NOT_FOUND) and be at the request's epoch
// (INVALID_SHARE_SESSION_EPOCH; 0 is always wrong here, a session opens
// with ShareFetch); -1 closes it and releases the member's remaining
// records of its partitions. READ on the group and on each topic.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/share"
)

func init() {
	register(kmsg.ShareAcknowledge, 1, 2, (*Server).handleShareAcknowledge, onGroup(kmsg.ACLOperationRead, shareAcknowledgeGroup))
}

var shareAcknowledgeGroup = single[*kmsg.ShareAcknowledgeRequest, *kmsg.ShareAcknowledgeResponse]{
	name:    func(r *kmsg.ShareAcknowledgeRequest) string { return deref(r.GroupID) },
	errCode: func(r *kmsg.ShareAcknowledgeResponse) *int16 { return &r.ErrorCode },
}

func (s *Server) handleShareAcknowledge(ctx context.Context, rc *reqCtx, req *kmsg.ShareAcknowledgeRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	group, member := deref(req.GroupID), deref(req.MemberID)
	fail := func(code int16, msg string) (reply, error) {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = kmsg.StringPtr(msg)
		}
		return now(resp)
	}
	switch {
	case group == "":
		return fail(kerr.InvalidGroupID.Code, "empty group ID")
	case member == "" || len(member) > share.MaxMemberID:
		return fail(kerr.InvalidRequest.Code, "member ID must be 1 to 255 bytes")
	}
	if code := s.shareGroupCode(ctx, group); code != 0 {
		return fail(code, "")
	}
	lim := s.shareLimits(ctx, group)
	resp.AcquisitionLockTimeoutMillis = int32(lim.Lock.Milliseconds())
	acks := map[shareSessPart][]share.AckBatch{}
	var order []shareSessPart
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			sp := shareSessPart{metastore.TopicID(t.TopicID), p.Partition}
			if _, dup := acks[sp]; !dup {
				order = append(order, sp)
			}
			for _, b := range p.AcknowledgementBatches {
				acks[sp] = append(acks[sp], share.AckBatch{First: b.FirstOffset, Last: b.LastOffset, Types: ackTypes(b.AcknowledgeTypes)})
			}
		}
	}
	r := s.shareReg()
	sk := shareSessKey{group, member}
	r.mu.Lock()
	sess := r.sessions[sk]
	switch {
	case req.ShareSessionEpoch == 0:
		r.mu.Unlock()
		return fail(kerr.InvalidShareSessionEpoch.Code, "a share session opens with ShareFetch")
	case sess == nil:
		r.mu.Unlock()
		return fail(kerr.ShareSessionNotFound.Code, "")
	case req.ShareSessionEpoch == -1:
		delete(r.sessions, sk)
	case req.ShareSessionEpoch != sess.epoch:
		r.mu.Unlock()
		return fail(kerr.InvalidShareSessionEpoch.Code, "")
	default:
		sess.epoch++
		if sess.epoch < 1 {
			sess.epoch = 1
		}
		sess.conn = rc.connOf()
	}
	r.mu.Unlock()
	renew := req.Version >= 2 && req.IsRenewAck
	res := s.shareAcks(ctx, rc, group, member, acks, order, lim, renew)
	if req.ShareSessionEpoch == -1 {
		s.releaseSession(ctx, group, member, sess.parts, lim)
	}
	idx := map[metastore.TopicID]int{}
	for _, a := range res {
		j, ok := idx[a.part.id]
		if !ok {
			ot := kmsg.NewShareAcknowledgeResponseTopic()
			ot.TopicID = a.part.id
			resp.Topics = append(resp.Topics, ot)
			j = len(resp.Topics) - 1
			idx[a.part.id] = j
		}
		op := kmsg.NewShareAcknowledgeResponseTopicPartition()
		op.Partition, op.ErrorCode = a.part.p, a.code
		op.CurrentLeader.LeaderID, op.CurrentLeader.LeaderEpoch = -1, -1
		resp.Topics[j].Partitions = append(resp.Topics[j].Partitions, op)
	}
	return now(resp)
}

// shareAckResult is one partition's acknowledgement outcome.
type shareAckResult struct {
	part shareSessPart
	code int16
}

// shareAcks applies acknowledgements partition by partition, in order.
func (s *Server) shareAcks(ctx context.Context, rc *reqCtx, group, member string, acks map[shareSessPart][]share.AckBatch, order []shareSessPart, lim share.Limits, renew bool) []shareAckResult {
	if len(order) == 0 {
		return nil
	}
	out := make([]shareAckResult, 0, len(order))
	targets := s.shareTargets(ctx, rc, group, order)
	released := false
	for i, t := range targets {
		res := shareAckResult{part: order[i], code: t.code}
		if t.code == 0 {
			var ackErr error
			err := s.shareReg().update(ctx, t.key, s.shareInit(ctx, group, t.key.id, t.key.p), func(st *share.Partition) (bool, error) {
				now := time.Now().UnixMilli()
				changed := st.Expire(now, lim)
				ackErr = st.Acknowledge(member, now, lim, acks[order[i]], renew)
				return changed || ackErr == nil, nil
			})
			if err == nil {
				err = ackErr
			}
			if err == nil {
				s.countShareAcks(acks[order[i]])
			}
			res.code = shareAckCode(s, err)
			released = released || err == nil
		}
		out = append(out, res)
	}
	if released {
		s.shareReg().wake()
	}
	return out
}

// releaseSession releases member's records of a closed session's
// partitions.
func (s *Server) releaseSession(ctx context.Context, group, member string, parts []shareSessPart, lim share.Limits) {
	released := false
	for _, sp := range parts {
		k := sharePartKey{group, sp.id, sp.p}
		err := s.shareReg().update(ctx, k, func() (*share.Partition, error) { return nil, errShareGone }, func(st *share.Partition) (bool, error) {
			changed := st.ReleaseMember(member, lim)
			released = released || changed
			return changed, nil
		})
		if err != nil && ctx.Err() == nil && err != errShareGone {
			s.log.Info("share: release a closed session's records; their locks will expire", "group", group, "member", member, "err", err)
		}
	}
	if released {
		s.shareReg().wake()
	}
}
