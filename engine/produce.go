package engine

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/internal/retry"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
	"github.com/shale-dev/shale/segment"
)

// ProduceResult is the answer to one partition of a produce request.
type ProduceResult struct {
	BaseOffset     int64
	LogStartOffset int64
}

// Pending is a produce waiting for its object to be uploaded and committed.
type Pending struct {
	done      chan struct{}
	res       ProduceResult
	err       error
	remaining int // batches without a verdict; committer-owned
	first     bool
	queued    time.Time // when Produce appended it to the open buffer
	doneAt    time.Time // when the result was known
}

// Wait blocks until the produce is durable (uploaded and committed) or failed,
// or ctx ends. Kafka-level failures are *kerr.Error values.
func (p *Pending) Wait(ctx context.Context) (ProduceResult, error) {
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return ProduceResult{}, ctx.Err()
	}
}

// Done is closed when the result is known.
func (p *Pending) Done() <-chan struct{} { return p.done }

// DoneAt is when the result became known (the commit or failure that
// completed it); valid once Done is closed.
func (p *Pending) DoneAt() time.Time { return p.doneAt }

func failed(err error) *Pending {
	p := &Pending{done: make(chan struct{}), err: err, doneAt: time.Now()}
	close(p.done)
	return p
}

type partKey struct {
	id metastore.TopicID
	p  int32
}

type pendingBatch struct {
	raw   []byte // dropped once written to the spool
	size  int64
	meta  batchMeta
	first int64 // base timestamp
	max   int64 // max timestamp
	w     *Pending
	isW0  bool // first batch of its Pending: decides the answer's base offset
}

// buffer is an open buffer: the batches of one latency class (flush
// interval) waiting for their seal.
type buffer struct {
	parts    map[partKey][]pendingBatch
	order    []partKey
	bytes    int64
	interval time.Duration
	timer    *time.Timer
}

// Produce validates the records of one partition (v2 batches, CRC, size) and
// appends them to the open buffer. The returned Pending completes when they
// are in the bucket and indexed in etcd. The caller has checked that the
// topic exists and the partition is in range, and, for transactional
// batches, that the partition is in the producer's ongoing transaction;
// at commit a transactional batch opens the producer's transaction in the
// partition if none is open (metastore.PartitionState.Txns), holding the
// last stable offset there until its marker. Control batches are
// refused (INVALID_RECORD): only WriteMarker writes them. Produce blocks only for
// back-pressure (too many bytes waiting for upload), bounded by ctx.
func (e *Engine) Produce(ctx context.Context, topic metastore.TopicID, partition int32, records []byte) *Pending {
	return e.ProduceEvery(ctx, topic, partition, records, 0)
}

// ProduceEvery is Produce for a topic with a latency class of its own
// (topic config shale.flush.ms): its records go into an open buffer sealed
// every interval (on its own grid) instead of Config.FlushInterval. An
// interval of 0 is the engine's.
func (e *Engine) ProduceEvery(ctx context.Context, topic metastore.TopicID, partition int32, records []byte, interval time.Duration) *Pending {
	return e.ProduceTxn(ctx, topic, partition, records, interval, 0)
}

// ProduceTxn is ProduceEvery for records whose transactional batches were
// verified against their producer's transaction txn
// (metastore.TxnState.StartRevision; 0: unknown, not checked). At commit,
// such a batch is refused with INVALID_TXN_STATE, and not written, when
// the partition already has that transaction's marker
// (metastore.ProducerState.EndedTxn): it was verified before the
// transaction ended and reached etcd after, and would otherwise open a
// transaction nobody will end. The check and the write are one etcd
// transaction, compared on the partition state that markers update too.
func (e *Engine) ProduceTxn(ctx context.Context, topic metastore.TopicID, partition int32, records []byte, interval time.Duration, txn int64) *Pending {
	if interval <= 0 {
		interval = e.cfg.FlushInterval
	}
	if len(records) > e.cfg.MaxRecordsBytes {
		return failed(kerr.MessageTooLarge)
	}
	batches, err := segment.SplitBatches(records, true)
	if err != nil {
		return failed(batchError(err))
	}
	if len(batches) == 0 {
		return failed(kerr.InvalidRecord)
	}
	pbs := make([]pendingBatch, len(batches))
	w := &Pending{done: make(chan struct{}), remaining: len(batches)}
	for i, b := range batches {
		h := b.Header
		if h.IsControl() {
			// Markers are the transaction coordinator's (WriteMarker).
			return failed(kerr.InvalidRecord)
		}
		pid := h.ProducerID
		if h.BaseSequence < 0 {
			pid = -1
		}
		if h.IsTransactional() && pid < 0 {
			// A transactional batch is always idempotent.
			return failed(kerr.InvalidRecord)
		}
		var txnStart int64
		if h.IsTransactional() {
			txnStart = txn
		}
		pbs[i] = pendingBatch{
			raw:  b.Raw,
			size: int64(len(b.Raw)),
			meta: batchMeta{records: int64(h.LastOffsetDelta) + 1, producerID: pid, epoch: h.ProducerEpoch,
				baseSeq: h.BaseSequence, lastDelta: h.LastOffsetDelta, txn: h.IsTransactional(), txnStart: txnStart},
			first: h.BaseTimestamp,
			max:   h.MaxTimestamp,
			w:     w,
			isW0:  i == 0,
		}
	}
	return e.enqueue(ctx, partKey{topic, partition}, interval, pbs, w)
}

// WriteMarker appends a transaction marker (a control batch: commit or
// abort) for producer pid at epoch to a partition, through the same
// buffer, object and etcd commit as produced batches, so it takes an
// offset like any batch. At commit it closes the producer's open
// transaction in the partition (an abort adds it to the partition's
// aborted-transaction index); a marker for a producer with no open
// transaction there was written already (or the transaction never wrote
// to the partition) and is dropped, answered as a duplicate. The
// Pending's BaseOffset is then -1. Written or dropped, the marker records
// its transaction txn (metastore.TxnState.StartRevision; 0: unknown) as
// the producer's ended one in the partition, and its epoch when newer,
// so that a batch of that transaction still in flight is refused
// (ProduceTxn) and one of an older epoch fenced. interval is the topic's
// latency class (as for ProduceEvery; 0: the engine's).
func (e *Engine) WriteMarker(ctx context.Context, topic metastore.TopicID, partition int32, pid int64, epoch int16, txn int64, commit bool, interval time.Duration) *Pending {
	if pid < 0 || epoch < 0 {
		return failed(kerr.InvalidProducerIDMapping)
	}
	if interval <= 0 {
		interval = e.cfg.FlushInterval
	}
	now := e.cfg.Now().UnixMilli()
	raw := segment.ControlBatch(pid, epoch, commit, 0, now)
	m := markerAbort
	if commit {
		m = markerCommit
	}
	w := &Pending{done: make(chan struct{}), remaining: 1}
	pbs := []pendingBatch{{
		raw: raw, size: int64(len(raw)),
		meta:  batchMeta{records: 1, producerID: pid, epoch: epoch, baseSeq: -1, txn: true, txnStart: txn, marker: m},
		first: now, max: now, w: w, isW0: true,
	}}
	return e.enqueue(ctx, partKey{topic, partition}, interval, pbs, w)
}

// enqueue appends one partition's batches to the open buffer of its
// latency class (interval), after back-pressure.
func (e *Engine) enqueue(ctx context.Context, k partKey, interval time.Duration, pbs []pendingBatch, w *Pending) *Pending {
	var size int64
	for _, pb := range pbs {
		size += pb.size
	}
	if err := e.waitSpace(ctx); err != nil {
		return failed(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return failed(kerr.NotEnoughReplicas) // retriable: try another agent
	}
	for iv, o := range e.opens {
		if _, ok := o.parts[k]; ok && iv != interval {
			// The topic changed class: what the partition has in its old
			// class's buffer is sealed first, so it commits first.
			e.sealLocked(o)
		}
	}
	if o := e.opens[interval]; o != nil && size >= e.cfg.FlushBytes {
		// Records larger than a whole object go into an object of their
		// own: seal what is open first (seal order is commit order).
		e.sealLocked(o)
	}
	b := e.opens[interval]
	if b == nil {
		b = &buffer{parts: make(map[partKey][]pendingBatch), interval: interval}
		b.timer = time.AfterFunc(untilTick(time.Since(e.epoch), interval), func() { e.flushTimer(b) })
		e.opens[interval] = b
	}
	w.queued = time.Now()
	if _, ok := b.parts[k]; !ok {
		b.order = append(b.order, k)
	}
	b.parts[k] = append(b.parts[k], pbs...)
	b.bytes += size
	if b.bytes >= e.cfg.FlushBytes {
		e.sealLocked(b)
	}
	return w
}

// maxPendingObjects bounds sealed objects not yet committed (the sealed
// channel's capacity is larger, so sealing never blocks).
const maxPendingObjects = 256

// waitSpace applies back-pressure: it waits while too many bytes or objects
// are sealed but not committed, bounded by ctx.
func (e *Engine) waitSpace(ctx context.Context) error {
	e.spaceMu.Lock()
	defer e.spaceMu.Unlock()
	if e.pendingBytes <= e.cfg.MaxPendingBytes && e.pendingObjects < maxPendingObjects {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		e.spaceMu.Lock()
		e.space.Broadcast()
		e.spaceMu.Unlock()
	})
	defer stop()
	for e.pendingBytes > e.cfg.MaxPendingBytes || e.pendingObjects >= maxPendingObjects {
		if e.spaceClosed {
			return kerr.NotEnoughReplicas
		}
		if ctx.Err() != nil {
			return kerr.RequestTimedOut
		}
		e.space.Wait()
	}
	return nil
}

// release returns the space of a committed (or failed) object.
func (e *Engine) release(bytes int64) {
	e.spaceMu.Lock()
	e.pendingBytes -= bytes
	e.pendingObjects--
	e.space.Broadcast()
	e.spaceMu.Unlock()
}

func batchError(err error) error {
	switch {
	case errors.Is(err, segment.ErrMagic):
		// Produce v3+ must carry record batch v2 (Kafka answers the same).
		return kerr.InvalidRecord
	case errors.Is(err, segment.ErrCRC):
		return kerr.CorruptMessage
	default:
		return kerr.CorruptMessage
	}
}

// untilTick is the seal policy (doc.go, "Seal policy"): an open buffer is
// sealed at the next tick of a grid of period interval (the engine's own
// phase), not interval after its first batch. since is the time since the
// grid's origin.
func untilTick(since, interval time.Duration) time.Duration {
	return interval - since%interval
}

func (e *Engine) flushTimer(b *buffer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed && e.opens[b.interval] == b {
		e.sealLocked(b)
	}
}

// sealAllLocked seals every open buffer. e.mu must be held.
func (e *Engine) sealAllLocked() {
	for _, b := range e.opens {
		e.sealLocked(b)
	}
}

// sealedObject is one object on its way to the bucket and etcd.
type sealedObject struct {
	key       string
	path      string
	size      int64 // object size
	bytes     int64 // batch bytes, for back-pressure accounting
	chunks    []sealedChunk
	uploaded  chan struct{} // closed when the upload finished
	uploadErr error
	committed chan struct{}   // closed when every waiter has its answer
	data      *segment.Pieces // the object, when built in memory (else at path): its batches by reference (upload.go)
	mem       int64           // bytes of the memory budget data holds
	cached    chan struct{}   // closed once the cache has data's copy (nil: spooled)

	sealedAt, uploadedAt time.Time // for latency accounting
}

type sealedChunk struct {
	k       partKey
	info    segment.ChunkInfo
	batches []pendingBatch
}

// sealLocked closes an open buffer and hands it to the pipeline. The object
// is built and uploaded outside the lock. e.mu must be held.
func (e *Engine) sealLocked(b *buffer) *sealedObject {
	delete(e.opens, b.interval)
	b.timer.Stop()
	e.seq++
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	now := e.cfg.Now()
	name := fmt.Sprintf("%013d-%s-%06d-%s.seg", now.UnixMilli(), e.cfg.Name, e.seq%1000000, hex.EncodeToString(rnd[:]))
	so := &sealedObject{
		key:       e.cfg.ObjectPrefix + name,
		path:      filepath.Join(e.spoolDir, name),
		uploaded:  make(chan struct{}),
		committed: make(chan struct{}),
		sealedAt:  now,
	}
	so.chunks = make([]sealedChunk, 0, len(b.order))
	for _, k := range b.order {
		so.chunks = append(so.chunks, sealedChunk{k: k, batches: b.parts[k]})
	}
	so.bytes = b.bytes
	e.spaceMu.Lock()
	e.pendingBytes += b.bytes
	e.pendingObjects++
	e.spaceMu.Unlock()
	e.lastSealed = so
	// The channel preserves seal order, which the committer keeps.
	e.sealed <- so
	go e.buildAndUpload(so)
	return so
}

// buildAndUpload builds the object (in memory, or in the spool under
// pressure), then uploads it with bounded concurrency and retries.
func (e *Engine) buildAndUpload(so *sealedObject) {
	defer func() { so.uploadedAt = time.Now(); close(so.uploaded) }()
	m := e.cfg.Metrics
	for i := range so.chunks {
		for _, pb := range so.chunks[i].batches {
			if pb.isW0 {
				m.Stage(metrics.StageBuffer, so.sealedAt.Sub(pb.w.queued))
			}
		}
	}
	t := time.Now()
	if err := e.build(so); err != nil {
		so.uploadErr = err
		return
	}
	m.Stage(metrics.StageSeal, time.Since(t))
	if so.data != nil {
		so.cached = make(chan struct{})
		go e.cacheInMemory(so)
	}
	t = time.Now()
	select {
	case e.uploads <- struct{}{}:
	case <-e.ctx.Done():
		so.uploadErr = e.ctx.Err()
		return
	}
	defer func() { <-e.uploads }()
	m.Stage(metrics.StageUploadQueue, time.Since(t))
	t = time.Now()
	so.uploadErr = e.upload(so)
	m.Stage(metrics.StagePut, time.Since(t))
}

// build builds the object in memory, or in the spool when the memory
// budget is spent (upload.go).
func (e *Engine) build(so *sealedObject) error {
	if e.reserveMem(so.bytes) {
		so.mem = so.bytes
		if err := e.buildInMemory(so); err != nil {
			return fmt.Errorf("build %s: %w", so.key, err)
		}
		return nil
	}
	e.count(func(s *Stats) { s.ObjectsSpooled++ })
	f, err := os.Create(so.path)
	if err != nil {
		return fmt.Errorf("spool %s: %w", so.path, err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	if err := e.addChunks(so, segment.NewBuilder(bw)); err != nil {
		return fmt.Errorf("build %s: %w", so.key, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("spool %s: %w", so.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	so.size = st.Size()
	return nil
}

// uploadRetry paces an object's upload attempts, until UploadTimeout: 50 ms
// then doubling up to 2 s, jittered so agents retrying together spread.
var uploadRetry = retry.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Jitter: retry.HalfJitter}

func (e *Engine) upload(so *sealedObject) error {
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.UploadTimeout)
	defer cancel()
	var last error
	err := retry.Do(ctx, uploadRetry, func(attempt int) error {
		// A store that stops answering (a hung connection) must not hold
		// the whole object's budget: each attempt gets its own bound.
		actx, acancel := context.WithTimeout(ctx, attemptTimeout(so.size))
		err := e.putHedged(actx, so)
		acancel()
		if err != nil && ctx.Err() == nil {
			e.count(func(s *Stats) { s.UploadRetries++ })
			e.log.Warn("upload failed, retrying", "key", so.key, "attempt", attempt, "err", err)
		}
		last = err
		return err
	})
	if err != nil {
		return fmt.Errorf("upload %s: %w (last error: %v)", so.key, ctx.Err(), last)
	}
	e.count(func(s *Stats) { s.ObjectsUploaded++; s.BytesUploaded += so.size })
	return nil
}

// attemptTimeout bounds one upload attempt: a few seconds plus the time
// the object takes at a slow 1 MiB/s.
func attemptTimeout(size int64) time.Duration {
	return minAttemptTimeout + time.Duration(size>>20)*time.Second
}

const minAttemptTimeout = 5 * time.Second

// putHedged is one upload attempt: a PUT of the object, raced by a second
// PUT of the same key and bytes when the first has not finished after
// hedgeDelay (a store's slow tail: a hung connection, an overloaded
// node). The first success wins and the other is cancelled; the attempt
// fails only when every PUT it started failed. Both write the same bytes
// under the same key, so whichever lands last leaves the object intact.
// Every PUT started here has returned when putHedged returns.
func (e *Engine) putHedged(ctx context.Context, so *sealedObject) error {
	delay := hedgeDelay(e.cfg.UploadHedgeAfter, so.size)
	if delay <= 0 {
		return e.putFile(ctx, so)
	}
	ctx, cancel := context.WithCancel(ctx)
	results := make(chan error, 2)
	put := func() { results <- e.putFile(ctx, so) }
	go put()
	running, hedged := 1, false
	timer := time.NewTimer(delay)
	defer timer.Stop()
	var first error
	for {
		select {
		case err := <-results:
			running--
			if err == nil || running == 0 {
				if err != nil && first != nil {
					err = first
				}
				cancel()
				for ; running > 0; running-- {
					<-results
				}
				return err
			}
			first = err
		case <-timer.C:
			if !hedged {
				hedged = true
				running++
				e.count(func(s *Stats) { s.UploadHedges++ })
				go put()
			}
		}
	}
}

// hedgeDelay is how long a PUT of size bytes may run before a second one
// races it: after (a second by default) plus the time the object takes at
// 32 MiB/s, so a large object's normal transfer is never doubled. A
// negative after disables hedging.
func hedgeDelay(after time.Duration, size int64) time.Duration {
	if after < 0 {
		return 0
	}
	return after + time.Duration(size)*time.Second/(32<<20)
}

func (e *Engine) putFile(ctx context.Context, so *sealedObject) error {
	if so.data != nil {
		return e.store.Put(ctx, so.key, so.data.Reader(), so.size)
	}
	f, err := os.Open(so.path)
	if err != nil {
		return err
	}
	defer f.Close()
	return e.store.Put(ctx, so.key, f, so.size)
}
