package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/span"
)

// Config tunes an Engine. Zero fields take the defaults below.
type Config struct {
	// FlushBytes seals the open buffer when it holds this many bytes.
	FlushBytes int64
	// FlushInterval seals the open buffer this long after its first batch.
	FlushInterval time.Duration
	// DataDir holds the spool (sealed objects waiting for upload) and the
	// read cache. Its content is disposable: it is wiped at start.
	DataDir string
	// MaxPendingBytes bounds sealed-but-uncommitted bytes; Produce waits
	// (back-pressure) above it.
	MaxPendingBytes int64
	// MaxRecordsBytes bounds the records of one partition in one produce
	// request. The agent sets it to its request limit
	// (socket.request.max.bytes); a topic's max.message.bytes is checked by
	// the agent below it.
	MaxRecordsBytes int
	// CacheBytes bounds the local read cache on disk.
	CacheBytes int64
	// ReadAheadBytes bounds the memory of the read-ahead for sequential
	// (replaying) readers: spans queued, in flight and ready (readahead.go).
	// It should hold a consumer's next fetch beside the one it reads:
	// twice fetch.max.bytes.
	ReadAheadBytes int64
	// UploadConcurrency is how many objects upload at once.
	UploadConcurrency int
	// MaxTxnOps keeps each etcd commit transaction under the server's
	// --max-txn-ops.
	MaxTxnOps int
	// ObjectPrefix is prepended to the keys of freshly flushed objects.
	ObjectPrefix string
	// Name identifies this engine in object keys and logs.
	Name string
	// UploadTimeout bounds how long one object may take to upload and commit
	// (retries included) before its producers get an error.
	UploadTimeout time.Duration
	// UploadHedgeAfter is how long a PUT may run before a second PUT of
	// the same object races it (plus the object's transfer time at
	// 32 MiB/s); negative disables hedging.
	UploadHedgeAfter time.Duration
	// Now returns wall-clock time (tests may override).
	Now func() time.Time

	// Metrics, when set, receives flush observations and exposes the
	// engine's counters.
	Metrics *metrics.Metrics

	// beforeCommit, when set, runs after an object is uploaded and before
	// its commit (a fault hook for crash tests).
	beforeCommit func(key string)
}

// Defaults.
const (
	DefaultFlushBytes        = 4 << 20
	DefaultFlushInterval     = 250 * time.Millisecond
	DefaultMaxPendingBytes   = 64 << 20
	DefaultMaxRecordsBytes   = 100 << 20 // Kafka's socket.request.max.bytes
	DefaultCacheBytes        = 1 << 30
	DefaultReadAheadBytes    = 128 << 20
	DefaultUploadConcurrency = 4
	DefaultObjectPrefix      = "wal/"
	DefaultUploadTimeout     = 30 * time.Second
	DefaultUploadHedgeAfter  = time.Second
)

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("engine: DataDir is required")
	}
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.FlushBytes, DefaultFlushBytes)
	def(&c.MaxPendingBytes, DefaultMaxPendingBytes)
	def(&c.CacheBytes, DefaultCacheBytes)
	def(&c.ReadAheadBytes, DefaultReadAheadBytes)
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxRecordsBytes <= 0 {
		c.MaxRecordsBytes = DefaultMaxRecordsBytes
	}
	if c.UploadConcurrency <= 0 {
		c.UploadConcurrency = DefaultUploadConcurrency
	}
	if c.MaxTxnOps <= 0 {
		c.MaxTxnOps = metastore.DefaultMaxTxnOps
	}
	if c.ObjectPrefix == "" {
		c.ObjectPrefix = DefaultObjectPrefix
	}
	if c.UploadTimeout <= 0 {
		c.UploadTimeout = DefaultUploadTimeout
	}
	if c.UploadHedgeAfter == 0 {
		c.UploadHedgeAfter = DefaultUploadHedgeAfter
	}
	if c.Name == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Name = hex.EncodeToString(b[:])
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Engine is one agent's storage engine: the write buffer, the upload and
// commit pipeline, and the read path. It is safe for concurrent use.
type Engine struct {
	cfg   Config
	store s3tier.Store
	meta  *metastore.Store
	log   *slog.Logger

	spoolDir string
	cache    *chunkCache
	footers  *span.FooterCache // footers of compacted segments
	ra       *readAhead
	index    *indexCache
	states   *stateView

	mu    sync.Mutex                // guards the open buffers
	opens map[time.Duration]*buffer // by latency class (flush interval); only non-empty ones
	epoch time.Time                 // origin of the seal grid (untilTick)
	seq   uint64                    // objects sealed
	// lastSealed is the newest sealed object; commits are in seal order, so
	// when it is committed everything sealed before it is too.
	lastSealed *sealedObject
	closed     bool

	spaceMu        sync.Mutex // guards back-pressure accounting; never held while taking mu
	space          *sync.Cond
	pendingBytes   int64 // batch bytes sealed but not yet committed
	pendingObjects int
	memBytes       int64 // object bytes held in memory (upload.go)
	spaceClosed    bool

	sealed  chan *sealedObject // in seal order, to the committer
	uploads chan struct{}      // semaphore for concurrent uploads

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the commit loop
	stopWatch context.CancelFunc
	watchWG   sync.WaitGroup // the etcd watches

	stats statsBox
}

// New starts an engine. Close stops it.
func New(cfg Config, store s3tier.Store, meta *metastore.Store, log *slog.Logger) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	spool := filepath.Join(cfg.DataDir, "spool")
	cacheDir := filepath.Join(cfg.DataDir, "cache")
	// The spool and cache are disposable (invariant 6): whatever a previous
	// process left there was never acknowledged or is in the bucket.
	for _, d := range []string{spool, cacheDir} {
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("engine: clear %s: %w", d, err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("engine: create %s: %w", d, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		cfg:      cfg,
		store:    store,
		meta:     meta,
		log:      log.With("component", "engine"),
		spoolDir: spool,
		cache:    newChunkCache(cacheDir, cfg.CacheBytes),
		footers:  span.NewFooterCache(0),
		index:    newIndexCache(),
		sealed:   make(chan *sealedObject, 2*maxPendingObjects),
		uploads:  make(chan struct{}, cfg.UploadConcurrency),
		ctx:      ctx,
		epoch:    time.Now(),
		opens:    make(map[time.Duration]*buffer),
		cancel:   cancel,
	}
	e.space = sync.NewCond(&e.spaceMu)
	e.ra = newReadAhead(e)
	e.registerMetrics(cfg.Metrics)
	e.states = newStateView(meta)
	rev, err := meta.Revision(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("engine: read etcd revision: %w", err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	e.stopWatch = wcancel
	e.wg.Add(1)
	go func() { defer e.wg.Done(); e.commitLoop() }()
	e.watchWG.Add(2)
	go func() { defer e.watchWG.Done(); e.states.watch(wctx, rev, e.log) }()
	go func() { defer e.watchWG.Done(); e.index.watch(wctx, meta, rev, e.log) }()
	return e, nil
}

// Flush seals the open buffers now and waits until everything sealed so far
// is committed (or failed).
func (e *Engine) Flush(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed {
		e.sealAllLocked()
	}
	last := e.lastSealed
	e.mu.Unlock()
	if last == nil {
		return nil
	}
	select {
	case <-last.committed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes what is buffered (bounded by ctx), stops the pipeline and
// fails whatever could not be committed.
func (e *Engine) Close(ctx context.Context) error {
	ferr := e.Flush(ctx)
	e.mu.Lock()
	e.closed = true
	for _, b := range e.opens {
		b.timer.Stop()
	}
	e.mu.Unlock()
	e.spaceMu.Lock()
	e.spaceClosed = true
	e.space.Broadcast()
	e.spaceMu.Unlock()
	close(e.sealed)
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		e.cancel()
		<-done
	}
	e.stopWatch()
	e.watchWG.Wait()
	e.cancel()
	e.ra.close()
	return ferr
}

// Stats are counters for tests, benchmarks and metrics.
type Stats struct {
	ObjectsUploaded  int64
	ObjectsSpooled   int64 // built in the spool, not in memory (memory budget spent)
	BytesUploaded    int64
	UploadRetries    int64
	UploadHedges     int64
	CommitTxns       int64
	CommitPasses     int64 // commit passes; each commits one or more uploaded objects
	CommittedObjects int64 // objects committed (CommittedObjects/CommitPasses: objects per pass)
	CommitConflicts  int64
	CacheHits        int64
	CacheMisses      int64
	BatchesCommitted int64
	Duplicates       int64
	ReadAheadSpans   int64 // spans prefetched into memory for sequential readers
	ReadAheadHits    int64 // span reads served from the read-ahead's memory
}

type statsBox struct {
	mu sync.Mutex
	s  Stats
}

// Snapshot returns a copy of the counters.
func (e *Engine) Snapshot() Stats {
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	return e.stats.s
}

func (e *Engine) count(f func(*Stats)) {
	e.stats.mu.Lock()
	f(&e.stats.s)
	e.stats.mu.Unlock()
}

// registerMetrics exposes the engine's counters to m, read at scrape time.
func (e *Engine) registerMetrics(m *metrics.Metrics) {
	if m == nil {
		return
	}
	stat := func(f func(Stats) int64) func() float64 {
		return func() float64 { return float64(f(e.Snapshot())) }
	}
	m.CounterFunc("uploads_total", "Objects uploaded to the bucket.", stat(func(s Stats) int64 { return s.ObjectsUploaded }))
	m.CounterFunc("objects_spooled_total", "Sealed objects built in the spool directory instead of memory because the memory budget (half of --max-pending-bytes) was spent.", stat(func(s Stats) int64 { return s.ObjectsSpooled }))
	m.CounterFunc("upload_bytes_total", "Object bytes uploaded to the bucket.", stat(func(s Stats) int64 { return s.BytesUploaded }))
	m.CounterFunc("upload_retries_total", "Upload attempts that failed and were retried.", stat(func(s Stats) int64 { return s.UploadRetries }))
	m.CounterFunc("upload_hedges_total", "PUTs raced by a second PUT of the same object because the first ran past the hedge delay.", stat(func(s Stats) int64 { return s.UploadHedges }))
	m.CounterFunc("commit_passes_total", "Commit passes; one pass commits the next uploaded object with those after it already uploaded.", stat(func(s Stats) int64 { return s.CommitPasses }))
	m.CounterFunc("committed_objects_total", "Objects committed (divided by commit_passes_total: objects per pass).", stat(func(s Stats) int64 { return s.CommittedObjects }))
	m.CounterFunc("etcd_commit_txns_total", "Index commit transactions sent to etcd.", stat(func(s Stats) int64 { return s.CommitTxns }))
	m.CounterFunc("etcd_commit_conflicts_total", "Index commits refused because another agent committed first (then retried).", stat(func(s Stats) int64 { return s.CommitConflicts }))
	m.CounterFunc("cache_hits_total", "Fetch reads served from the local disk cache.", stat(func(s Stats) int64 { return s.CacheHits }))
	m.CounterFunc("cache_misses_total", "Fetch reads that needed a ranged GET.", stat(func(s Stats) int64 { return s.CacheMisses }))
	m.CounterFunc("batches_committed_total", "Record batches committed (duplicates included).", stat(func(s Stats) int64 { return s.BatchesCommitted }))
	m.CounterFunc("read_ahead_spans_total", "Spans prefetched into memory for sequential readers.", stat(func(s Stats) int64 { return s.ReadAheadSpans }))
	m.CounterFunc("read_ahead_hits_total", "Fetch reads served from spans prefetched into memory.", stat(func(s Stats) int64 { return s.ReadAheadHits }))
	m.CounterFunc("duplicates_total", "Idempotent batches answered as duplicates, not written again.", stat(func(s Stats) int64 { return s.Duplicates }))
	m.GaugeFunc("buffer_bytes", "Record bytes sealed but not yet committed (back-pressure above the limit).", func() float64 {
		e.spaceMu.Lock()
		defer e.spaceMu.Unlock()
		return float64(e.pendingBytes)
	})
}
