package agent

// AddOffsetsToTxn (key 25): v0-v4.
//
// Answered by the transactional ID's coordinator (NOT_COORDINATOR
// elsewhere). Adds a consumer group to the producer's transaction
// (starting it if none is ongoing), so that the group's TxnOffsetCommit
// offsets are committed or dropped with it. Errors as AddPartitionsToTxn:
// INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED (v2+; INVALID_PRODUCER_EPOCH
// before), CONCURRENT_TRANSACTIONS during an end, INVALID_GROUP_ID for an
// empty group. Unlike Kafka, at most 100 groups per transaction
// (INVALID_REQUEST beyond). v4 is served as v3 (no KIP-890 part 2).

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.AddOffsetsToTxn, 0, 4, (*Server).handleAddOffsetsToTxn,
		custom(authorizeAddOffsetsToTxn, needTxnWrite, need{kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup}))
}

func (s *Server) handleAddOffsetsToTxn(ctx context.Context, _ *reqCtx, req *kmsg.AddOffsetsToTxnRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	resp.ErrorCode = s.addOffsetsToTxn(ctx, req)
	return now(resp)
}

func (s *Server) addOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest) int16 {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code
	}
	c := s.txns()
	e, code := c.lock(ctx, req.TransactionalID)
	if code != 0 {
		return code
	}
	defer e.mu.Unlock()
	if code := checkProducer(e, req.ProducerID, req.ProducerEpoch, fencedCode(req.Version, 2)); code != 0 {
		return code
	}
	st := e.st
	switch st.Phase {
	case metastore.TxnPrepareCommit, metastore.TxnPrepareAbort:
		return kerr.ConcurrentTransactions.Code
	case metastore.TxnOngoing:
		if st.HasGroup(req.Group) {
			return 0
		}
		st.Groups = slices.Clone(st.Groups)
	default:
		st = st.Begin(time.Now().UnixMilli())
	}
	if len(st.Groups) >= maxTxnGroups {
		return kerr.InvalidRequest.Code
	}
	st.Groups = append(st.Groups, req.Group)
	return c.put(ctx, e, st)
}
