package replay

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/span"
)

// runner is one Plan.Run.
type runner struct {
	plan    *Plan
	meta    *metastore.Store
	store   s3tier.Store
	sink    Sink
	stats   *Stats
	footers *span.FooterCache
	gets    *semaphore.Weighted // ranged GETs in flight, all partitions
	budget  *semaphore.Weighted // bytes fetched and not yet decoded, all partitions
}

// fetch is one span's ranged GET, started ahead of its decoding.
type fetch struct {
	sp     span.Span
	weight int64 // bytes held in the budget
	done   chan struct{}
	data   []byte
	err    error
}

// partition replays one partition, re-reading the index (at most
// maxRestarts times) when an object it names is gone: compaction swapped
// the entry and garbage collection deleted the old object meanwhile.
func (r *runner) partition(ctx context.Context, pp PartitionPlan) error {
	w, err := r.sink.Open(pp.Partition)
	if err != nil {
		return err
	}
	cursor := pp.Start // every offset below it has been handled
	// Reused batch to batch: writers keep no record bytes past a call.
	var dc decodeState
	for attempt := 0; ; attempt++ {
		err = r.pipeline(ctx, pp, &cursor, w, &dc)
		if err != nil && s3tier.IsNotFound(err) && attempt < maxRestarts && ctx.Err() == nil {
			continue
		}
		break
	}
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close output: %w", cerr)
	}
	return err
}

// pipeline reads the partition from *cursor to pp.End: a producer walks
// the index and starts each span's GET as soon as the budget allows; the
// caller's goroutine decodes the spans in order and writes them.
func (r *runner) pipeline(ctx context.Context, pp PartitionPlan, cursor *int64, w Writer, dc *decodeState) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	id := r.plan.Topic.ID
	win := r.plan.win
	fetches := make(chan *fetch, maxQueuedSpans)
	var perr error // the producer's; read after fetches is closed
	from := *cursor
	go func() {
		defer close(fetches)
		next := from // next offset the index must cover
		var cbErr error
		err := r.meta.ScanEntries(ctx, id, pp.Partition, from, func(e metastore.IndexEntry) bool {
			if e.BaseOffset >= pp.End {
				return false
			}
			if e.BaseOffset > next {
				cbErr = fmt.Errorf("index starts at offset %d, replay is at %d: %w", e.BaseOffset, next, ErrGap)
				return false
			}
			next = e.LastOffset + 1
			if e.MaxTimestamp < win.fromTs {
				return true
			}
			spans, err := r.footers.Spans(ctx, r.store, id, pp.Partition, e)
			if err != nil {
				cbErr = err
				return false
			}
			for _, sp := range spans {
				if sp.LastOffset() < from || sp.AbsBase >= pp.End || sp.MaxTimestamp < win.fromTs {
					continue
				}
				if cbErr = r.start(ctx, sp, fetches); cbErr != nil {
					return false
				}
			}
			return true
		})
		switch {
		case cbErr != nil:
			perr = cbErr
		case err != nil:
			perr = fmt.Errorf("read index: %w", err)
		case next < pp.End && ctx.Err() == nil:
			perr = fmt.Errorf("index ends at offset %d, partition at %d: %w", next, pp.End, ErrGap)
		}
	}()
	var cerr error
	for f := range fetches {
		<-f.done
		if cerr == nil {
			if cerr = f.err; cerr == nil {
				cerr = r.decode(f.data, f.sp, pp, cursor, w, dc)
			}
			if cerr != nil {
				cancel()
			}
		}
		putBuf(f.data)
		f.data = nil
		r.budget.Release(f.weight)
	}
	if cerr != nil {
		return cerr
	}
	if perr != nil {
		return perr
	}
	return ctx.Err()
}

// start reserves budget for sp, starts its GET and queues it.
func (r *runner) start(ctx context.Context, sp span.Span, fetches chan<- *fetch) error {
	f := &fetch{sp: sp, weight: min(sp.Size, r.plan.opts.ReadAhead), done: make(chan struct{})}
	if err := r.budget.Acquire(ctx, f.weight); err != nil {
		return err
	}
	if err := r.gets.Acquire(ctx, 1); err != nil {
		r.budget.Release(f.weight)
		return err
	}
	go func() {
		defer close(f.done)
		f.data, f.err = r.read(ctx, sp)
		r.gets.Release(1)
	}()
	select {
	case fetches <- f:
		return nil
	case <-ctx.Done():
		<-f.done
		putBuf(f.data)
		r.budget.Release(f.weight)
		return ctx.Err()
	}
}

// decodeState is what one partition's decoding reuses from batch to batch
// (a replay of 1 GiB of 1 KiB records allocated 150 MB of Record slices
// when each span grew its own).
type decodeState struct {
	dec  segment.Decoder
	recs []Record
}

// decode checks one span's bytes and writes the batches and records in
// the window, advancing *cursor past each batch handled.
func (r *runner) decode(data []byte, sp span.Span, pp PartitionPlan, cursor *int64, w Writer, dc *decodeState) error {
	chunk, err := span.ParseSpan(data, sp)
	if err != nil {
		return err
	}
	r.stats.Spans.Add(1)
	win := r.plan.win
	raw := r.sink.Raw()
	recs := dc.recs
	defer func() { dc.recs = recs[:0] }()
	for _, b := range chunk.Batches() {
		h := b.Header
		abs := sp.AbsBase + (h.BaseOffset - sp.StoredBase)
		last := abs + int64(h.LastOffsetDelta)
		if last < *cursor {
			continue
		}
		if abs >= pp.End {
			break
		}
		lo := *cursor // first offset of this batch to write
		*cursor = last + 1
		if h.MaxTimestamp < win.fromTs {
			continue // no record of the batch reaches the From time
		}
		if raw && !win.timed {
			if err := w.WriteBatch(pp.Partition, abs, b.Raw); err != nil {
				return err
			}
			r.stats.Records.Add(1)
			continue
		}
		if h.IsControl() {
			continue // Kafka consumers never see control records (transaction markers)
		}
		decoded, err := dc.dec.Decode(b.Raw)
		if err != nil {
			return fmt.Errorf("%s [%d, %d): batch at offset %d: %w", sp.Object, sp.Pos, sp.Pos+sp.Size, abs, err)
		}
		recs = recs[:0]
		for _, d := range decoded {
			off := abs + int64(d.OffsetDelta)
			if off < lo || off >= pp.End || !win.hasTime(d.Timestamp) {
				continue
			}
			recs = append(recs, Record{Partition: pp.Partition, Offset: off, Timestamp: d.Timestamp,
				Key: d.Key, Value: d.Value, Headers: d.Headers, ProducerID: h.ProducerID, Transactional: h.IsTransactional()})
		}
		if len(recs) == 0 {
			continue
		}
		if raw {
			err = w.WriteBatch(pp.Partition, abs, b.Raw)
			r.stats.Records.Add(1)
		} else {
			err = w.WriteRecords(recs)
			r.stats.Records.Add(int64(len(recs)))
		}
		if err != nil {
			return err
		}
	}
	r.stats.Bytes.Add(sp.Size)
	return nil
}

// maxSpanSize refuses spans claiming absurd sizes (as span.ReadRange does).
const maxSpanSize = 1 << 30

// bufs recycles span buffers: a replay reads many spans of similar sizes,
// and fresh ones would be zeroed and collected each time.
var bufs sync.Pool

func getBuf(n int64) []byte {
	if p, ok := bufs.Get().(*[]byte); ok && int64(cap(*p)) >= n {
		return (*p)[:n]
	}
	// Capacity in whole bufAlign units, so that a buffer fits the spans
	// of similar size that follow (chunks of about 1 MiB vary by a few
	// bytes) instead of being dropped for a fresh one.
	return make([]byte, n, (n+bufAlign-1)/bufAlign*bufAlign)
}

// bufAlign is the unit of span buffer capacities.
const bufAlign = 256 << 10

func putBuf(b []byte) {
	if b != nil {
		bufs.Put(&b)
	}
}

// read fetches sp with one ranged GET (retried when its body fails
// midway: span.ReadRangeInto) into a recycled buffer (released by putBuf
// once decoded; Writers never keep record bytes past a call).
func (r *runner) read(ctx context.Context, sp span.Span) ([]byte, error) {
	if sp.Size <= 0 || sp.Size > maxSpanSize {
		return nil, fmt.Errorf("read %s: range of %d bytes: %w", sp.Object, sp.Size, segment.ErrCorrupt)
	}
	buf := getBuf(sp.Size)
	if err := span.ReadRangeInto(ctx, r.store, sp.Object, sp.Pos, buf); err != nil {
		putBuf(buf)
		return nil, err
	}
	return buf, nil
}
