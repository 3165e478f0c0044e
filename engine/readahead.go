package engine

import (
	"container/list"
	"context"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/span"
)

// Read-ahead for sequential readers. A fetch whose first span is not in the
// local disk cache (a cold, usually historical, read, or one that read-ahead
// is already serving) queues background GETs of the spans that follow it in
// the partition, so the consumer's next fetches find them ready: a replay
// through a Kafka consumer then streams at several GETs in flight instead of
// one GET per fetch.
//
// Results are handed over in memory: a prefetched span is verified once
// (span.ParseSpan: CRC, headers, offsets) and kept as its parsed
// segment.Chunk, which the fetch uses as is (no disk write, no disk read, no
// second CRC pass). Prefetched spans do not go to the disk cache: it keeps
// objects this agent wrote and ranges a foreground read had to GET.
//
// Bounds: at most readAheadSpans spans ahead of a fetch, at most
// readAheadConcurrency GETs in flight per engine (in queue order, so the
// span a reader needs next comes first; a reader waiting for a queued span
// moves it to the front), and at most Config.ReadAheadBytes queued, in flight or
// ready in memory. A ready span counts what it holds: its bytes and its
// parsed batch list (a segment.Batch per batch, more than the batch itself
// when batches are small). A queued or in-flight span counts the most it can
// come to hold (spanCost), so landing never takes it over the budget.
// A ready span stays after a fetch takes it (a fetch whose byte budget ends
// inside a span leaves the rest for the next fetch, which must not GET it
// again) until the budget needs room: new prefetches then
// evict the least recently used spans that a fetch already took, and spans
// no fetch took within readAheadIdle (a reader that went away or seeked);
// spans still waiting for their first reader are not evicted before that,
// so a busy engine skips read-ahead rather than throwing away GETs it made.
// Nor are the spans of each partition's latest prefetch plan, taken or not
// (unless idle for readAheadIdle): the plan is what that partition's reader
// asks for next, so a prefetch of one partition never evicts what another's
// next fetch will read.
//
// A prefetch of several partitions (one consumer's fetch) queues the spans
// each partition's fetch reads first, partition after partition, and only
// then the spans read ahead of them, so that the budget goes to the whole of
// the reader's next fetch before anything past it.
// A span cached on disk, or already queued, in flight or ready is skipped.
// A foreground read of a queued or in-flight span waits for it rather than
// GETting the same bytes twice. Errors are dropped: the foreground read will
// meet them again and report them.
const (
	readAheadSpans       = 8
	readAheadConcurrency = 4
	readAheadIdle        = 30 * time.Second
)

type raState int

const (
	raQueued raState = iota
	raFetching
	raReady
)

// raSpan is one span of the read-ahead: queued, being fetched, or ready.
type raSpan struct {
	sp    span.Span
	k     partKey // the partition whose plan queued it
	state raState
	done  chan struct{} // closed when the fetch ends (ready or dropped)
	chunk segment.Chunk // when ready
	cost  int64         // bytes counted in readAhead.bytes: spanCost(sp), then chunkCost(chunk) once ready
	taken bool          // a fetch used it
	pin   uint64        // readAhead.gen of the last prefetch whose plan holds it
	at    time.Time     // when it became ready or was last taken
	elem  *list.Element // in readAhead.lru while ready
}

type readAhead struct {
	e   *Engine
	max int64 // byte budget: Config.ReadAheadBytes

	mu         sync.Mutex
	spans      map[span.Span]*raSpan // queued, fetching or ready
	queue      []*raSpan             // queued, in fetch order
	lru        *list.List            // of ready *raSpan, front = most recently ready or taken
	bytes      int64                 // cost of every span in spans
	readyBytes int64                 // cost of the ready ones
	workers    int
	gen        uint64             // prefetch calls
	latest     map[partKey]uint64 // per partition, the gen of its latest plan
	closed     bool
	wg         sync.WaitGroup // the workers; close waits for them
}

func newReadAhead(e *Engine) *readAhead {
	return &readAhead{e: e, max: e.cfg.ReadAheadBytes, spans: make(map[span.Span]*raSpan), lru: list.New(), latest: make(map[partKey]uint64)}
}

// raPlan is what one partition's fetch reads and reads ahead, in order:
// spans[:need] the fetch itself, the rest read ahead of it; spans[:from]
// are pinned but not queued (the fetch reads them itself).
type raPlan struct {
	k     partKey
	spans []span.Span
	need  int
	from  int
}

// prefetch queues background reads of plan[from:] (in order) that are
// neither cached nor already known to the read-ahead, within the bounds
// (prefetchAll of one plan).
func (r *readAhead) prefetch(k partKey, plan []span.Span, from int) {
	if len(plan) <= from {
		return
	}
	r.prefetchAll([]raPlan{{k: k, spans: plan, need: len(plan), from: from}})
}

// prefetchAll makes each plan its partition's latest (pinning its spans
// already known), then queues background reads of the plans' spans that
// are neither cached nor already known: every plan's spans[from:need] in
// plan order, then every plan's spans[need:]. It stops at the first span
// that does not fit the budget: room for a span is never made by evicting
// the spans of a partition's latest plan.
func (r *readAhead) prefetchAll(plans []raPlan) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.gen++
	gen := r.gen
	for _, p := range plans {
		r.latest[p.k] = gen
		for _, sp := range p.spans {
			if s := r.spans[sp]; s != nil {
				s.pin, s.k = gen, p.k
			}
		}
	}
	r.mu.Unlock()
	for pass := range 2 {
		for _, p := range plans {
			need := min(max(p.need, p.from), len(p.spans))
			spans := p.spans[min(p.from, need):need]
			if pass == 1 {
				spans = p.spans[need:]
			}
			for _, sp := range spans {
				if !r.queue1(p.k, sp, gen) {
					return
				}
			}
		}
	}
}

// queue1 queues a background read of sp for partition k's plan gen unless
// it is cached or known. It reports false when sp does not fit the budget
// or the read-ahead is closed.
func (r *readAhead) queue1(k partKey, sp span.Span, gen uint64) bool {
	if sp.Size <= 0 || sp.Size > maxEntrySize || r.e.cache.has(sp.Object, sp.Pos, sp.Size) {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if s := r.spans[sp]; s != nil {
		return true
	}
	cost := spanCost(sp)
	if !r.makeRoomLocked(cost) {
		return false
	}
	s := &raSpan{sp: sp, k: k, done: make(chan struct{}), pin: gen, cost: cost}
	r.spans[sp] = s
	r.queue = append(r.queue, s)
	r.bytes += cost
	if r.workers < readAheadConcurrency {
		r.workers++
		r.wg.Add(1)
		go r.worker()
	}
	return true
}

// makeRoomLocked evicts ready spans until n more bytes fit in the budget:
// least recently used first, among those a fetch took or none took for
// readAheadIdle, except the spans of the current prefetch (pinned with
// r.gen) and those of a partition's latest plan that were used or landed
// within readAheadIdle. It reports whether n bytes fit.
func (r *readAhead) makeRoomLocked(n int64) bool {
	if n > r.max {
		return false
	}
	now := time.Now()
	for el := r.lru.Back(); el != nil && r.bytes+n > r.max; {
		s := el.Value.(*raSpan)
		prev := el.Prev()
		idle := now.Sub(s.at) >= readAheadIdle
		if s.pin != r.gen && (idle || s.taken && s.pin != r.latest[s.k]) {
			r.dropLocked(s)
		}
		el = prev
	}
	return r.bytes+n <= r.max
}

// batchSize is the memory of one entry of a chunk's batch list.
const batchSize = int64(unsafe.Sizeof(segment.Batch{}))

// chunkCost is the memory a ready span holds: its bytes and its batch list.
func chunkCost(c segment.Chunk) int64 {
	return int64(len(c.Bytes())) + int64(cap(c.Batches()))*batchSize
}

// spanCost is the most chunkCost can be for sp once verified: its batches
// span sp.Records offsets, at least one each, and take at least
// segment.BatchHeaderSize bytes each.
func spanCost(sp span.Span) int64 {
	return sp.Size + max(0, min(sp.Records, sp.Size/segment.BatchHeaderSize))*batchSize
}

// dropLocked forgets a ready span (its chunk stays valid for whoever holds
// it) or a queued one.
func (r *readAhead) dropLocked(s *raSpan) {
	delete(r.spans, s.sp)
	r.bytes -= s.cost
	if s.elem != nil {
		r.lru.Remove(s.elem)
		s.elem = nil
		r.readyBytes -= s.cost
	}
}

// worker fetches queued spans in order until the queue is empty or the
// engine closes.
func (r *readAhead) worker() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		if r.e.ctx.Err() != nil {
			// Closing: nobody will fetch the queued spans; release their
			// waiters.
			for _, s := range r.queue {
				r.dropLocked(s)
				close(s.done)
			}
			r.queue = nil
		}
		if len(r.queue) == 0 {
			r.workers--
			r.mu.Unlock()
			return
		}
		s := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		s.state = raFetching
		r.mu.Unlock()

		chunk, err := r.fetch(s.sp)

		r.mu.Lock()
		if err != nil {
			r.dropLocked(s)
		} else if cost := chunkCost(chunk); cost <= s.cost {
			r.bytes -= s.cost - cost
			s.cost = cost
			s.chunk, s.state, s.at = chunk, raReady, time.Now()
			s.elem = r.lru.PushFront(s)
			r.readyBytes += cost
		} else {
			// More than spanCost allowed for (never for a verified span):
			// the fetches waiting for it take it, nothing keeps it.
			r.dropLocked(s)
			s.chunk, s.state = chunk, raReady
		}
		close(s.done)
		r.mu.Unlock()
		if err == nil {
			r.e.count(func(st *Stats) { st.ReadAheadSpans++ })
		}
	}
}

// fetch GETs and verifies one span, and patches its batches' base
// offsets to absolute ones before any fetch sees it, so fetches answer
// with its bytes (segment.Chunk.Slice) rather than a patched copy.
func (r *readAhead) fetch(sp span.Span) (segment.Chunk, error) {
	ctx, cancel := context.WithTimeout(r.e.ctx, r.e.cfg.UploadTimeout)
	defer cancel()
	data, err := r.e.getRange(ctx, sp.Object, sp.Pos, sp.Size)
	if err != nil {
		return segment.Chunk{}, err
	}
	chunk, err := span.ParseSpan(data, sp)
	if err == nil {
		chunk.PatchInPlace(0, sp.AbsBase, sp.StoredBase, math.MaxInt)
	}
	return chunk, err
}

// take returns the verified chunk of sp if the read-ahead has it ready, or
// had it queued or in flight (then take waits for it, moving a queued span
// to the front of the queue). It reports false when the read-ahead does not
// know sp, its fetch failed, or ctx ended first.
func (r *readAhead) take(ctx context.Context, sp span.Span) (segment.Chunk, bool) {
	r.mu.Lock()
	s := r.spans[sp]
	if s == nil {
		r.mu.Unlock()
		return segment.Chunk{}, false
	}
	if s.state == raQueued {
		for i, q := range r.queue {
			if q == s {
				copy(r.queue[1:i+1], r.queue[:i])
				r.queue[0] = s
				break
			}
		}
	}
	if s.state != raReady {
		r.mu.Unlock()
		select {
		case <-s.done:
		case <-ctx.Done():
			return segment.Chunk{}, false
		}
		r.mu.Lock()
		if s.state != raReady {
			r.mu.Unlock()
			return segment.Chunk{}, false
		}
	}
	s.taken, s.at = true, time.Now()
	if s.elem != nil {
		r.lru.MoveToFront(s.elem)
	}
	r.mu.Unlock()
	return s.chunk, true
}

// held returns the bytes the read-ahead counts: of the ready spans (their
// bytes and batch lists), and in all (queued and in flight counted at
// spanCost, and ready; never above r.max).
func (r *readAhead) held() (ready, all int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readyBytes, r.bytes
}

// close stops the read-ahead: no new prefetches, the workers end (the
// engine's context is cancelled first) and the ready spans are dropped.
func (r *readAhead) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
	r.mu.Lock()
	for _, s := range r.spans {
		r.dropLocked(s)
	}
	r.mu.Unlock()
}
