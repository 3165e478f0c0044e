package engine

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/span"
)

// FetchResult is what one partition's fetch returns.
type FetchResult struct {
	// Records holds whole v2 record batches with absolute base offsets. The
	// first batch may start before the requested offset (Kafka semantics:
	// clients skip the records below it).
	Records          []byte
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	// Aborted lists, for a read_committed fetch whose records hold
	// transactional batches, the aborted transactions overlapping them
	// (Kafka's AbortedTransactions).
	Aborted []metastore.AbortedTxn
}

// maxEntrySize refuses to download index entries claiming absurd sizes
// (a corrupt index must not make an agent allocate without bound).
const maxEntrySize = 1 << 30

// maxAbortedPerFetch bounds the aborted transactions one fetch reads.
const maxAbortedPerFetch = 1000

// Offsets returns a partition's log start offset and next offset (the high
// watermark), read from etcd.
func (e *Engine) Offsets(ctx context.Context, topic metastore.TopicID, partition int32) (start, next int64, err error) {
	next, start, err = e.states.refresh(ctx, partKey{topic, partition})
	return start, next, err
}

// LastStableOffset returns a partition's last stable offset (the first
// offset of its oldest open transaction, else the high watermark), read
// from etcd.
func (e *Engine) LastStableOffset(ctx context.Context, topic metastore.TopicID, partition int32) (int64, error) {
	o, err := e.states.refreshAll(ctx, partKey{topic, partition})
	return o.lso, err
}

// CachedOffsets is Offsets from this agent's watch-fed view: no etcd read
// when the partition is known, possibly a few milliseconds behind another
// agent's commit.
func (e *Engine) CachedOffsets(ctx context.Context, topic metastore.TopicID, partition int32) (start, next int64, err error) {
	next, start, err = e.states.get(ctx, partKey{topic, partition})
	return start, next, err
}

// CachedStableOffsets is CachedOffsets plus the last stable offset.
func (e *Engine) CachedStableOffsets(ctx context.Context, topic metastore.TopicID, partition int32) (start, lso, next int64, err error) {
	o, err := e.states.getAll(ctx, partKey{topic, partition})
	return o.start, o.lso, o.next, err
}

// Fetch reads batches of one partition starting at offset, up to about
// maxBytes (at least one batch when any is available). An offset equal to
// the high watermark returns no records; outside [log start, high
// watermark] it returns kerr.OffsetOutOfRange.
func (e *Engine) Fetch(ctx context.Context, topic metastore.TopicID, partition int32, offset int64, maxBytes int) (FetchResult, error) {
	return e.FetchIsolated(ctx, topic, partition, offset, maxBytes, false)
}

// FetchIsolated is Fetch at an isolation level: with readCommitted it
// returns no batch at or past the last stable offset, and lists the
// aborted transactions of what it returns (Kafka's read_committed).
func (e *Engine) FetchIsolated(ctx context.Context, topic metastore.TopicID, partition int32, offset int64, maxBytes int, readCommitted bool) (FetchResult, error) {
	k := partKey{topic, partition}
	o, err := e.states.getAll(ctx, k)
	if err != nil {
		return FetchResult{}, err
	}
	if offset > o.next || offset < o.start {
		// The cache may lag another agent's commit or retention: confirm.
		if o, err = e.states.refreshAll(ctx, k); err != nil {
			return FetchResult{}, err
		}
	}
	res := FetchResult{HighWatermark: o.next, LastStableOffset: o.lso, LogStartOffset: o.start}
	if offset < o.start || offset > o.next {
		return res, kerr.OffsetOutOfRange
	}
	bound := o.next
	if readCommitted {
		bound = o.lso
	}
	if offset >= bound {
		return res, nil
	}
	for attempt := 0; ; attempt++ {
		recs, err := e.fetchEntries(ctx, k, offset, bound, maxBytes)
		if s3tier.IsNotFound(err) && attempt == 0 {
			// A cached entry may point to an object that compaction
			// replaced and GC deleted since: re-read the index.
			e.index.forget(k)
			continue
		}
		if err == nil && readCommitted {
			recs = cutBefore(recs, bound)
			res.Aborted, err = e.abortedIn(ctx, k, recs)
		}
		res.Records = recs
		return res, err
	}
}

// cutBefore drops the batches at or past offset bound (an index entry may
// straddle the last stable offset, which is always a batch's start).
func cutBefore(recs []byte, bound int64) []byte {
	pos := 0
	for pos+segment.BatchHeaderSize <= len(recs) {
		h, err := segment.ParseBatchHeader(recs[pos:])
		if err != nil || h.BaseOffset >= bound {
			break
		}
		pos += int(h.Length)
	}
	return recs[:pos]
}

// abortedIn returns the aborted transactions overlapping recs, read from
// etcd only when recs hold a transactional data batch.
func (e *Engine) abortedIn(ctx context.Context, k partKey, recs []byte) ([]metastore.AbortedTxn, error) {
	first, last, txn := int64(-1), int64(-1), false
	for pos := 0; pos+segment.BatchHeaderSize <= len(recs); {
		h, err := segment.ParseBatchHeader(recs[pos:])
		if err != nil {
			break
		}
		if first < 0 {
			first = h.BaseOffset
		}
		last = h.LastOffset()
		txn = txn || h.IsTransactional() && !h.IsControl()
		pos += int(h.Length)
	}
	if !txn {
		return nil, nil
	}
	return e.meta.AbortedTxns(ctx, k.id, k.p, first, last, maxAbortedPerFetch)
}

// fetchEntries reads the batches from offset (below next) up to about
// maxBytes, entry by entry and, within a compacted segment, chunk by chunk.
func (e *Engine) fetchEntries(ctx context.Context, k partKey, offset, next int64, maxBytes int) ([]byte, error) {
	plan, _, err := e.planFetch(ctx, k, offset, next, maxBytes)
	if err != nil {
		return nil, err
	}
	// A first span not on disk is a cold read, usually the start of a
	// sequential read (a replay), or one read-ahead already serves: fetch
	// what comes next concurrently, both for the rest of this fetch and for
	// the consumer's next ones.
	if len(plan) > 1 && !e.cache.has(plan[0].Object, plan[0].Pos, plan[0].Size) {
		e.ra.prefetch(k, plan, 1)
	}
	var planned int64
	for _, sp := range plan {
		planned += sp.Size
	}
	var out []byte
	for _, sp := range plan {
		if len(out) > 0 && len(out) >= maxBytes {
			break
		}
		chunk, src, err := e.readSpanOwned(ctx, sp)
		if err != nil {
			return out, err
		}
		from := 0
		if sp.AbsBase <= offset {
			if j, ok := chunk.FindOffset(sp.StoredBase + (offset - sp.AbsBase)); ok {
				from = j
			}
		}
		bs := chunk.Batches()
		if out == nil && from < len(bs) {
			// The first span: its batches go out from the bytes read,
			// patched in place (read for this fetch alone) or already
			// patched (the read-ahead's), not copied: a 100 MiB batch is
			// held once. A fetch wanting more spans copies them after all.
			recs, n := chunk.Slice(from, maxBytes)
			if src == spanOwned {
				recs, n = chunk.PatchInPlace(from, sp.AbsBase, sp.StoredBase, maxBytes)
			}
			if from+n < len(bs) || len(recs) >= maxBytes || len(plan) == 1 {
				return recs, nil
			}
			// Room for the whole answer at once, so appending never
			// re-grows it: it holds at most maxBytes, or one first batch
			// larger than that, and no more than the planned spans.
			out = make([]byte, 0, max(min(int64(maxBytes), planned), int64(len(recs))))
			out = append(out, recs...)
			continue
		}
		if len(out) > 0 && from < len(bs) && len(out)+len(bs[from].Raw) > maxBytes {
			break
		}
		var n int
		out, n = chunk.AppendPatched(out, from, sp.AbsBase, sp.StoredBase, maxBytes-len(out))
		if from+n < len(bs) {
			// The budget ran out inside this span: stop here. Going on to
			// the next span would skip this one's remaining batches, and a
			// consumer would silently lose them.
			break
		}
	}
	return out, nil
}

// planFetch returns the spans a fetch from offset (below next) of about
// maxBytes reads (the first need of them), then up to readAheadSpans more
// for read-ahead. The index
// entries looked up may end before that: the plan goes on with the
// following ones (from the index cache, or with at most one etcd read,
// which the next fetch would make anyway), so neither the fetch nor the
// read-ahead stops short at the end of a batch of entries.
func (e *Engine) planFetch(ctx context.Context, k partKey, offset, next int64, maxBytes int) (plan []span.Span, need int, _ error) {
	entries := e.index.lookup(k, offset)
	if entries == nil {
		g := e.index.generation(k)
		var err error
		if entries, err = e.meta.FindEntries(ctx, k.id, k.p, offset, 16); err != nil {
			return nil, 0, fmt.Errorf("read index: %w", err)
		}
		e.index.addRead(k, g, entries)
	}
	if len(entries) == 0 {
		// Retention removed it after we read the state.
		return nil, 0, kerr.OffsetOutOfRange
	}
	// entries[0] may start past offset. Either retention moved the log
	// start past offset after the caller read the state (another agent's
	// retention, seen here before the state cache): Kafka answers
	// OFFSET_OUT_OF_RANGE, so the consumer applies its reset policy
	// rather than silently skipping to the new start. Or offset lies in a
	// gap inside the log (a range lost with a corrupt object that shale
	// recover --skip-corrupt skipped; a compacted topic's removed
	// records): it is skipped, as Kafka skips the gaps of a compacted
	// log, and the spans' batches start past the offset asked for. One
	// etcd read of the state tells the two apart.
	if entries[0].BaseOffset > offset {
		o, err := e.states.refreshAll(ctx, k)
		if err != nil {
			return nil, 0, err
		}
		if offset < o.start {
			return nil, 0, kerr.OffsetOutOfRange
		}
	}
	left, extra, etcdRead := int64(maxBytes), 0, false
	for i := 0; extra < readAheadSpans; i++ {
		if i == len(entries) {
			more := e.moreEntries(ctx, k, entries[i-1].LastOffset+1, next, &etcdRead)
			if len(more) == 0 {
				break
			}
			entries = append(entries, more...)
		}
		en := entries[i]
		if en.BaseOffset >= next {
			break
		}
		spans, err := e.footers.Spans(ctx, e.store, k.id, k.p, en)
		if err != nil {
			if len(plan) > 0 {
				break // read what is planned; the error comes back on the next fetch
			}
			return nil, 0, err
		}
		for _, sp := range spans {
			if sp.LastOffset() < offset || extra >= readAheadSpans {
				continue
			}
			if left <= 0 {
				extra++
			} else {
				need++
			}
			plan = append(plan, sp)
			left -= sp.Size
		}
	}
	return plan, need, nil
}

// PrefetchPart is one partition of a Prefetch: a fetch from Offset of
// about MaxBytes.
type PrefetchPart struct {
	Topic     metastore.TopicID
	Partition int32
	Offset    int64
	MaxBytes  int
}

// Prefetch starts the read-ahead of what fetches of the parts will read,
// for each part whose first span is not on local disk: a request fetching
// several partitions calls it before reading the first, so that all of
// them are fetched from the bucket concurrently instead of one partition
// after the other, and again, once answered, with the offsets its answer
// ends at, so that the consumer's next fetch finds its spans read while it
// decodes this one. The read-ahead's budget goes first to what each part's
// fetch reads, in order, then to the spans past them. It reads no record
// itself and reports nothing: errors come back to the fetch. Etcd is read
// only when a partition's index entries at offset are not cached (the
// fetch would read them anyway).
func (e *Engine) Prefetch(ctx context.Context, parts ...PrefetchPart) {
	plans := make([]raPlan, 0, len(parts))
	for _, p := range parts {
		k := partKey{p.Topic, p.Partition}
		o, err := e.states.getAll(ctx, k)
		if err != nil || p.Offset < o.start || p.Offset >= o.next {
			continue
		}
		plan, need, err := e.planFetch(ctx, k, p.Offset, o.next, p.MaxBytes)
		if err != nil || len(plan) == 0 || e.cache.has(plan[0].Object, plan[0].Pos, plan[0].Size) {
			continue
		}
		plans = append(plans, raPlan{k: k, spans: plan, need: need})
	}
	if len(plans) > 0 {
		e.ra.prefetchAll(plans)
	}
}

// moreEntries returns the index entries from offset from on (below next),
// continuing a run of entries: from the index cache, else from etcd unless
// *etcdRead (then it sets it). It returns nil when there are none, or on an
// error (the caller has entries already; a later fetch meets the error
// again).
func (e *Engine) moreEntries(ctx context.Context, k partKey, from, next int64, etcdRead *bool) []metastore.IndexEntry {
	if from >= next {
		return nil
	}
	if es := e.index.lookup(k, from); len(es) > 0 && es[0].BaseOffset == from {
		return es
	}
	if *etcdRead {
		return nil
	}
	*etcdRead = true
	g := e.index.generation(k)
	es, err := e.meta.FindEntries(ctx, k.id, k.p, from, 64)
	if err != nil || len(es) == 0 || es[0].BaseOffset != from {
		return nil
	}
	e.index.addRead(k, g, es)
	return es
}

// WaitForData returns a channel closed when the partition's offsets change
// (new data, retention), for long polls.
func (e *Engine) WaitForData(topic metastore.TopicID, partition int32) <-chan struct{} {
	return e.states.wakeChan(partKey{topic, partition})
}

// readSpan returns the verified batches of a span: from the read-ahead's
// memory (waiting for it when the span is being prefetched), the local disk
// cache, or a ranged GET, which the disk cache then keeps.
func (e *Engine) readSpan(ctx context.Context, sp span.Span) (segment.Chunk, error) {
	chunk, _, err := e.readSpanOwned(ctx, sp)
	return chunk, err
}

// spanSource says where readSpanOwned's chunk comes from.
type spanSource int

const (
	spanOwned     spanSource = iota // read for the caller alone: stored offsets, patchable in place
	spanReadAhead                   // the read-ahead's, shared: already patched to absolute offsets
)

// readSpanOwned is readSpan, also saying whose the chunk is.
func (e *Engine) readSpanOwned(ctx context.Context, sp span.Span) (chunk segment.Chunk, src spanSource, err error) {
	if sp.Size <= 0 || sp.Size > maxEntrySize {
		return segment.Chunk{}, spanOwned, fmt.Errorf("index entry for %s claims %d bytes: %w", sp.Object, sp.Size, segment.ErrCorrupt)
	}
	if chunk, ok := e.ra.take(ctx, sp); ok {
		e.count(func(s *Stats) { s.ReadAheadHits++ })
		return chunk, spanReadAhead, nil
	}
	data, ok := e.cache.read(sp.Object, sp.Pos, sp.Size)
	if ok {
		e.count(func(s *Stats) { s.CacheHits++ })
	} else {
		e.count(func(s *Stats) { s.CacheMisses++ })
		if data, err = e.getRange(ctx, sp.Object, sp.Pos, sp.Size); err != nil {
			return segment.Chunk{}, spanOwned, err
		}
	}
	if chunk, err = span.ParseSpan(data, sp); err != nil {
		return segment.Chunk{}, spanOwned, err
	}
	if !ok {
		e.cache.putRange(sp.Object, sp.Pos, sp.Size, data)
	}
	return chunk, spanOwned, nil
}

func (e *Engine) getRange(ctx context.Context, key string, pos, size int64) ([]byte, error) {
	return span.ReadRange(ctx, e.store, key, pos, size)
}
