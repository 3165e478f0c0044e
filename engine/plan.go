package engine

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
)

// part is one object's chunk of a partition.
type part struct {
	so *sealedObject
	c  *sealedChunk
}

// unit is one partition's share of a commit pass: its chunks of every
// object in the pass, in seal order. A unit commits atomically (one
// partition state update), so a later object's records of the partition
// are never visible without the earlier object's.
type unit struct {
	k      partKey
	parts  []part
	failed bool // answered with an error
}

// plan is one unit's commit computed against a partition state.
type plan struct {
	u        *unit
	base     metastore.PartitionState // the state the plan was computed from
	fresh    bool                     // base was read from etcd for this plan
	next     metastore.PartitionState
	verdicts [][]verdict // per part, per batch
	entries  []metastore.IndexEntry
	aborted  []metastore.AbortedTxn // abort markers' transactions
	// noted: a marker not written changed the state (sequenceMarker),
	// which is committed even without entries.
	noted bool
}

// writes reports whether the plan commits anything to etcd.
func (p *plan) writes() bool { return p.entries != nil || p.noted }

// makePlan sequences one unit against the cached partition state, or a
// fresh one when refresh is set or nothing is cached.
func (e *Engine) makePlan(ctx context.Context, u *unit, cache map[partKey]metastore.PartitionState, refresh bool) (*plan, error) {
	st, ok := cache[u.k]
	fresh := false
	if refresh || !ok {
		var err error
		if st, err = e.readState(ctx, u.k); err != nil {
			return nil, err
		}
		cache[u.k] = st
		fresh = true
	}
	p, err := e.sequencePlan(u, st)
	if err != nil {
		return nil, err
	}
	p.fresh = fresh
	// A rejection computed from a cached state may be stale: confirm it.
	if !fresh && p.hasRejection() {
		st, err := e.readState(ctx, u.k)
		if err != nil {
			return nil, err
		}
		cache[u.k] = st
		if p, err = e.sequencePlan(u, st); err != nil {
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

// hasRejection reports a verdict that a stale cached state could have
// caused: a rejection, or a marker dropped because the cached state shows
// no open transaction (another agent may have committed the producer's
// first batch since).
func (p *plan) hasRejection() bool {
	for i, vs := range p.verdicts {
		for j, v := range vs {
			if v.err != nil || !v.accept && p.u.parts[i].c.batches[j].meta.marker != noMarker {
				return true
			}
		}
	}
	return false
}

// sequencePlan runs sequencing over the unit's parts in order and cuts the
// accepted batches into index entries: one per run of consecutive accepted
// batches of one object (normally one per part; duplicates or rejected
// batches in the middle split it).
func (e *Engine) sequencePlan(u *unit, st metastore.PartitionState) (*plan, error) {
	next := st.Clone()
	p := &plan{u: u, base: st, verdicts: make([][]verdict, len(u.parts))}
	nowMs := e.cfg.Now().UnixMilli()
	for i, pt := range u.parts {
		c, so := pt.c, pt.so
		metas := make([]batchMeta, len(c.batches))
		for j, b := range c.batches {
			metas[j] = b.meta
		}
		vs := sequence(&next, metas, nowMs)
		p.verdicts[i] = vs
		for _, v := range vs {
			if v.aborted != nil {
				p.aborted = append(p.aborted, *v.aborted)
			}
			p.noted = p.noted || v.noted
		}
		pos, stored := c.info.Pos, c.info.StoredBase
		from := len(p.entries)
		var cur *metastore.IndexEntry
		for j, b := range c.batches {
			if vs[j].accept {
				if cur == nil {
					p.entries = append(p.entries, metastore.IndexEntry{
						BaseOffset: vs[j].offset, ObjectKey: so.key, Pos: pos, StoredBase: stored,
						FirstTimestamp: b.first, MaxTimestamp: b.max, CommittedMs: nowMs,
					})
					cur = &p.entries[len(p.entries)-1]
				}
				cur.Size += b.size
				cur.Batches++
				cur.LastOffset = vs[j].offset + b.meta.records - 1
				cur.MaxTimestamp = max(cur.MaxTimestamp, b.max)
			} else {
				cur = nil
			}
			pos += b.size
			stored += b.meta.records
		}
		for k := from; k < len(p.entries); k++ {
			en := &p.entries[k]
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
	}
	p.next = next
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
	h := segment.NewChecksum()
	if _, err := io.Copy(h, io.NewSectionReader(f, pos, size)); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

// finishApplied handles commits whose outcome was unknown (etcd timed out
// or the connection broke): a plan whose first entry is now in the index at
// its planned offset, pointing at the same object range, had applied; it is
// finished as committed rather than written twice. The units still to
// commit are returned.
func (e *Engine) finishApplied(ctx context.Context, plans []*plan, units []*unit, cache map[partKey]metastore.PartitionState) []*unit {
	var applied []*plan
	done := make(map[*unit]bool)
	for _, p := range plans {
		if len(p.entries) == 0 {
			continue
		}
		want := p.entries[0]
		got, err := e.meta.FindEntries(ctx, p.u.k.id, p.u.k.p, want.BaseOffset, 1)
		if err != nil || len(got) == 0 {
			continue
		}
		if got[0].ObjectKey == want.ObjectKey && got[0].Pos == want.Pos && got[0].BaseOffset == want.BaseOffset {
			e.log.Info("earlier commit attempt had applied", "key", want.ObjectKey, "partition", p.u.k.p)
			applied = append(applied, p)
			done[p.u] = true
		}
	}
	if len(applied) == 0 {
		return units
	}
	// The revision is unknown; refresh the cached states on next use.
	e.finishPlans(applied, 0, cache)
	for _, p := range applied {
		delete(cache, p.u.k)
	}
	rest := units[:0:0]
	for _, u := range units {
		if !done[u] {
			rest = append(rest, u)
		}
	}
	return rest
}
