package agent

// EndTxn (key 26): v0-v4.
//
// Answered by the transactional ID's coordinator (NOT_COORDINATOR
// elsewhere), once the transaction is ended: the decision durable in
// etcd, a commit or abort marker written into every partition of the
// transaction and the group offsets committed or dropped (txn_coord.go).
// Kafka answers once the decision is durable and writes the markers
// afterwards; shale answers after the markers, so the next transaction
// never meets CONCURRENT_TRANSACTIONS, at the cost of one flush of
// latency. If the markers cannot all be written (the coordinator keeps
// retrying them), the answer is CONCURRENT_TRANSACTIONS and a retry
// answers once they are.
//
// A retried EndTxn whose transaction already ended the same way succeeds;
// the other way, or with no transaction at all, it is INVALID_TXN_STATE.
// A wrong producer ID is INVALID_PRODUCER_ID_MAPPING, a wrong epoch
// PRODUCER_FENCED (v2+; INVALID_PRODUCER_EPOCH before): the epoch also
// moves when the coordinator aborts a transaction at its timeout.
// v5 (KIP-890 part 2, an epoch bump per transaction) is not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.EndTxn, 0, 4, (*Server).handleEndTxn, custom(authorizeEndTxn, needTxnWrite))
}

func (s *Server) handleEndTxn(ctx context.Context, _ *reqCtx, req *kmsg.EndTxnRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ErrorCode = s.endTxn(ctx, req)
	return now(resp)
}

func (s *Server) endTxn(ctx context.Context, req *kmsg.EndTxnRequest) int16 {
	c := s.txns()
	e, code := c.lock(ctx, req.TransactionalID)
	if code != 0 {
		return code
	}
	defer e.mu.Unlock()
	if code := checkProducer(e, req.ProducerID, req.ProducerEpoch, fencedCode(req.Version, 2)); code != 0 {
		return code
	}
	switch e.st.Phase {
	case metastore.TxnOngoing:
		return c.end(ctx, e, req.Commit, e.st.Epoch)
	case metastore.TxnCompleteCommit:
		if req.Commit {
			return 0
		}
	case metastore.TxnCompleteAbort:
		if !req.Commit {
			return 0
		}
	case metastore.TxnPrepareCommit, metastore.TxnPrepareAbort:
		return kerr.ConcurrentTransactions.Code
	}
	return kerr.InvalidTxnState.Code
}
