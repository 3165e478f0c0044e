package agent

// DescribeTransactions (key 65): v0.
//
// Per transactional ID: NOT_COORDINATOR when another agent coordinates it
// (clients find the coordinator with FindCoordinator key type 1);
// otherwise its state as the coordinator (this agent) holds it, or as etcd
// holds it when no agent coordinates it. TRANSACTIONAL_ID_NOT_FOUND when
// it has none. State is Kafka's name of the phase (Empty, Ongoing,
// PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort);
// StartTimestamp is -1 unless a transaction is ongoing or ending. Each
// ID needs DESCRIBE on it (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), and
// partitions of topics the principal may not describe are left out, as in
// Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.DescribeTransactions, 0, 0, (*Server).handleDescribeTransactions,
		custom(authorizeDescribeTransactions, need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId}))
}

func (s *Server) handleDescribeTransactions(ctx context.Context, _ *reqCtx, req *kmsg.DescribeTransactionsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, t := range req.TransactionalIDs {
		resp.TransactionStates = append(resp.TransactionStates, s.describeTxn(ctx, t))
	}
	return now(resp)
}

func (s *Server) describeTxn(ctx context.Context, t string) kmsg.DescribeTransactionsResponseTransactionState {
	out := kmsg.NewDescribeTransactionsResponseTransactionState()
	out.TransactionalID, out.ProducerID, out.ProducerEpoch, out.StartTimestamp = t, -1, -1, -1
	st, code := s.txnStateForDescribe(ctx, t)
	if code != 0 {
		out.ErrorCode = code
		return out
	}
	out.State, out.TimeoutMillis, out.ProducerID, out.ProducerEpoch = string(st.Phase), st.TimeoutMs, st.ProducerID, st.Epoch
	if st.StartMs > 0 {
		out.StartTimestamp = st.StartMs
	}
	for _, p := range st.Partitions {
		if n := len(out.Topics); n == 0 || out.Topics[n-1].Topic != p.Topic {
			tt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
			tt.Topic = p.Topic
			out.Topics = append(out.Topics, tt)
		}
		tt := &out.Topics[len(out.Topics)-1]
		tt.Partitions = append(tt.Partitions, p.Partition)
	}
	return out
}

// txnStateForDescribe returns t's state as its coordinator knows it: this
// agent's when it coordinates t, etcd's when nobody does.
func (s *Server) txnStateForDescribe(ctx context.Context, t string) (metastore.TxnState, int16) {
	if t == "" {
		return metastore.TxnState{}, kerr.TransactionalIDNotFound.Code
	}
	holder, err := s.meta.TxnCoordinator(ctx, t)
	if err != nil {
		return metastore.TxnState{}, errCode(s.log, "describe transactions", err)
	}
	if holder >= 0 && holder != s.NodeID() {
		return metastore.TxnState{}, kerr.NotCoordinator.Code
	}
	var (
		st metastore.TxnState
		ok bool
	)
	if holder >= 0 {
		e, code := s.txns().lock(ctx, t)
		if code != 0 {
			return metastore.TxnState{}, code
		}
		st, ok = e.st, e.exists
		e.mu.Unlock()
	} else if st, ok, err = s.meta.GetTxnState(ctx, t); err != nil {
		return metastore.TxnState{}, errCode(s.log, "describe transactions", err)
	}
	if !ok {
		return metastore.TxnState{}, kerr.TransactionalIDNotFound.Code
	}
	return st, 0
}
