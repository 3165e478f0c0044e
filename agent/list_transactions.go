package agent

// ListTransactions (key 66): v0-v2.
//
// Like a Kafka broker, an agent lists the transactional IDs it
// coordinates, so that a client asking every agent (kadm does) sees each
// ID once, with its coordinator. IDs nobody coordinates (their
// coordinator stopped and no producer came back) are listed by the
// rendezvous-hash winner of the ID over the live agents, the agent
// FindCoordinator names for them. Filters: states (unknown names are
// returned in UnknownStateFilters), producer IDs, the minimum duration of
// an ongoing transaction (v1+), a transactional ID regular expression
// (v2+, INVALID_REGULAR_EXPRESSION when it does not compile). Only IDs the
// principal may DESCRIBE are listed.

import (
	"context"
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.ListTransactions, 0, 2, (*Server).handleListTransactions,
		custom(authorizeListTransactions, need{kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId}))
}

var txnPhases = []string{
	string(metastore.TxnEmpty), string(metastore.TxnOngoing), string(metastore.TxnPrepareCommit),
	string(metastore.TxnPrepareAbort), string(metastore.TxnCompleteCommit), string(metastore.TxnCompleteAbort),
	"Dead", "PrepareEpochFence",
}

func (s *Server) handleListTransactions(ctx context.Context, _ *reqCtx, req *kmsg.ListTransactionsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	var re *regexp.Regexp
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var err error
		if re, err = regexp.Compile(*req.TransactionalIDPattern); err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return now(resp)
		}
	}
	for _, f := range req.StateFilters {
		if !slices.Contains(txnPhases, f) {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, f)
		}
	}
	ls, err := s.meta.ListTxns(ctx)
	if err != nil {
		resp.ErrorCode = errCode(s.log, "list transactions", err)
		return now(resp)
	}
	var agents []metastore.AgentInfo
	nowMs := time.Now().UnixMilli()
	for _, l := range ls {
		if !l.HasState {
			continue
		}
		if l.Coordinator < 0 {
			if agents == nil {
				agents = s.liveAgents(ctx)
			}
			if win, ok := rendezvous(agents, l.ID); !ok || win.NodeID != s.NodeID() {
				continue
			}
		} else if l.Coordinator != s.NodeID() {
			continue
		}
		st := l.State
		switch {
		case len(req.StateFilters) > 0 && !slices.Contains(req.StateFilters, string(st.Phase)),
			len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, st.ProducerID),
			req.Version >= 1 && req.DurationFilterMillis >= 0 && (st.Phase != metastore.TxnOngoing || nowMs-st.StartMs < req.DurationFilterMillis),
			re != nil && !re.MatchString(l.ID):
			continue
		}
		ts := kmsg.NewListTransactionsResponseTransactionState()
		ts.TransactionalID, ts.ProducerID, ts.TransactionState = l.ID, st.ProducerID, string(st.Phase)
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return now(resp)
}
