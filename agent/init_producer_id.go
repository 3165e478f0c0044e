package agent

// InitProducerID (key 22): v0-v5.
//
// Without a transactional ID: a fresh producer ID from etcd (unique
// across agents) and epoch 0; a producer ID and epoch sent to be bumped
// (v3+) are ignored and a fresh ID is returned, as Kafka does for a
// non-transactional producer. De-duplication happens in the engine at
// commit time against state kept in etcd, so a retry through any agent is
// caught.
//
// With a transactional ID (txn_coord.go) only its coordinator answers
// (NOT_COORDINATOR elsewhere). The first init gives the ID a producer ID
// and epoch 0; every later one bumps the epoch, fencing the previous
// producer (its requests then get PRODUCER_FENCED or, at old request
// versions, INVALID_PRODUCER_EPOCH). An ongoing transaction is aborted
// first, its markers written at the new epoch so the old producer's late
// batches are refused in every partition it touched. At the last epoch
// (32766) a new producer ID is allocated, epoch 0. A request naming the
// current producer ID and an epoch at or below the current one (KIP-360,
// a producer recovering after a timeout abort) is bumped the same way;
// another producer ID is INVALID_PRODUCER_ID_MAPPING, a newer epoch
// PRODUCER_FENCED. transaction.timeout.ms must be 1 ms to 15 minutes
// (INVALID_TRANSACTION_TIMEOUT).

import (
	"context"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.InitProducerID, 0, 5, (*Server).handleInitProducerID, custom(authorizeInitProducerID, need{kmsg.ACLOperationIdempotentWrite, kmsg.ACLResourceTypeCluster}))
}

func (s *Server) handleInitProducerID(ctx context.Context, _ *reqCtx, req *kmsg.InitProducerIDRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = s.initTransactional(ctx, req, resp)
		return now(resp)
	}
	id, code := s.allocateProducerID(ctx)
	resp.ErrorCode = code
	if code == 0 {
		resp.ProducerID, resp.ProducerEpoch = id, 0
	}
	return now(resp)
}

func (s *Server) allocateProducerID(ctx context.Context) (int64, int16) {
	id, err := s.meta.AllocateProducerID(ctx)
	if err != nil {
		code := errCode(s.log, "allocate producer id", err)
		if code == kerr.UnknownServerError.Code {
			// etcd trouble is transient: let the client retry.
			code = kerr.CoordinatorNotAvailable.Code
		}
		return -1, code
	}
	return id, 0
}

func (s *Server) initTransactional(ctx context.Context, req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) int16 {
	t := *req.TransactionalID
	if t == "" {
		return kerr.InvalidRequest.Code
	}
	if req.TransactionTimeoutMillis <= 0 || time.Duration(req.TransactionTimeoutMillis)*time.Millisecond > maxTxnTimeout {
		return kerr.InvalidTransactionTimeout.Code
	}
	c := s.txns()
	e, code := c.lock(ctx, t)
	if code != 0 {
		return code
	}
	defer e.mu.Unlock()
	if !e.exists {
		id, code := s.allocateProducerID(ctx)
		if code != 0 {
			return code
		}
		st := metastore.TxnState{ProducerID: id, TimeoutMs: req.TransactionTimeoutMillis, Phase: metastore.TxnEmpty}
		if code := c.put(ctx, e, st); code != 0 {
			return code
		}
		resp.ProducerID, resp.ProducerEpoch = id, 0
		return 0
	}
	if req.ProducerID >= 0 && req.ProducerEpoch >= 0 {
		switch {
		case req.ProducerID != e.st.ProducerID:
			return kerr.InvalidProducerIDMapping.Code
		case req.ProducerEpoch > e.st.Epoch:
			return kerr.ProducerFenced.Code
		}
	}
	st := e.st
	switch {
	case st.Phase == metastore.TxnOngoing && st.Epoch < math.MaxInt16-1:
		// Fence the previous producer: abort at a new epoch, which the
		// new producer then uses.
		if code := c.end(ctx, e, false, st.Epoch+1); code != 0 {
			return code
		}
		st = e.st
	case st.Phase == metastore.TxnOngoing:
		// At the last epoch: abort, then a new producer ID.
		if code := c.end(ctx, e, false, st.Epoch); code != 0 {
			return code
		}
		id, code := s.allocateProducerID(ctx)
		if code != 0 {
			return code
		}
		st = e.st
		st.ProducerID, st.Epoch = id, 0
	case st.Epoch < math.MaxInt16-1:
		st.Epoch++
	default:
		id, code := s.allocateProducerID(ctx)
		if code != 0 {
			return code
		}
		st.ProducerID, st.Epoch = id, 0
	}
	st.TimeoutMs = req.TransactionTimeoutMillis
	st.Phase, st.EndBumped = metastore.TxnEmpty, false
	if code := c.put(ctx, e, st); code != 0 {
		return code
	}
	resp.ProducerID, resp.ProducerEpoch = st.ProducerID, st.Epoch
	return 0
}

// fencedCode is PRODUCER_FENCED from the request version that carries it
// (KIP-588), INVALID_PRODUCER_EPOCH before.
func fencedCode(version, from int16) int16 {
	if version >= from {
		return kerr.ProducerFenced.Code
	}
	return kerr.InvalidProducerEpoch.Code
}

// checkProducer validates a request's producer ID and epoch against the
// transactional ID's state; fenced is the code for a wrong epoch.
func checkProducer(e *txnEntry, pid int64, epoch int16, fenced int16) int16 {
	switch {
	case !e.exists || e.st.ProducerID != pid:
		return kerr.InvalidProducerIDMapping.Code
	case e.st.Epoch != epoch:
		return fenced
	}
	return 0
}
