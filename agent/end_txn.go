package agent

// EndTxn (key 26): v0-v5.
//
// Answered by the transactional ID's coordinator (NOT_COORDINATOR
// elsewhere), once the transaction is ended: the decision durable in
// etcd, a commit or abort marker written into every partition of the
// transaction and the group offsets committed or dropped (txn_coord.go).
// Kafka answers once the decision is durable and writes the markers
// afterwards; shale answers after the markers, so the next transaction
// never meets CONCURRENT_TRANSACTIONS and what was committed is readable
// when EndTxn returns, at the cost of one flush of latency (measured
// against answering first in doc.go). If the markers cannot all be
// written (the coordinator keeps retrying them), the answer is
// CONCURRENT_TRANSACTIONS and a retry answers once they are.
//
// A retried EndTxn whose transaction already ended the same way succeeds;
// the other way, or with no transaction at all, it is INVALID_TXN_STATE.
// A wrong producer ID is INVALID_PRODUCER_ID_MAPPING, a wrong epoch
// PRODUCER_FENCED (v2+; INVALID_PRODUCER_EPOCH before): the epoch also
// moves when the coordinator aborts a transaction at its timeout.
//
// v5 (KIP-890 part 2) ends every transaction at the next epoch, which
// the response carries (and, at the last epoch, a new producer ID): the
// markers are written at it, fencing late batches of the transaction
// that ended, and the producer uses it for the next one. An abort with no
// transaction is allowed and only bumps the epoch. A retry (the epoch
// below the current one, right after such an end) succeeds if it asks
// the same outcome, with the current producer ID and epoch; a commit
// with no transaction, or a retry of the other outcome, is
// INVALID_TXN_STATE. Clients send v5 only when the transaction.version
// feature is 2 (Config.TransactionVersion, --transaction-version).

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.EndTxn, 0, 5, (*Server).handleEndTxn, custom(authorizeEndTxn, needTxnWrite))
}

func (s *Server) handleEndTxn(ctx context.Context, _ *reqCtx, req *kmsg.EndTxnRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	if req.Version >= 5 {
		resp.ErrorCode = s.endTxnBumped(ctx, req, resp)
	} else {
		resp.ErrorCode = s.endTxn(ctx, req)
	}
	return now(resp)
}

// endTxnBumped is EndTxn v5+; on success resp carries the producer ID
// and epoch of the next transaction.
func (s *Server) endTxnBumped(ctx context.Context, req *kmsg.EndTxnRequest, resp *kmsg.EndTxnResponse) int16 {
	c := s.txns()
	e, code := c.lock(ctx, req.TransactionalID)
	if code != 0 {
		return code
	}
	defer e.mu.Unlock()
	if !e.exists {
		return kerr.InvalidProducerIDMapping.Code
	}
	st := e.st
	current := st.ProducerID == req.ProducerID && st.Epoch == req.ProducerEpoch
	retry := st.EndBumped && (st.ProducerID == req.ProducerID && st.Epoch == req.ProducerEpoch+1 ||
		st.PrevProducerID == req.ProducerID && st.ProducerID != req.ProducerID && st.Epoch == 0 && req.ProducerEpoch == math.MaxInt16-1)
	switch {
	case !current && !retry && st.ProducerID != req.ProducerID && st.PrevProducerID != req.ProducerID:
		return kerr.InvalidProducerIDMapping.Code
	case !current && !retry:
		return kerr.ProducerFenced.Code
	}
	code = kerr.InvalidTxnState.Code
	switch st.Phase {
	case metastore.TxnOngoing:
		code = kerr.ProducerFenced.Code // a retry's transaction ended; this one is newer
		if current {
			code = c.endBumped(ctx, e, req.Commit)
		}
	case metastore.TxnPrepareCommit, metastore.TxnPrepareAbort:
		code = kerr.ConcurrentTransactions.Code
	case metastore.TxnCompleteCommit, metastore.TxnCompleteAbort:
		committed := st.Phase == metastore.TxnCompleteCommit
		switch {
		case retry && req.Commit == committed:
			code = 0
		case current && !req.Commit:
			code = c.endBumped(ctx, e, false)
		}
	case metastore.TxnEmpty:
		if current && !req.Commit {
			code = c.endBumped(ctx, e, false)
		}
	}
	if code == 0 {
		resp.ProducerID, resp.ProducerEpoch = e.st.ProducerID, e.st.Epoch
	}
	return code
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
