// Package metrics holds an agent's Prometheus metrics and its admin HTTP
// server (/metrics, /healthz, /readyz). Every agent has its own registry: no
// global state, so several agents in one test process never collide.
//
// Families (all prefixed shale_):
//
//	requests_total{api}, request_duration_seconds{api}   Kafka requests served
//	bytes_in_total, bytes_out_total                      record bytes produced / fetched
//	buffer_bytes                                         bytes sealed but not yet committed
//	flush_bytes, flush_duration_seconds                  object size; seal → committed
//	produce_stage_seconds{stage}                         the ack budget, stage by stage (see Stage)
//	uploads_total, upload_retries_total                  objects uploaded, retried attempts
//	upload_hedges_total                                  PUTs raced by a second PUT of the same object (slow store)
//	objects_spooled_total                                objects built on disk, not in memory (memory budget spent)
//	commit_passes_total, committed_objects_total         commit passes and the objects they committed (pipelining)
//	s3_requests_total{op}, s3_request_errors_total{op}   the bucket's bill: put/get/head/list/delete
//	s3_request_duration_seconds{op}
//	etcd_commit_duration_seconds, etcd_commit_conflicts_total, etcd_commit_txns_total
//	cache_hits_total, cache_misses_total                 local read cache (hit ratio = hits / (hits+misses))
//	read_ahead_spans_total, read_ahead_hits_total        cold sequential reads: spans prefetched into memory, fetches served from them
//	compaction_segments_total, compaction_entries_replaced_total, compaction_bytes_written_total
//	key_compaction_passes_total, key_compaction_records_removed_total, key_compaction_failures_total,
//	key_compaction_keys_total, key_compaction_bytes_read_total, key_compaction_bytes_written_total,
//	key_compaction_duration_seconds                      cleanup.policy=compact: partition passes, records removed, partitions
//	                                                     stopped by a corrupt batch, keys mapped, bytes read and written, one run of the job
//	gc_objects_deleted_total, gc_bytes_deleted_total, retention_offsets_dropped_total
//	group_offsets_expired_total                          committed offsets of abandoned groups expired
//	manifests_written_total, manifest_last_written_timestamp_seconds
//	                                                     recovery manifests this agent wrote; when its newest was (max over agents: the recovery point)
//	group_lag{group,topic,partition}                     for groups this agent coordinates
//	groups{type}, group_members{type}                    groups this agent coordinates and their members, by type (classic, consumer, share)
//	group_rebalances_total{type}                         classic generations, KIP-848 and share group epochs advanced by this agent
//	share_records_acquired_total, share_records_redelivered_total
//	                                                     records handed to share consumers; of them, those delivered before
//	share_acknowledgements_total{type}                   records acknowledged by share consumers: accept, release, reject, renew, gap
//	share_state_conflicts_total                          share-partition writes that lost a compare-and-swap race and were retried
//	txn_ended_total{outcome}, txn_end_duration_seconds   transactions committed / aborted by this agent's coordinator; markers+offsets time
//	txn_timeouts_total                                   transactions aborted at their transaction.timeout.ms
//	txn_open                                             transactions ongoing or ending on this agent's coordinator
//
// A nil *Metrics is valid and records nothing, so packages can take one
// optionally.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const ns = "shale"

// Metrics is one agent's set of metrics.
type Metrics struct {
	Registry *prometheus.Registry

	requests       *prometheus.CounterVec
	requestSeconds *prometheus.HistogramVec
	bytesIn        prometheus.Counter
	bytesOut       prometheus.Counter
	flushBytes     prometheus.Histogram
	flushSeconds   prometheus.Histogram
	commitSeconds  prometheus.Histogram
	stageSeconds   *prometheus.HistogramVec
	s3Requests     *prometheus.CounterVec
	s3Errors       *prometheus.CounterVec
	s3Seconds      *prometheus.HistogramVec

	compactSegments  prometheus.Counter
	compactEntries   prometheus.Counter
	compactBytes     prometheus.Counter
	keyPasses        prometheus.Counter
	keyRemoved       prometheus.Counter
	keyFailures      prometheus.Counter
	keyKeys          prometheus.Counter
	keyBytesRead     prometheus.Counter
	keyBytesWritten  prometheus.Counter
	keySeconds       prometheus.Histogram
	iceCommits       prometheus.Counter
	iceRows          prometheus.Counter
	iceFiles         prometheus.Counter
	iceSkipped       prometheus.Counter
	iceRaw           prometheus.Counter
	iceRewritten     prometheus.Counter
	iceFailures      prometheus.Counter
	gcObjects        prometheus.Counter
	gcBytes          prometheus.Counter
	retentionDropped prometheus.Counter
	groupExpired     prometheus.Counter
	manifests        prometheus.Counter
	manifestTime     prometheus.Gauge
	txnEnded         *prometheus.CounterVec
	txnEndSeconds    prometheus.Histogram
	txnTimeouts      prometheus.Counter
	rebalances       *prometheus.CounterVec
	shareAcquired    prometheus.Counter
	shareRedelivered prometheus.Counter
	shareAcks        *prometheus.CounterVec
	shareConflicts   prometheus.Counter
}

// Group types, the type label of the group families.
const (
	GroupClassic  = "classic"
	GroupConsumer = "consumer"
	GroupShare    = "share"
)

// New creates the metrics on a fresh registry (with Go runtime and process
// collectors).
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{r}
	m := &Metrics{Registry: r}
	m.requests = f.counterVec("requests_total", "Kafka requests served, by API.", "api")
	m.requestSeconds = f.histogramVec("request_duration_seconds", "Time from a request's decoding to its answer being ready, by API.", prometheus.ExponentialBuckets(0.0005, 2, 16), "api")
	m.bytesIn = f.counter("bytes_in_total", "Record batch bytes accepted by Produce.")
	m.bytesOut = f.counter("bytes_out_total", "Record batch bytes returned by Fetch.")
	m.flushBytes = f.histogram("flush_bytes", "Size of each sealed object.", prometheus.ExponentialBuckets(4096, 2, 14))
	m.flushSeconds = f.histogram("flush_duration_seconds", "Time from sealing an object to its last commit.", prometheus.ExponentialBuckets(0.001, 2, 14))
	m.commitSeconds = f.histogram("etcd_commit_duration_seconds", "Time to commit one object's index entries to etcd, retries included.", prometheus.ExponentialBuckets(0.0005, 2, 16))
	m.stageSeconds = f.histogramVec("produce_stage_seconds", "Where an acks=all produce spends its time, by stage: buffer (a produce waiting in the open buffer until the seal), seal (building one object), upload_queue (an object waiting for an upload slot), put (its upload, retries included), commit_queue (an uploaded object waiting for the objects sealed before it), commit (its etcd commit), reply (a produce request from its last partition's commit to its answer written on the socket).", prometheus.ExponentialBuckets(0.0001, 1.25, 56), "stage")
	for _, st := range Stages {
		m.stageSeconds.WithLabelValues(st) // exported from the start, at zero
	}
	m.s3Requests = f.counterVec("s3_requests_total", "Object store requests, by operation: what the bucket bills.", "op")
	m.s3Errors = f.counterVec("s3_request_errors_total", "Object store requests that failed, by operation.", "op")
	m.s3Seconds = f.histogramVec("s3_request_duration_seconds", "Object store request latency, by operation.", prometheus.ExponentialBuckets(0.0005, 2, 16), "op")
	m.compactSegments = f.counter("compaction_segments_total", "Compacted segments written and swapped into the index.")
	m.compactEntries = f.counter("compaction_entries_replaced_total", "Index entries replaced by compacted segments.")
	m.compactBytes = f.counter("compaction_bytes_written_total", "Bytes of compacted segments uploaded.")
	m.keyPasses = f.counter("key_compaction_passes_total", "Key-compaction passes that advanced a partition's cleaner checkpoint.")
	m.keyRemoved = f.counter("key_compaction_records_removed_total", "Records removed by key compaction (superseded records and expired tombstones).")
	m.keyFailures = f.counter("key_compaction_failures_total", "Key-compaction passes stopped on a partition by a batch that could not be read (nothing of it rewritten).")
	m.keyKeys = f.counter("key_compaction_keys_total", "Distinct keys mapped by key-compaction passes (the key map's entries).")
	m.keyBytesRead = f.counter("key_compaction_bytes_read_total", "Bytes of index entries key compaction read (mapped, then filtered).")
	m.keyBytesWritten = f.counter("key_compaction_bytes_written_total", "Bytes of the segments key compaction wrote (also in compaction_bytes_written_total).")
	m.keySeconds = f.histogram("key_compaction_duration_seconds", "Time one run of the key-compaction job took over every compacted partition.", prometheus.ExponentialBuckets(0.01, 2, 16))
	m.iceCommits = f.counter("iceberg_commits_total", "Iceberg snapshots committed by the iceberg job (shale.iceberg.mode topics).")
	m.iceRows = f.counter("iceberg_rows_total", "Rows added to Iceberg tables.")
	m.iceFiles = f.counter("iceberg_data_files_total", "Parquet data files added to Iceberg tables.")
	m.iceSkipped = f.counter("iceberg_skipped_offsets_total", "Offsets retention deleted before the iceberg job could materialize them.")
	m.iceRewritten = f.counter("iceberg_rewritten_files_total", "Small Iceberg data files rewritten into larger ones (shale.iceberg.target.file.bytes); their replacements count in iceberg_data_files_total.")
	m.iceRaw = f.counter("iceberg_raw_rows_total", "Rows of json-mode Iceberg tables whose value went to the _raw column (not a JSON object, or a field whose type conflicts with its column).")
	m.iceFailures = f.counter("iceberg_failures_total", "Topics whose iceberg pass failed (logged; retried next pass).")
	m.gcObjects = f.counter("gc_objects_deleted_total", "Unreferenced objects deleted by garbage collection.")
	m.gcBytes = f.counter("gc_bytes_deleted_total", "Bytes of objects deleted by garbage collection.")
	m.retentionDropped = f.counter("retention_offsets_dropped_total", "Offsets dropped by retention (log start advances).")
	m.groupExpired = f.counter("group_offsets_expired_total", "Committed consumer group offsets deleted by group offset expiry (groups nobody coordinates, past the retention).")
	m.manifests = f.counter("manifests_written_total", "Recovery manifests (etcd snapshots for shale recover) this agent wrote to the bucket.")
	m.manifestTime = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "manifest_last_written_timestamp_seconds",
		Help: "Unix time of the newest recovery manifest this agent wrote (0: none); the cluster's recovery point is the max over agents."})
	f.r.MustRegister(m.manifestTime)
	m.txnEnded = f.counterVec("txn_ended_total", "Transactions ended by this agent's transaction coordinator, by outcome (commit, abort).", "outcome")
	m.txnEndSeconds = f.histogram("txn_end_duration_seconds", "Time to write an ended transaction's markers and group offsets and mark it complete.", prometheus.ExponentialBuckets(0.001, 2, 16))
	m.txnTimeouts = f.counter("txn_timeouts_total", "Transactions aborted by their coordinator at transaction.timeout.ms.")
	m.rebalances = f.counterVec("group_rebalances_total", "Rebalances by groups this agent coordinates, by type: classic generations, KIP-848 consumer and share group epochs advanced.", "type")
	for _, t := range []string{GroupClassic, GroupConsumer, GroupShare} {
		m.rebalances.WithLabelValues(t)
	}
	m.shareAcquired = f.counter("share_records_acquired_total", "Records acquired by share group consumers (ShareFetch).")
	m.shareRedelivered = f.counter("share_records_redelivered_total", "Records acquired by share group consumers that had been delivered before.")
	m.shareAcks = f.counterVec("share_acknowledgements_total", "Records acknowledged by share group consumers, by type (accept, release, reject, renew, gap).", "type")
	m.shareConflicts = f.counter("share_state_conflicts_total", "Share-partition state writes that lost a compare-and-swap race in etcd (another agent wrote first) and were retried.")
	return m
}

type factory struct{ r *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help})
	f.r.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	f.r.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets})
	f.r.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets}, labels)
	f.r.MustRegister(h)
	return h
}

// CounterFunc registers a counter whose value is read from f at scrape time
// (for counts a component already keeps).
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, f))
}

// GaugeFunc registers a gauge read from f at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, f))
}

// Register adds a custom collector (e.g. group lag).
func (m *Metrics) Register(c prometheus.Collector) {
	if m != nil {
		m.Registry.MustRegister(c)
	}
}

// Request records one served Kafka request.
func (m *Metrics) Request(api string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(api).Inc()
	m.requestSeconds.WithLabelValues(api).Observe(d.Seconds())
}

// BytesIn counts produced record bytes.
func (m *Metrics) BytesIn(n int) {
	if m != nil {
		m.bytesIn.Add(float64(n))
	}
}

// BytesOut counts fetched record bytes.
func (m *Metrics) BytesOut(n int) {
	if m != nil {
		m.bytesOut.Add(float64(n))
	}
}

// Flush records one object from seal to commit.
func (m *Metrics) Flush(bytes int64, sealToCommit, commit time.Duration) {
	if m == nil {
		return
	}
	m.flushBytes.Observe(float64(bytes))
	m.flushSeconds.Observe(sealToCommit.Seconds())
	m.commitSeconds.Observe(commit.Seconds())
}

// Ack stages, the values of produce_stage_seconds' stage label. buffer and
// reply are observed once per produce (a partition's records, a request),
// the others once per object.
const (
	StageBuffer      = "buffer"
	StageSeal        = "seal"
	StageUploadQueue = "upload_queue"
	StagePut         = "put"
	StageCommitQueue = "commit_queue"
	StageCommit      = "commit"
	StageReply       = "reply"
)

// Stages lists the ack stages in the order an acknowledgement goes through
// them.
var Stages = []string{StageBuffer, StageSeal, StageUploadQueue, StagePut, StageCommitQueue, StageCommit, StageReply}

// Stage records the time one produce or one object spent in an ack stage.
func (m *Metrics) Stage(stage string, d time.Duration) {
	if m != nil {
		m.stageSeconds.WithLabelValues(stage).Observe(d.Seconds())
	}
}

// S3 records one object store request.
func (m *Metrics) S3(op string, err error, d time.Duration) {
	if m == nil {
		return
	}
	m.s3Requests.WithLabelValues(op).Inc()
	m.s3Seconds.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.s3Errors.WithLabelValues(op).Inc()
	}
}

// KeyCompactionRun is what one run of the key-compaction job did over
// every compacted partition.
type KeyCompactionRun struct {
	Passes, Failures, Keys    int
	Removed                   int64
	BytesRead, BytesWritten   int64
	Segments, EntriesReplaced int
	Duration                  time.Duration
}

// KeyCompaction records a run of the key-compaction job: its segments also
// count in the compaction_* counters.
func (m *Metrics) KeyCompaction(r KeyCompactionRun) {
	if m == nil {
		return
	}
	m.keyPasses.Add(float64(r.Passes))
	m.keyRemoved.Add(float64(r.Removed))
	m.keyFailures.Add(float64(r.Failures))
	m.keyKeys.Add(float64(r.Keys))
	m.keyBytesRead.Add(float64(r.BytesRead))
	m.keyBytesWritten.Add(float64(r.BytesWritten))
	m.keySeconds.Observe(r.Duration.Seconds())
	m.Compaction(r.Segments, r.EntriesReplaced, r.BytesWritten)
}

// Iceberg records an iceberg job pass's work.
func (m *Metrics) Iceberg(commits int, rows int64, files, rewritten int, skipped, raw int64, failures int) {
	if m == nil {
		return
	}
	m.iceCommits.Add(float64(commits))
	m.iceRows.Add(float64(rows))
	m.iceFiles.Add(float64(files))
	m.iceSkipped.Add(float64(skipped))
	m.iceRaw.Add(float64(raw))
	m.iceRewritten.Add(float64(rewritten))
	m.iceFailures.Add(float64(failures))
}

// Compaction records a compaction pass's work.
func (m *Metrics) Compaction(segments, entries int, bytes int64) {
	if m == nil {
		return
	}
	m.compactSegments.Add(float64(segments))
	m.compactEntries.Add(float64(entries))
	m.compactBytes.Add(float64(bytes))
}

// GC records a garbage collection pass's deletions.
func (m *Metrics) GC(objects int, bytes int64) {
	if m == nil {
		return
	}
	m.gcObjects.Add(float64(objects))
	m.gcBytes.Add(float64(bytes))
}

// Manifest records a recovery manifest written at t.
func (m *Metrics) Manifest(t time.Time) {
	if m != nil {
		m.manifests.Inc()
		m.manifestTime.Set(float64(t.UnixNano()) / 1e9)
	}
}

// Retention records offsets dropped by a retention pass.
func (m *Metrics) Retention(offsets int64) {
	if m != nil {
		m.retentionDropped.Add(float64(offsets))
	}
}

// GroupOffsetsExpired records committed offsets deleted by a group offset
// expiry pass.
func (m *Metrics) GroupOffsetsExpired(offsets int) {
	if m != nil {
		m.groupExpired.Add(float64(offsets))
	}
}

// TxnEnded records a transaction ended (markers and offsets written).
func (m *Metrics) TxnEnded(commit bool, d time.Duration) {
	if m == nil {
		return
	}
	outcome := "abort"
	if commit {
		outcome = "commit"
	}
	m.txnEnded.WithLabelValues(outcome).Inc()
	m.txnEndSeconds.Observe(d.Seconds())
}

// TxnTimedOut records a transaction aborted at its timeout.
func (m *Metrics) TxnTimedOut() {
	if m != nil {
		m.txnTimeouts.Inc()
	}
}

// Server is the admin HTTP server.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Serve starts the admin server on addr: /metrics (Prometheus), /healthz
// (200 while the process runs) and /readyz (200 when ready returns nil,
// else 503 with the reason).
func Serve(addr string, m *Metrics, ready func(context.Context) error) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener closed under us: Close reports it
		}
	}()
	return s, nil
}

// Addr is where the admin server listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the admin server.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// GroupRebalance counts one rebalance of a group of type typ
// (GroupClassic, GroupConsumer or GroupShare).
func (m *Metrics) GroupRebalance(typ string) {
	if m == nil {
		return
	}
	m.rebalances.WithLabelValues(typ).Inc()
}

// ShareAcquired counts records acquired by share consumers, redelivered
// of them delivered before.
func (m *Metrics) ShareAcquired(records, redelivered int64) {
	if m == nil {
		return
	}
	m.shareAcquired.Add(float64(records))
	m.shareRedelivered.Add(float64(redelivered))
}

// ShareAcknowledged counts n records acknowledged with type typ.
func (m *Metrics) ShareAcknowledged(typ string, n int64) {
	if m == nil {
		return
	}
	m.shareAcks.WithLabelValues(typ).Add(float64(n))
}

// ShareConflict counts a share-partition write that lost its
// compare-and-swap.
func (m *Metrics) ShareConflict() {
	if m == nil {
		return
	}
	m.shareConflicts.Inc()
}
