package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/span"
)

// Defaults of Options.
const (
	DefaultParallel  = 4
	DefaultReadAhead = 64 << 20
	// maxQueuedSpans bounds the spans a partition has fetched or is
	// fetching ahead of the one it decodes, whatever their size.
	maxQueuedSpans = 64
	// maxRestarts is how often one partition re-reads the index after an
	// object vanished (compaction replaced it and GC deleted it).
	maxRestarts = 3
)

// Sentinel errors.
var (
	// ErrBadRange: --from is after --to (same kind), or a bound is malformed.
	ErrBadRange = errors.New("replay: bad range")
	// ErrGap: offsets the replay had to read left the index while it ran
	// (retention or DeleteRecords moved the log start past them).
	ErrGap = errors.New("replay: offsets were deleted while replaying")
)

// Options says what to replay.
type Options struct {
	Topic string
	// Partitions to replay; nil or empty: all.
	Partitions []int32
	// From (inclusive) and To (exclusive), as offsets or times.
	From, To Bound
	// Parallel is the number of ranged GETs in flight and of partitions
	// decoded at once (default DefaultParallel).
	Parallel int
	// ReadAhead bounds the bytes of fetched spans waiting to be decoded,
	// across partitions (default DefaultReadAhead).
	ReadAhead int64
}

// PartitionPlan is the part of one partition a replay reads.
type PartitionPlan struct {
	Partition int32
	// Start and End bound the offsets scanned, [Start, End). End is the
	// partition's next offset when the plan was made, or the To offset.
	Start, End int64
	// Bytes and Entries count the stored record bytes and index entries
	// to read (entries below a From time are skipped and not counted).
	Bytes   int64
	Entries int
}

// Plan is a replay resolved against etcd: the topic and, per partition,
// what to read. Nothing is read from the bucket yet.
type Plan struct {
	Topic      metastore.Topic
	Partitions []PartitionPlan
	TotalBytes int64
	opts       Options
	win        window
}

// Stats counts a replay's progress; fields are updated atomically while
// it runs.
type Stats struct {
	Bytes   atomic.Int64 // stored bytes fetched and decoded
	Records atomic.Int64 // records written (batches, for raw)
	Spans   atomic.Int64 // ranged GETs of record bytes
}

// NewPlan resolves opts against etcd: the topic, the partitions, and each
// partition's offset range from its state and index (read-only).
func NewPlan(ctx context.Context, meta *metastore.Store, opts Options) (*Plan, error) {
	win, err := newWindow(opts.From, opts.To)
	if err != nil {
		return nil, err
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.ReadAhead <= 0 {
		opts.ReadAhead = DefaultReadAhead
	}
	t, err := meta.GetTopic(ctx, opts.Topic)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", opts.Topic, err)
	}
	parts := opts.Partitions
	if len(parts) == 0 {
		for p := range t.Partitions {
			parts = append(parts, p)
		}
	}
	parts = slices.Clone(parts)
	slices.Sort(parts)
	parts = slices.Compact(parts)
	pl := &Plan{Topic: t, opts: opts, win: win}
	for _, p := range parts {
		if p < 0 || p >= t.Partitions {
			return nil, fmt.Errorf("replay %s: partition %d: topic has %d partitions: %w", t.Name, p, t.Partitions, metastore.ErrPartitionMissing)
		}
		st, err := meta.PartitionState(ctx, t.ID, p)
		if err != nil {
			return nil, fmt.Errorf("replay %s/%d: %w", t.Name, p, err)
		}
		pp := PartitionPlan{Partition: p, Start: max(st.LogStartOffset, win.fromOff), End: min(st.NextOffset, win.toOff)}
		if pp.Start < pp.End {
			first := int64(-1)
			err := meta.ScanEntries(ctx, t.ID, p, pp.Start, func(e metastore.IndexEntry) bool {
				if e.BaseOffset >= pp.End {
					return false
				}
				if e.MaxTimestamp < win.fromTs {
					return true // no record in it reaches the From time
				}
				if first < 0 {
					first = max(e.BaseOffset, pp.Start)
				}
				pp.Bytes += e.Bytes()
				pp.Entries++
				return true
			})
			if err != nil {
				return nil, fmt.Errorf("replay %s/%d: read index: %w", t.Name, p, err)
			}
			if first < 0 { // every entry ends before the From time
				pp.Start = pp.End
			} else {
				pp.Start = first
			}
		}
		pl.Partitions = append(pl.Partitions, pp)
		pl.TotalBytes += pp.Bytes
	}
	return pl, nil
}

// Run reads the plan's records from store and writes them to sink. It
// only reads: index entries from meta, ranged GETs from store. Partitions
// are replayed concurrently (up to Parallel); within a partition, the
// next spans are fetched while the current one is decoded, bounded by
// ReadAhead bytes. stats (may be nil) is updated as it goes. Run does not
// close sink.
func (pl *Plan) Run(ctx context.Context, meta *metastore.Store, store s3tier.Store, sink Sink, stats *Stats) error {
	if stats == nil {
		stats = &Stats{}
	}
	r := &runner{
		plan:    pl,
		meta:    meta,
		store:   store,
		sink:    sink,
		stats:   stats,
		footers: span.NewFooterCache(0),
		gets:    semaphore.NewWeighted(int64(pl.opts.Parallel)),
		budget:  semaphore.NewWeighted(pl.opts.ReadAhead),
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pl.opts.Parallel)
	for _, pp := range pl.Partitions {
		if pp.Start >= pp.End {
			continue
		}
		g.Go(func() error {
			if err := r.partition(gctx, pp); err != nil {
				return fmt.Errorf("replay %s/%d: %w", pl.Topic.Name, pp.Partition, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Run plans and runs a replay (NewPlan, then Plan.Run).
func Run(ctx context.Context, meta *metastore.Store, store s3tier.Store, opts Options, sink Sink, stats *Stats) (*Plan, error) {
	pl, err := NewPlan(ctx, meta, opts)
	if err != nil {
		return nil, err
	}
	return pl, pl.Run(ctx, meta, store, sink, stats)
}
