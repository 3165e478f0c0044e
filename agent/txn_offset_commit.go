package agent

// TxnOffsetCommit (key 28): v0-v6.
//
// Answered by the group's coordinator (NOT_COORDINATOR elsewhere), as in
// Kafka. The offsets are stored as pending in etcd
// (txn-offsets/<g>/<producer id>/...), invisible to OffsetFetch, until the
// transaction's coordinator ends the transaction: a commit makes them the
// group's committed offsets, an abort drops them (txn_coord.go). While
// pending, OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT
// for their partitions (KIP-447).
//
// Checks, in order: the group member and generation when given (v3+,
// generation -1 and no member skip them; otherwise UNKNOWN_MEMBER_ID,
// FENCED_INSTANCE_ID, ILLEGAL_GENERATION as OffsetCommit; for a KIP-848
// consumer group, UNKNOWN_MEMBER_ID for an unknown member and
// ILLEGAL_GENERATION for another epoch than the member's, as Kafka answers
// before v6); the
// transactional ID's state, read from etcd: INVALID_PRODUCER_ID_MAPPING
// for another producer ID, PRODUCER_FENCED (v3+; INVALID_PRODUCER_EPOCH
// before) for another epoch, INVALID_TXN_STATE unless the transaction is
// ongoing with the group added (AddOffsetsToTxn); per partition,
// UNKNOWN_TOPIC_OR_PARTITION and OFFSET_METADATA_TOO_LARGE. The write is
// compared with the state's revision, so offsets never slip in after the
// transaction ended. At most 100 partitions per request (INVALID_REQUEST
// beyond). From v5 (KIP-890 part 2) a group not in the transaction is
// added by the request itself (starting the transaction if none is
// ongoing; txn_coord.go), as Kafka 4 does, so clients skip
// AddOffsetsToTxn; during an end it is CONCURRENT_TRANSACTIONS. v6 names
// topics by ID (UNKNOWN_TOPIC_ID for an unknown one).

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
	register(kmsg.TxnOffsetCommit, 0, 6, (*Server).handleTxnOffsetCommit, custom(authorizeTxnOffsetCommit,
		needTxnWrite, need{kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup}, need{kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic}))
}

func (s *Server) handleTxnOffsetCommit(ctx context.Context, _ *reqCtx, req *kmsg.TxnOffsetCommitRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	codes := make([][]int16, len(req.Topics))
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
	}
	if code := s.txnOffsetCommit(ctx, req, codes); code != 0 {
		for i := range codes {
			for j := range codes[i] {
				if codes[i][j] == 0 {
					codes[i][j] = code
				}
			}
		}
	}
	for i, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for j, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return now(resp)
}

func (s *Server) txnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest, codes [][]int16) int16 {
	g, code := s.groups().lock(ctx, req.Group)
	if code != 0 {
		return code
	}
	defer g.mu.Unlock()
	if req.Version >= 3 && (req.Generation >= 0 || req.MemberID != "") && g.cg != nil {
		m := g.cg.members[req.MemberID]
		if m == nil || m.epoch == -2 {
			return kerr.UnknownMemberID.Code
		}
		if req.Generation != -1 && req.Generation != m.epoch {
			return kerr.IllegalGeneration.Code
		}
	} else if req.Version >= 3 && (req.Generation >= 0 || req.MemberID != "") {
		if _, code := g.fenced(req.MemberID, req.InstanceID); code != 0 {
			return code
		}
		if req.Generation != g.generation {
			return kerr.IllegalGeneration.Code
		}
	}
	now := time.Now().UnixMilli()
	var offs []metastore.GroupOffset
	for i, t := range req.Topics {
		var (
			tp   metastore.Topic
			terr error
		)
		if req.Version >= 6 {
			tp, terr = s.topics.getByID(ctx, metastore.TopicID(t.TopicID))
		} else {
			tp, terr = s.topics.get(ctx, t.Topic)
		}
		for j, p := range t.Partitions {
			switch {
			case terr != nil && req.Version >= 6 && (errors.Is(terr, metastore.ErrTopicNotFound) || errors.Is(terr, metastore.ErrInvalid)):
				codes[i][j] = kerr.UnknownTopicID.Code
			case terr != nil:
				codes[i][j] = kerr.UnknownTopicOrPartition.Code
				if !errors.Is(terr, metastore.ErrTopicNotFound) && !errors.Is(terr, metastore.ErrInvalid) {
					codes[i][j] = errCode(s.log, "txn offset commit: get topic", terr)
				}
			case p.Partition < 0 || p.Partition >= tp.Partitions && !s.refreshPartitions(ctx, &tp, p.Partition):
				codes[i][j] = kerr.UnknownTopicOrPartition.Code
			case p.Metadata != nil && len(*p.Metadata) > maxOffsetMetadata:
				codes[i][j] = kerr.OffsetMetadataTooLarge.Code
			}
			if codes[i][j] != 0 {
				continue
			}
			md := ""
			if p.Metadata != nil {
				md = *p.Metadata
			}
			offs = append(offs, metastore.GroupOffset{Topic: tp.Name, Partition: p.Partition, TopicID: tp.ID,
				Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: md, CommitMs: now})
		}
	}
	if len(offs) > 100 {
		return kerr.InvalidRequest.Code
	}
	fenced := fencedCode(req.Version, 3)
	for range claimAttempts {
		st, ok, err := s.meta.GetTxnState(ctx, req.TransactionalID)
		switch {
		case err != nil:
			return errCode(s.log, "txn offset commit: read transaction", err)
		case !ok || st.ProducerID != req.ProducerID:
			return kerr.InvalidProducerIDMapping.Code
		case st.Epoch != req.ProducerEpoch:
			return fenced
		case req.Version >= 5 && (st.Phase != metastore.TxnOngoing || !st.HasGroup(req.Group)):
			// KIP-890 part 2: add the group to the transaction.
			switch st.Phase {
			case metastore.TxnPrepareCommit, metastore.TxnPrepareAbort:
				return kerr.ConcurrentTransactions.Code
			case metastore.TxnOngoing:
				st.Groups = append(slices.Clone(st.Groups), req.Group)
			default:
				st = st.Begin(time.Now().UnixMilli())
				st.Groups = []string{req.Group}
			}
			if len(st.Groups) > maxTxnGroups {
				return kerr.InvalidRequest.Code
			}
			st.UpdateMs = time.Now().UnixMilli()
			rev, err := s.meta.AddToTxnState(ctx, req.TransactionalID, st)
			if errors.Is(err, metastore.ErrConflict) {
				continue
			}
			if err != nil {
				return errCode(s.log, "txn offset commit: add the group to the transaction", err)
			}
			st.Revision = rev
		case st.Phase != metastore.TxnOngoing || !st.HasGroup(req.Group):
			return kerr.InvalidTxnState.Code
		}
		if len(offs) == 0 {
			return 0
		}
		err = s.meta.PutTxnOffsets(ctx, req.TransactionalID, st.Revision, req.Group, req.ProducerID, offs)
		if !errors.Is(err, metastore.ErrConflict) {
			if err != nil {
				return errCode(s.log, "txn offset commit", err)
			}
			return 0
		}
	}
	return kerr.ConcurrentTransactions.Code
}
