package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maxConflictRetries bounds how often one commit group is recomputed after
// another agent committed to the same partitions first.
const maxConflictRetries = 200

// commitLoop commits sealed objects strictly in seal order, so one agent's
// batches for a partition keep the order they arrived in.
func (e *Engine) commitLoop() {
	cache := make(map[partKey]metastore.PartitionState)
	for so := range e.sealed {
		select {
		case <-so.uploaded:
		case <-e.ctx.Done():
			<-so.uploaded
		}
		if so.uploadErr != nil {
			e.log.Error("object not uploaded; failing its producers", "key", so.key, "err", so.uploadErr)
			e.failObject(so, kerr.KafkaStorageError)
		} else {
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
			waited := time.Since(so.uploadedAt)
			t0 := time.Now()
			e.commitObject(so, cache)
			took := time.Since(t0)
			e.log.Debug("object committed", "key", so.key, "bytes", so.size, "upload", so.uploadedAt.Sub(so.sealedAt),
				"queued", waited, "commit", took)
			e.cfg.Metrics.Flush(so.size, time.Since(so.sealedAt), took)
			e.cfg.Metrics.Stage(metrics.StageCommitQueue, waited)
			e.cfg.Metrics.Stage(metrics.StageCommit, took)
		}
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

// plan is one chunk's commit computed against a partition state.
type plan struct {
	c        *sealedChunk
	base     metastore.PartitionState // the state the plan was computed from
	fresh    bool                     // base was read from etcd for this plan
	next     metastore.PartitionState
	verdicts []verdict
	entries  []metastore.IndexEntry
}

func (e *Engine) commitObject(so *sealedObject, cache map[partKey]metastore.PartitionState) {
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.UploadTimeout)
	defer cancel()
	// Group chunks so each transaction stays under the server's op limit.
	var group []*sealedChunk
	ops := 0
	flush := func() {
		if len(group) > 0 {
			e.commitGroup(ctx, so, group, cache)
		}
		group, ops = nil, 0
	}
	for i := range so.chunks {
		c := &so.chunks[i]
		// Worst case: one entry per batch, plus the state put and a compare.
		n := len(c.batches) + 2
		if ops+n > e.cfg.MaxTxnOps-1 {
			flush()
		}
		group = append(group, c)
		ops += n
	}
	flush()
}

// commitGroup commits a group of chunks in one etcd transaction, retrying on
// conflicts with fresh state, and answers their waiters.
func (e *Engine) commitGroup(ctx context.Context, so *sealedObject, group []*sealedChunk, cache map[partKey]metastore.PartitionState) {
	var plans []*plan
	backoff := 5 * time.Millisecond
	var lastErr error
	for attempt := 0; attempt < maxConflictRetries && len(group) > 0; attempt++ {
		if attempt > 0 {
			if !sleepCtx(ctx, jitter(backoff)) {
				break
			}
			backoff = min(backoff*2, 500*time.Millisecond)
		}
		if lastErr != nil && !errors.Is(lastErr, metastore.ErrConflict) && plans != nil {
			// The previous attempt's outcome is unknown: finish the plans that
			// did apply instead of writing them twice.
			group = e.finishApplied(ctx, so, plans, group, cache)
			if len(group) == 0 {
				return
			}
		}
		plans = plans[:0]
		var err error
		for _, c := range group {
			var p *plan
			if p, err = e.makePlan(ctx, so, c, cache, attempt > 0); err != nil {
				break
			}
			plans = append(plans, p)
		}
		if err != nil {
			plans = nil
			lastErr = err
			if errors.Is(err, metastore.ErrTopicNotFound) {
				break
			}
			continue
		}
		var commits []metastore.ChunkCommit
		for _, p := range plans {
			if p.entries != nil {
				commits = append(commits, metastore.ChunkCommit{
					TopicID: p.c.k.id, Partition: p.c.k.p,
					ExpectedRevision: p.base.Revision, Entries: p.entries, New: p.next,
				})
			}
		}
		var rev int64
		if len(commits) > 0 {
			rev, err = e.meta.CommitChunks(ctx, commits)
			e.count(func(s *Stats) { s.CommitTxns++ })
		}
		if err == nil {
			e.finishPlans(plans, rev, cache)
			return
		}
		for _, c := range group {
			delete(cache, c.k)
		}
		if errors.Is(err, metastore.ErrConflict) {
			e.count(func(s *Stats) { s.CommitConflicts++ })
		} else {
			e.log.Warn("commit failed, retrying", "key", so.key, "attempt", attempt+1, "err", err)
		}
		lastErr = err
	}
	if errors.Is(lastErr, metastore.ErrTopicNotFound) {
		lastErr = kerr.UnknownTopicOrPartition
	} else {
		e.log.Error("commit gave up; failing its producers", "key", so.key, "err", lastErr)
		lastErr = kerr.RequestTimedOut
	}
	for _, c := range group {
		for j := range c.batches {
			resolve(&c.batches[j], verdict{err: lastErr}, 0)
		}
	}
}

// makePlan sequences one chunk against the cached partition state, or a
// fresh one when refresh is set or nothing is cached.
func (e *Engine) makePlan(ctx context.Context, so *sealedObject, c *sealedChunk, cache map[partKey]metastore.PartitionState, refresh bool) (*plan, error) {
	st, ok := cache[c.k]
	fresh := false
	if refresh || !ok {
		var err error
		if st, err = e.readState(ctx, c.k); err != nil {
			return nil, err
		}
		cache[c.k] = st
		fresh = true
	}
	p, err := e.sequencePlan(so, c, st)
	if err != nil {
		return nil, err
	}
	p.fresh = fresh
	// A rejection computed from a cached state may be stale: confirm it.
	if !fresh && p.hasRejection() {
		st, err := e.readState(ctx, c.k)
		if err != nil {
			return nil, err
		}
		cache[c.k] = st
		if p, err = e.sequencePlan(so, c, st); err != nil {
			return nil, err
		}
		p.fresh = true
	}
	return p, nil
}

func (e *Engine) readState(ctx context.Context, k partKey) (metastore.PartitionState, error) {
	// The topic must still exist; a deleted one gets UNKNOWN_TOPIC_OR_PARTITION.
	if _, err := e.meta.GetTopicByID(ctx, k.id); err != nil {
		return metastore.PartitionState{}, err
	}
	return e.meta.PartitionState(ctx, k.id, k.p)
}

func (p *plan) hasRejection() bool {
	for _, v := range p.verdicts {
		if v.err != nil {
			return true
		}
	}
	return false
}

// sequencePlan runs sequencing and cuts the accepted batches into index
// entries: one per run of consecutive accepted batches (normally one per
// chunk; duplicates or rejected batches in the middle split it).
func (e *Engine) sequencePlan(so *sealedObject, c *sealedChunk, st metastore.PartitionState) (*plan, error) {
	next := st.Clone()
	metas := make([]batchMeta, len(c.batches))
	for i, b := range c.batches {
		metas[i] = b.meta
	}
	nowMs := e.cfg.Now().UnixMilli()
	vs := sequence(&next, metas, nowMs)
	p := &plan{c: c, base: st, next: next, verdicts: vs}
	pos, stored := c.info.Pos, c.info.StoredBase
	var cur *metastore.IndexEntry
	for i, b := range c.batches {
		if vs[i].accept {
			if cur == nil {
				p.entries = append(p.entries, metastore.IndexEntry{
					BaseOffset: vs[i].offset, ObjectKey: so.key, Pos: pos, StoredBase: stored,
					FirstTimestamp: b.first, MaxTimestamp: b.max, CommittedMs: nowMs,
				})
				cur = &p.entries[len(p.entries)-1]
			}
			cur.Size += b.size
			cur.Batches++
			cur.LastOffset = vs[i].offset + b.meta.records - 1
			cur.MaxTimestamp = max(cur.MaxTimestamp, b.max)
		} else {
			cur = nil
		}
		pos += b.size
		stored += b.meta.records
	}
	for i := range p.entries {
		en := &p.entries[i]
		if en.Pos == c.info.Pos && en.Size == c.info.Size {
			en.CRC = c.info.CRC
			continue
		}
		crc, err := so.rangeCRC(en.Pos, en.Size)
		if err != nil {
			// Never index a range with a CRC we could not compute.
			return nil, fmt.Errorf("checksum %s [%d, %d): %w", so.key, en.Pos, en.Pos+en.Size, err)
		}
		en.CRC = crc
	}
	return p, nil
}

// fileCRC computes the CRC-32C of a range of a spooled object (the part of
// a chunk left between duplicates or rejected batches).
func fileCRC(path string, pos, size int64) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(f, pos, size)); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

// finishApplied handles a commit whose outcome was unknown (etcd timed out
// or the connection broke): a plan whose first entry is now in the index at
// its planned offset, pointing at this object, had applied; it is finished
// as committed rather than written twice. The chunks still to commit are
// returned.
func (e *Engine) finishApplied(ctx context.Context, so *sealedObject, plans []*plan, group []*sealedChunk, cache map[partKey]metastore.PartitionState) []*sealedChunk {
	var applied []*plan
	done := make(map[*sealedChunk]bool)
	for _, p := range plans {
		if len(p.entries) == 0 {
			continue
		}
		want := p.entries[0]
		got, err := e.meta.FindEntries(ctx, p.c.k.id, p.c.k.p, want.BaseOffset, 1)
		if err != nil || len(got) == 0 {
			continue
		}
		if got[0].ObjectKey == so.key && got[0].Pos == want.Pos && got[0].BaseOffset == want.BaseOffset {
			e.log.Info("earlier commit attempt had applied", "key", so.key, "partition", p.c.k.p)
			applied = append(applied, p)
			done[p.c] = true
		}
	}
	if len(applied) == 0 {
		return group
	}
	// The revision is unknown; refresh the cached states on next use.
	e.finishPlans(applied, 0, cache)
	for _, p := range applied {
		delete(cache, p.c.k)
	}
	rest := group[:0:0]
	for _, c := range group {
		if !done[c] {
			rest = append(rest, c)
		}
	}
	return rest
}

// finishPlans answers the waiters of committed plans and refreshes caches.
func (e *Engine) finishPlans(plans []*plan, rev int64, cache map[partKey]metastore.PartitionState) {
	for _, p := range plans {
		next := p.next
		if p.entries != nil {
			next.Revision = rev
		} else {
			next = p.base
		}
		cache[p.c.k] = next
		dups := 0
		for j := range p.c.batches {
			v := p.verdicts[j]
			if !v.accept && v.err == nil {
				dups++
			}
			resolve(&p.c.batches[j], v, next.LogStartOffset)
		}
		if p.entries != nil {
			e.states.advance(p.c.k, next.NextOffset, next.LogStartOffset)
			e.index.add(p.c.k, p.entries)
		}
		e.count(func(s *Stats) { s.BatchesCommitted += int64(len(p.c.batches)); s.Duplicates += int64(dups) })
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
