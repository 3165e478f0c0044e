package agent

// The transaction coordinator: one agent at a time per transactional ID,
// claimed in etcd like a group's coordinator (txns/<t>/coordinator under
// the agent's session lease, metastore.ClaimTxnCoordinator). The state of
// each ID (producer ID, epoch, timeout, phase, partitions, groups, start
// time) lives in etcd (txns/<t>/state, metastore.TxnState), written only
// under the coordinator key's lease and compared on its revision; the
// agent caches it while it holds the ID, and nothing else.
//
// Ending a transaction (EndTxn, an InitProducerId that fences an ongoing
// one, a timeout):
//
//  1. The state goes to PrepareCommit or PrepareAbort in etcd. From here
//     the outcome is decided, whoever finishes it.
//  2. A marker (control batch) is written into each partition of the
//     transaction through the engine's normal write path
//     (engine.WriteMarker), so each takes an offset; at its etcd commit it
//     closes the producer's open transaction in the partition (raising
//     the last stable offset) and, for an abort, adds the transaction to
//     the partition's aborted-transaction index. It carries the
//     transaction's StartRevision, which the partition keeps, so that a
//     batch of this transaction verified before the end and committing
//     after the marker is refused (engine.ProduceTxn).
//  3. Pending TxnOffsetCommit offsets of each group in the transaction
//     become the group's committed offsets (commit) or are dropped
//     (abort): metastore.FinishTxnOffsets.
//  4. The state goes to CompleteCommit or CompleteAbort, partitions and
//     groups cleared; then EndTxn is answered.
//
// An agent that dies anywhere in 2-4 leaves the state in Prepare*. Its
// lease expires, the next request for the ID (the producer retrying
// through FindCoordinator) claims it on another agent, and that agent's
// first act (lock) is to redo 2-4. A marker for a partition whose
// transaction it already closed finds no open transaction of the
// producer there and is dropped at commit time (the engine answers it as
// a duplicate), so redoing 2 writes each marker once; 3 moves only what
// is left. An agent that lost its lease can write nothing: every state
// and offset write is fenced by the coordinator key's lease.
//
// Timeouts: every second the coordinator aborts its Ongoing transactions
// older than their transaction.timeout.ms, with an epoch bump so that the
// producer is fenced (as Kafka does), and finishes Prepare* ones whose end
// failed earlier. Every orphanSweep, each agent also lists the
// transactional IDs in etcd and adopts (claims, then finishes or aborts)
// those nobody coordinates that are Prepare*, or Ongoing past their
// timeout, and whose rendezvous-hash winner over the live agents it is:
// a transaction whose coordinator and producer both died would otherwise
// hold its partitions' last stable offset forever. The same sweep aborts
// overdue transactions of IDs this agent coordinates whose state it has
// not read since another agent started them (KIP-890 part 2's implicit
// adds, below): their timeout is enforced within orphanSweep.
//
// KIP-890 part 2: a Produce v12+ or TxnOffsetCommit v5+ adds its
// partition or group to the transaction itself (starting it if none is
// ongoing), from whichever agent answers it, with
// metastore.AddToTxnState: compared on the state's revision, as every
// coordinator write is, so an add and an end never both succeed. The
// coordinator therefore reads the state afresh at every request (lock).

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/retry"
	"github.com/shale-dev/shale/metastore"
)

const (
	// maxTxnTimeout is Kafka's transaction.max.timeout.ms default.
	maxTxnTimeout = 15 * time.Minute
	// maxTxnPartitions bounds one transaction's partitions (its state is
	// one etcd value).
	maxTxnPartitions = 5000
	// maxTxnGroups bounds one transaction's groups.
	maxTxnGroups = 100
	// txnSweep is how often timeouts and unfinished ends are looked at.
	txnSweep = time.Second
	// orphanSweep is how often transactions nobody coordinates are looked for.
	orphanSweep = 10 * time.Second
	// markerTimeout bounds the writing of one end's markers.
	markerTimeout = 30 * time.Second
)

// txnCoord is one agent's registry of the transactional IDs it coordinates.
type txnCoord struct {
	s  *Server
	mu sync.Mutex
	// ids holds the IDs claimed under a session lease.
	ids map[string]*txnEntry
	// open counts the entries whose transaction is Ongoing or Prepare*
	// (the txn_open gauge); each entry counts itself once (recount).
	open atomic.Int64
}

// txnEntry is one coordinated transactional ID. Its fields are guarded by mu.
type txnEntry struct {
	mu     sync.Mutex
	name   string
	lease  clientv3.LeaseID
	loaded bool // st reflects etcd
	exists bool // the state key exists
	dead   bool // left the registry: re-acquire
	st     metastore.TxnState
	// counted: this entry is in txnCoord.open.
	counted bool
}

// recount brings e's share of the open-transactions count up to date
// after a change of its state, with e.mu held.
func (c *txnCoord) recount(e *txnEntry) {
	open := !e.dead && e.loaded && e.exists && (e.st.Phase == metastore.TxnOngoing || preparing(e.st.Phase))
	if open != e.counted {
		if open {
			c.open.Add(1)
		} else {
			c.open.Add(-1)
		}
		e.counted = open
	}
}

// txns returns the server's transaction coordinator, starting it on first use.
func (s *Server) txns() *txnCoord {
	s.txnOnce.Do(func() {
		s.txnc = &txnCoord{s: s, ids: map[string]*txnEntry{}}
		c := s.txnc
		s.cfg.Metrics.GaugeFunc("txn_open", "Transactions ongoing or ending on this agent's transaction coordinator.",
			func() float64 { return float64(c.open.Load()) })
		go s.txnc.run()
	})
	return s.txnc
}

// run drops every ID when the session that claimed them ends, and sweeps
// timeouts, until the server closes.
func (c *txnCoord) run() {
	t := time.NewTicker(txnSweep)
	defer t.Stop()
	lastOrphans := time.Now()
	for {
		sess := c.s.currentSession()
		var done <-chan struct{}
		if sess != nil {
			done = sess.Done()
		}
		select {
		case <-c.s.ctx.Done():
			c.dropAll()
			return
		case <-done:
			c.dropAll()
			// Wait for keepRegistered to install a new session.
			for c.s.currentSession() == sess {
				if !retry.Sleep(c.s.ctx, 100*time.Millisecond) {
					break // closing: the select above returns
				}
			}
		case <-t.C:
			c.sweep()
			every := orphanSweep
			if d := time.Duration(c.s.txnOrphanOverride.Load()); d > 0 {
				every = d
			}
			if time.Since(lastOrphans) >= every {
				lastOrphans = time.Now()
				c.adoptOrphans()
			}
		}
	}
}

func (c *txnCoord) dropAll() {
	c.mu.Lock()
	ids := c.ids
	c.ids = map[string]*txnEntry{}
	c.mu.Unlock()
	for _, e := range ids {
		e.mu.Lock()
		e.dead = true
		c.recount(e)
		e.mu.Unlock()
	}
}

// forget removes e (its claim is lost), with e.mu held.
func (c *txnCoord) forget(e *txnEntry) {
	e.dead = true
	c.recount(e)
	c.mu.Lock()
	if c.ids[e.name] == e {
		delete(c.ids, e.name)
	}
	c.mu.Unlock()
}

// lock returns t's entry, claimed by this agent, loaded from etcd, with
// any end a previous coordinator left unfinished finished, and locked (the
// caller unlocks e.mu). Otherwise it returns NOT_COORDINATOR (another
// agent holds t), COORDINATOR_NOT_AVAILABLE (no session, etcd trouble) or
// CONCURRENT_TRANSACTIONS (an unfinished end could not be finished yet).
func (c *txnCoord) lock(ctx context.Context, t string) (*txnEntry, int16) {
	if t == "" {
		return nil, kerr.InvalidRequest.Code
	}
	for range claimAttempts {
		sess := c.s.currentSession()
		if sess == nil {
			return nil, kerr.CoordinatorNotAvailable.Code
		}
		c.mu.Lock()
		e := c.ids[t]
		c.mu.Unlock()
		if e == nil || e.lease != sess.Lease() {
			holder, mine, err := c.s.meta.ClaimTxnCoordinator(ctx, t, sess.NodeID(), sess.Lease())
			if err != nil {
				c.s.log.Warn("claim transaction coordinator failed", "transactional_id", t, "err", err)
				return nil, kerr.CoordinatorNotAvailable.Code
			}
			if !mine {
				c.s.log.Debug("not transaction coordinator", "transactional_id", t, "holder", holder)
				return nil, kerr.NotCoordinator.Code
			}
			c.mu.Lock()
			if e = c.ids[t]; e == nil || e.lease != sess.Lease() {
				e = &txnEntry{name: t, lease: sess.Lease()}
				c.ids[t] = e
				c.s.log.Info("coordinating transactional id", "transactional_id", t)
			}
			c.mu.Unlock()
		}
		e.mu.Lock()
		if e.dead {
			e.mu.Unlock()
			continue
		}
		// Read the state afresh: other agents add partitions and groups
		// to it (KIP-890 part 2, metastore.AddToTxnState).
		e.loaded = false
		if code := c.load(ctx, e); code != 0 {
			e.mu.Unlock()
			return nil, code
		}
		return e, 0
	}
	return nil, kerr.CoordinatorNotAvailable.Code
}

// load reads e's state when it is not known, and finishes an end left in
// Prepare*. e.mu is held.
func (c *txnCoord) load(ctx context.Context, e *txnEntry) int16 {
	if !e.loaded {
		st, ok, err := c.s.meta.GetTxnState(ctx, e.name)
		if err != nil {
			c.s.log.Warn("read transaction state failed", "transactional_id", e.name, "err", err)
			return kerr.CoordinatorNotAvailable.Code
		}
		e.st, e.exists, e.loaded = st, ok, true
		c.recount(e)
	}
	if e.exists && preparing(e.st.Phase) {
		return c.complete(ctx, e)
	}
	return 0
}

func preparing(p metastore.TxnPhase) bool {
	return p == metastore.TxnPrepareCommit || p == metastore.TxnPrepareAbort
}

// put writes st as e's new state (compared on e's revision, fenced by
// e's lease). e.mu is held.
func (c *txnCoord) put(ctx context.Context, e *txnEntry, st metastore.TxnState) int16 {
	st.Revision = 0
	if e.exists {
		st.Revision = e.st.Revision
	}
	st.UpdateMs = time.Now().UnixMilli()
	rev, err := c.s.meta.PutTxnState(ctx, e.name, e.lease, st)
	defer c.recount(e)
	switch {
	case err == nil:
		st.Revision = rev
		e.st, e.exists = st, true
		return 0
	case errors.Is(err, metastore.ErrNotCoordinator):
		c.s.log.Warn("lost transaction coordinator key", "transactional_id", e.name)
		c.forget(e)
		return kerr.NotCoordinator.Code
	default:
		// A conflict or an unknown outcome: read it again next time.
		c.s.log.Warn("write transaction state failed", "transactional_id", e.name, "err", err)
		e.loaded = false
		return kerr.CoordinatorNotAvailable.Code
	}
}

// end decides e's ongoing transaction (commit or abort) at epoch, durably
// (Prepare*), and completes it. e.mu is held.
func (c *txnCoord) end(ctx context.Context, e *txnEntry, commit bool, epoch int16) int16 {
	st := e.st
	st.Epoch, st.EndBumped = epoch, false
	st.Phase = metastore.TxnPrepareAbort
	if commit {
		st.Phase = metastore.TxnPrepareCommit
	}
	if code := c.put(ctx, e, st); code != 0 {
		return code
	}
	return c.complete(ctx, e)
}

// endBumped ends e's transaction as EndTxn v5+ does (KIP-890 part 2):
// decided at the next epoch, whose markers fence the producer's late
// batches of this transaction, and which the producer uses for the next.
// At the last epoch, the markers take epoch 32767 and the next
// transaction a new producer ID (NextProducerID, swapped in at
// completion). With nothing in the transaction (an abort of Empty or
// Complete*, which v5 allows) it only bumps the epoch. e.mu is held.
func (c *txnCoord) endBumped(ctx context.Context, e *txnEntry, commit bool) int16 {
	st := e.st
	st.Phase, st.EndBumped = metastore.TxnPrepareAbort, true
	if commit {
		st.Phase = metastore.TxnPrepareCommit
	}
	if st.Epoch < math.MaxInt16-1 {
		st.Epoch++
	} else {
		id, code := c.s.allocateProducerID(ctx)
		if code != 0 {
			return code
		}
		st.Epoch, st.NextProducerID = math.MaxInt16, id
	}
	if code := c.put(ctx, e, st); code != 0 {
		return code
	}
	return c.complete(ctx, e)
}

// complete writes the markers and the group offsets of a Prepare* state,
// then marks it Complete*. It is idempotent (see the file comment). On
// failure the state stays Prepare* and the next lock or sweep retries;
// the caller gets CONCURRENT_TRANSACTIONS, which clients retry. e.mu is held.
func (c *txnCoord) complete(ctx context.Context, e *txnEntry) int16 {
	st := e.st
	commit := st.Phase == metastore.TxnPrepareCommit
	// The markers are written even if the request that asked ends.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markerTimeout)
	defer cancel()
	t0 := time.Now()
	if err := c.writeMarkers(mctx, st, commit); err != nil {
		c.s.log.Warn("writing transaction markers failed; will retry", "transactional_id", e.name, "err", err)
		return kerr.ConcurrentTransactions.Code
	}
	for _, g := range st.Groups {
		if err := c.s.meta.FinishTxnOffsets(mctx, e.name, e.lease, g, st.ProducerID, commit); err != nil {
			c.s.log.Warn("finishing transactional offsets failed; will retry", "transactional_id", e.name, "group", g, "err", err)
			if errors.Is(err, metastore.ErrNotCoordinator) {
				c.forget(e)
				return kerr.NotCoordinator.Code
			}
			return kerr.ConcurrentTransactions.Code
		}
	}
	st.Phase = metastore.TxnCompleteAbort
	if commit {
		st.Phase = metastore.TxnCompleteCommit
	}
	st.Partitions, st.Groups, st.StartMs, st.StartRevision = nil, nil, 0, 0
	if st.NextProducerID > 0 {
		// An EndTxn v5 at the last epoch: the markers carried the old
		// producer ID; the next transaction has a new one.
		st.PrevProducerID, st.ProducerID, st.Epoch, st.NextProducerID = st.ProducerID, st.NextProducerID, 0, 0
	}
	if code := c.put(mctx, e, st); code != 0 {
		return code
	}
	c.s.cfg.Metrics.TxnEnded(commit, time.Since(t0))
	return 0
}

// writeMarkers writes one marker per partition of st, concurrently, and
// waits for all. A partition whose topic was deleted needs none.
func (c *txnCoord) writeMarkers(ctx context.Context, st metastore.TxnState, commit bool) error {
	type waiter struct {
		p    metastore.TxnPartition
		pend *engine.Pending
	}
	ws := make([]waiter, 0, len(st.Partitions))
	for _, p := range st.Partitions {
		// A marker goes into its topic's latency class (shale.flush.ms),
		// as the topic's records do.
		var interval time.Duration
		if t, err := c.s.topics.get(ctx, p.Topic); err == nil && t.ID == p.TopicID {
			interval = flushInterval(t.Configs)
		}
		ws = append(ws, waiter{p, c.s.eng.WriteMarker(ctx, p.TopicID, p.Partition, st.ProducerID, st.Epoch, st.StartRevision, commit, interval)})
	}
	var first error
	for _, w := range ws {
		_, err := w.pend.Wait(ctx)
		if err == nil || errors.Is(err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// sweep aborts timed-out transactions and retries unfinished ends.
func (c *txnCoord) sweep() {
	c.mu.Lock()
	es := make([]*txnEntry, 0, len(c.ids))
	for _, e := range c.ids {
		es = append(es, e)
	}
	c.mu.Unlock()
	for _, e := range es {
		if !e.mu.TryLock() {
			continue // busy with a request
		}
		c.sweepOne(e)
		e.mu.Unlock()
	}
}

func (c *txnCoord) sweepOne(e *txnEntry) {
	if e.dead || !e.loaded || !e.exists {
		return
	}
	ctx, cancel := context.WithTimeout(c.s.ctx, requestTimeout)
	defer cancel()
	switch {
	case preparing(e.st.Phase):
		c.complete(ctx, e)
	case e.st.Phase == metastore.TxnOngoing && time.Now().UnixMilli() > e.st.StartMs+int64(e.st.TimeoutMs):
		c.s.log.Info("aborting timed-out transaction", "transactional_id", e.name,
			"producer_id", e.st.ProducerID, "timeout_ms", e.st.TimeoutMs)
		epoch := e.st.Epoch
		if epoch < math.MaxInt16-1 {
			epoch++ // fence the producer, as Kafka does
		}
		if c.end(ctx, e, false, epoch) == 0 {
			c.s.cfg.Metrics.TxnTimedOut()
		}
	}
}

// adoptOrphans claims the transactional IDs nobody coordinates whose
// transaction needs finishing (Prepare*) or aborting (Ongoing past its
// timeout), when this agent is their rendezvous winner, and does it.
func (c *txnCoord) adoptOrphans() {
	ctx, cancel := context.WithTimeout(c.s.ctx, requestTimeout)
	defer cancel()
	ls, err := c.s.meta.ListTxns(ctx)
	if err != nil {
		if c.s.ctx.Err() == nil {
			c.s.log.Warn("list transactions failed", "err", err)
		}
		return
	}
	var agents []metastore.AgentInfo
	nowMs := time.Now().UnixMilli()
	for _, l := range ls {
		st := l.State
		overdue := st.Phase == metastore.TxnOngoing && nowMs > st.StartMs+int64(st.TimeoutMs)
		mine := l.Coordinator >= 0 && l.Coordinator == c.s.NodeID()
		if l.Coordinator >= 0 && !mine || !l.HasState || !overdue && !preparing(st.Phase) {
			continue
		}
		if !mine {
			if agents == nil {
				agents = c.s.liveAgents(ctx)
			}
			if win, ok := rendezvous(agents, l.ID); !ok || win.NodeID != c.s.NodeID() {
				continue
			}
			c.s.log.Info("adopting transaction left without coordinator", "transactional_id", l.ID, "phase", st.Phase)
		}
		// An ID of this agent's is here when its transaction was started
		// by an implicit add (another agent's write), which this agent's
		// copy of the state missed until now.
		e, code := c.lock(ctx, l.ID) // finishes a Prepare* end
		if code != 0 {
			continue
		}
		c.sweepOne(e) // aborts an overdue one
		e.mu.Unlock()
	}
}
