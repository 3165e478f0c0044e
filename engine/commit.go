package engine

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/shale-dev/shale/internal/retry"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
)

// maxConflictRetries bounds how often one commit group is recomputed after
// another agent committed to the same partitions first.
const maxConflictRetries = 200

// maxCommitObjects bounds how many uploaded objects one commit pass takes.
const maxCommitObjects = 8

// commitLoop commits sealed objects strictly in seal order, so one agent's
// batches for a partition keep the order they arrived in. One pass commits
// the next object together with the objects sealed after it that are
// already uploaded (at most maxCommitObjects): a partition's chunks of all
// of them go into one index update, in seal order, so a later object never
// waits for an earlier one's etcd reply (commit pipelining; see doc.go). An
// object whose upload failed is never grouped: it is failed on its own
// pass, after everything sealed before it.
func (e *Engine) commitLoop() {
	cache := make(map[partKey]metastore.PartitionState)
	var carry *sealedObject // taken from e.sealed, not yet committed
	for {
		so := carry
		carry = nil
		if so == nil {
			var ok bool
			if so, ok = <-e.sealed; !ok {
				return
			}
		}
		select {
		case <-so.uploaded:
		case <-e.ctx.Done():
			<-so.uploaded
		}
		if so.uploadErr != nil {
			e.log.Error("object not uploaded; failing its producers", "key", so.key, "err", so.uploadErr)
			e.failObject(so, kerr.KafkaStorageError)
			e.retire(so)
			continue
		}
		group := []*sealedObject{so}
	gather:
		for len(group) < maxCommitObjects {
			select {
			case nx, ok := <-e.sealed:
				if !ok {
					break gather // the next receive sees the close too
				}
				if uploadedOK(nx) {
					group = append(group, nx)
				} else {
					carry = nx
					break gather
				}
			default:
				break gather
			}
		}
		e.commitPass(group, cache)
	}
}

// uploadedOK reports whether so's upload has finished successfully.
func uploadedOK(so *sealedObject) bool {
	select {
	case <-so.uploaded:
		return so.uploadErr == nil
	default:
		return false
	}
}

// commitPass commits a group of uploaded objects (in seal order) and
// answers their producers.
func (e *Engine) commitPass(group []*sealedObject, cache map[partKey]metastore.PartitionState) {
	waited := make([]time.Duration, len(group))
	for i, so := range group {
		waited[i] = time.Since(so.uploadedAt)
		if e.cfg.beforeCommit != nil {
			e.cfg.beforeCommit(so.key)
		}
		// Cache the object before committing it: readers woken by the
		// commit then find it locally instead of GETting it back.
		if so.cached != nil {
			<-so.cached // written beside the PUT: normally done by now
		} else {
			e.cache.adoptObject(so.key, so.path, so.size)
		}
	}
	t0 := time.Now()
	e.commitObjects(group, cache)
	took := time.Since(t0)
	e.count(func(s *Stats) { s.CommitPasses++; s.CommittedObjects += int64(len(group)) })
	for i, so := range group {
		e.log.Debug("object committed", "key", so.key, "bytes", so.size, "upload", so.uploadedAt.Sub(so.sealedAt),
			"queued", waited[i], "commit", took, "objects_in_pass", len(group))
		e.cfg.Metrics.Flush(so.size, time.Since(so.sealedAt), took)
		e.cfg.Metrics.Stage(metrics.StageCommitQueue, waited[i])
		e.cfg.Metrics.Stage(metrics.StageCommit, took)
		e.retire(so)
	}
}

// retire releases a committed or failed object's memory and space.
func (e *Engine) retire(so *sealedObject) {
	if so.cached != nil {
		<-so.cached // its writer reads data
	}
	if so.data == nil {
		_ = os.Remove(so.path) // the cache keeps its own link
	}
	so.data = nil
	e.releaseMem(so.mem)
	e.release(so.bytes)
	close(so.committed)
}

func (e *Engine) failObject(so *sealedObject, err error) {
	for i := range so.chunks {
		for j := range so.chunks[i].batches {
			resolve(&so.chunks[i].batches[j], verdict{err: err}, 0)
		}
	}
}

// resolve records one batch's verdict on its Pending and completes it when
// it was the last one.
func resolve(pb *pendingBatch, v verdict, logStart int64) {
	w := pb.w
	if v.err != nil && w.err == nil {
		w.err = v.err
	}
	if pb.isW0 {
		w.res.BaseOffset = v.offset
	}
	w.remaining--
	if w.remaining == 0 {
		w.doneAt = time.Now()
		w.res.LogStartOffset = logStart
		if w.err != nil {
			w.res.BaseOffset = -1
		}
		close(w.done)
	}
}

// commitObjects commits a group of uploaded objects: one unit per
// partition, holding that partition's chunks of every object in seal order.
func (e *Engine) commitObjects(group []*sealedObject, cache map[partKey]metastore.PartitionState) {
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.UploadTimeout)
	defer cancel()
	var units []*unit
	byKey := make(map[partKey]*unit)
	for _, so := range group {
		for i := range so.chunks {
			c := &so.chunks[i]
			u := byKey[c.k]
			if u == nil {
				u = &unit{k: c.k}
				byKey[c.k] = u
				units = append(units, u)
			}
			u.parts = append(u.parts, part{so: so, c: c})
		}
	}
	e.commitUnits(ctx, units, cache)
}

// commitRetry paces a commit pass's retries after conflicts and errors:
// 5 ms doubling to 500 ms, jittered, at most maxConflictRetries attempts.
var commitRetry = retry.Policy{Attempts: maxConflictRetries, Initial: 5 * time.Millisecond, Max: 500 * time.Millisecond,
	Jitter: retry.HalfJitter}

// commitUnits plans every unit against the partition states, packs the
// plans into transactions under the server's op limit and sends those
// transactions at once (they touch disjoint partitions, so etcd may apply
// them in one batch). Committed units are answered; conflicts (another
// agent committed first) and errors are retried, with fresh state, for the
// units still open, with jitter and at most maxConflictRetries times.
func (e *Engine) commitUnits(ctx context.Context, units []*unit, cache map[partKey]metastore.PartitionState) {
	var unknown []*plan // plans of transactions whose outcome is unknown
	pause := commitRetry.BackOff()
	var lastErr error
	for attempt := 0; attempt < commitRetry.Attempts && len(units) > 0; attempt++ {
		if attempt > 0 && !retry.Wait(ctx, pause) {
			break
		}
		if len(unknown) > 0 {
			// Finish the plans that did apply instead of writing them twice.
			units = e.finishApplied(ctx, unknown, units, cache)
			unknown = nil
			if len(units) == 0 {
				return
			}
		}
		plans := make([]*plan, 0, len(units))
		var err error
		open := units[:0:0]
		for _, u := range units {
			p, perr := e.makePlan(ctx, u, cache, attempt > 0)
			if errors.Is(perr, metastore.ErrTopicNotFound) {
				e.failUnit(u, kerr.UnknownTopicOrPartition)
				continue
			}
			if perr != nil {
				err = perr
				break
			}
			plans = append(plans, p)
			open = append(open, u)
		}
		if err != nil {
			lastErr = err
			units = dropFailed(units)
			continue
		}
		units = open
		failed, ferr := e.sendPlans(ctx, plans, cache)
		if ferr == nil {
			return
		}
		units = unitsOf(failed)
		for _, u := range units {
			delete(cache, u.k)
		}
		if errors.Is(ferr, metastore.ErrConflict) {
			e.count(func(s *Stats) { s.CommitConflicts++ })
		} else {
			e.log.Warn("commit failed, retrying", "objects", objectKeys(units), "attempt", attempt+1, "err", ferr)
			unknown = failed
		}
		lastErr = ferr
	}
	if len(units) == 0 {
		return
	}
	e.log.Error("commit gave up; failing its producers", "objects", objectKeys(units), "err", lastErr)
	for _, u := range units {
		e.failUnit(u, kerr.RequestTimedOut)
	}
}

// sendPlans packs plans into transactions, sends them concurrently and
// finishes the committed ones. It returns the plans of the transactions
// that failed and the first error (an ErrConflict when that is all).
func (e *Engine) sendPlans(ctx context.Context, plans []*plan, cache map[partKey]metastore.PartitionState) ([]*plan, error) {
	txns := packPlans(plans, e.cfg.MaxTxnOps-1)
	revs := make([]int64, len(txns))
	errs := make([]error, len(txns))
	var wg sync.WaitGroup
	for i, txn := range txns {
		var commits []metastore.ChunkCommit
		for _, p := range txn {
			if p.writes() {
				commits = append(commits, metastore.ChunkCommit{
					TopicID: p.u.k.id, Partition: p.u.k.p,
					ExpectedRevision: p.base.Revision, Entries: p.entries, New: p.next, Aborted: p.aborted,
				})
			}
		}
		if len(commits) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			revs[i], errs[i] = e.meta.CommitChunks(ctx, commits)
		}()
		e.count(func(s *Stats) { s.CommitTxns++ })
	}
	wg.Wait()
	var failed []*plan
	var first error
	for i, txn := range txns {
		if etcdRefusedLimit(errs[i]) {
			e.failRefused(txn, errs[i])
			continue
		}
		if errs[i] != nil {
			failed = append(failed, txn...)
			if first == nil || errors.Is(first, metastore.ErrConflict) && !errors.Is(errs[i], metastore.ErrConflict) {
				first = errs[i]
			}
			continue
		}
		e.finishPlans(txn, revs[i], cache)
	}
	return failed, first
}

// etcdRefusedLimit reports whether etcd refused a transaction for its
// size: more operations than its --max-txn-ops or a request over its
// --max-request-bytes. etcd applied nothing, and the same transaction
// would be refused again, so it is not retried.
func etcdRefusedLimit(err error) bool {
	return err != nil && (errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge))
}

// failRefused answers the units of a transaction etcd refused for its size
// with UNKNOWN_SERVER_ERROR at once (a permanent error: the client does not
// retry what cannot be committed; see doc.go) and says what to change.
func (e *Engine) failRefused(txn []*plan, err error) {
	units := unitsOf(txn)
	e.log.Error("etcd refused a commit over its limits; failing its producers (nothing was committed). "+
		"The engine's MaxTxnOps must not exceed etcd's --max-txn-ops (etcd's default 128), "+
		"and a commit must fit etcd's --max-request-bytes (default 1.5 MiB): raise etcd's limits or lower MaxTxnOps",
		"max_txn_ops", e.cfg.MaxTxnOps, "objects", objectKeys(units), "err", err)
	for _, u := range units {
		e.failUnit(u, kerr.UnknownServerError)
	}
}

// packPlans cuts plans into transactions of at most maxOps operations
// each (an entry put per index entry and per aborted transaction, the
// state put and its compare per partition); a plan larger than maxOps goes
// alone.
func packPlans(plans []*plan, maxOps int) [][]*plan {
	var out [][]*plan
	var cur []*plan
	ops := 0
	for _, p := range plans {
		n := 0
		if p.writes() {
			n = len(p.entries) + len(p.aborted) + 2
		}
		if len(cur) > 0 && ops+n > maxOps {
			out = append(out, cur)
			cur, ops = nil, 0
		}
		cur = append(cur, p)
		ops += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// failUnit answers every batch of a unit with err.
func (e *Engine) failUnit(u *unit, err error) {
	u.failed = true
	for _, pt := range u.parts {
		for j := range pt.c.batches {
			resolve(&pt.c.batches[j], verdict{err: err}, 0)
		}
	}
}

func dropFailed(units []*unit) []*unit {
	out := units[:0:0]
	for _, u := range units {
		if !u.failed {
			out = append(out, u)
		}
	}
	return out
}

func unitsOf(plans []*plan) []*unit {
	out := make([]*unit, len(plans))
	for i, p := range plans {
		out[i] = p.u
	}
	return out
}

// objectKeys names the objects of units, for logs.
func objectKeys(units []*unit) []string {
	var keys []string
	seen := map[string]bool{}
	for _, u := range units {
		for _, pt := range u.parts {
			if !seen[pt.so.key] {
				seen[pt.so.key] = true
				keys = append(keys, pt.so.key)
			}
		}
	}
	return keys
}

// finishPlans answers the waiters of committed plans and refreshes caches.
func (e *Engine) finishPlans(plans []*plan, rev int64, cache map[partKey]metastore.PartitionState) {
	for _, p := range plans {
		next := p.next
		if p.writes() {
			next.Revision = rev
		} else {
			next = p.base
		}
		cache[p.u.k] = next
		dups, batches := 0, 0
		for i, pt := range p.u.parts {
			for j := range pt.c.batches {
				v := p.verdicts[i][j]
				if !v.accept && v.err == nil {
					dups++
				}
				resolve(&pt.c.batches[j], v, next.LogStartOffset)
			}
			batches += len(pt.c.batches)
		}
		if p.entries != nil {
			e.states.advance(p.u.k, next.NextOffset, next.LogStartOffset, next.LastStableOffset())
			e.index.add(p.u.k, p.entries)
		}
		e.count(func(s *Stats) { s.BatchesCommitted += int64(batches); s.Duplicates += int64(dups) })
	}
}
