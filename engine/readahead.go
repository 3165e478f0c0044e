package engine

import (
	"context"
	"sync"

	"github.com/shale-dev/shale/s3tier"
)

// Read-ahead for sequential readers. A fetch that had to GET a span from
// the bucket (a cold, usually historical, read) starts background GETs of
// the spans that follow it in the partition, so the consumer's next fetches
// find them in the local cache: a replay through a Kafka consumer then
// streams at several GETs in flight instead of one GET per fetch.
//
// Bounds: at most readAheadSpans spans ahead of the fetch, at most
// readAheadConcurrency GETs in flight per engine, at most
// readAheadBytes downloaded and not yet cached. A span already cached or
// being fetched is skipped. Prefetched bytes are verified (CRC) before they
// enter the cache, like any read. Errors are dropped: the foreground read
// will meet them again and report them.
const (
	readAheadSpans       = 8
	readAheadConcurrency = 4
	readAheadBytes       = 64 << 20
)

type readAhead struct {
	e     *Engine
	sem   chan struct{}
	mu    sync.Mutex
	busy  map[s3tier.Span]chan struct{} // closed when the span's prefetch ends
	bytes int64
	wg    sync.WaitGroup // the prefetches; Close waits for them after cancelling
}

func newReadAhead(e *Engine) *readAhead {
	return &readAhead{e: e, sem: make(chan struct{}, readAheadConcurrency), busy: make(map[s3tier.Span]chan struct{})}
}

// prefetch starts background reads of spans (in order) that are neither
// cached nor already being read, within the bounds.
func (r *readAhead) prefetch(spans []s3tier.Span) {
	for _, sp := range spans {
		if sp.Size <= 0 || sp.Size > maxEntrySize || r.e.cache.has(sp.Object, sp.Pos, sp.Size) {
			continue
		}
		r.mu.Lock()
		if r.busy[sp] != nil || r.bytes+sp.Size > readAheadBytes {
			r.mu.Unlock()
			continue
		}
		r.busy[sp] = make(chan struct{})
		r.bytes += sp.Size
		r.mu.Unlock()
		r.wg.Add(1)
		go r.fetch(sp)
	}
}

func (r *readAhead) fetch(sp s3tier.Span) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		close(r.busy[sp])
		delete(r.busy, sp)
		r.bytes -= sp.Size
		r.mu.Unlock()
	}()
	select {
	case r.sem <- struct{}{}:
	case <-r.e.ctx.Done():
		return
	}
	defer func() { <-r.sem }()
	if r.e.cache.has(sp.Object, sp.Pos, sp.Size) {
		return
	}
	ctx, cancel := context.WithTimeout(r.e.ctx, r.e.cfg.UploadTimeout)
	defer cancel()
	data, err := r.e.getRange(ctx, sp.Object, sp.Pos, sp.Size)
	if err != nil {
		return
	}
	if _, err := s3tier.ParseSpan(data, sp); err != nil {
		return
	}
	r.e.cache.putRange(sp.Object, sp.Pos, sp.Size, data)
	r.e.count(func(s *Stats) { s.ReadAheadSpans++ })
}

// wait blocks until an in-flight prefetch of sp ends, and reports whether
// there was one (the caller then looks in the cache again rather than
// issuing a second GET for the same bytes).
func (r *readAhead) wait(ctx context.Context, sp s3tier.Span) bool {
	r.mu.Lock()
	ch := r.busy[sp]
	r.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}
