package icetable

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"golang.org/x/sync/errgroup"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/s3tier"
)

// Snapshot summary properties a commit records.
const (
	// SummaryOffsets is, per partition, the first offset not yet in the
	// table (JSON object {"<partition>": offset}): every record below it
	// that the log held when it was read is in the table, once.
	SummaryOffsets = "shale.offsets"
	// SummarySkipped counts offsets retention deleted before they could
	// be materialized, over the table's life.
	SummarySkipped = "shale.skipped-offsets"
	// SummaryRaw counts, over the table's life, the json table rows whose
	// value went to _raw (not an object, or a field that conflicts).
	SummaryRaw = "shale.raw-rows"
)

// DefaultCommitBytes is how many stored record bytes one commit of a
// json table reads at most (Config.CommitBytes): it bounds the job's
// memory, as a json commit builds its rows in memory. A key_value commit
// streams its rows to the data files (memory: a row group per file being
// written), and reads at most KVCommitFiles times the topic's
// shale.iceberg.target.file.bytes.
const DefaultCommitBytes = 64 << 20

// KVCommitFiles sizes a key_value commit (when Config.CommitBytes is
// not set): the stored bytes of this many target-size data files, so
// that a topic of up to as many partitions catching up writes files of
// about the target size, not small files for the rewrite to redo.
const KVCommitFiles = 4

// DefaultSnapshotMaxAge is how long a table's snapshots are kept
// (Config.SnapshotMaxAge): Iceberg's own default for
// history.expire.max-snapshot-age-ms.
const DefaultSnapshotMaxAge = 5 * 24 * time.Hour

// Config tunes materialization.
type Config struct {
	// CommitBytes bounds the stored bytes read into one commit (0:
	// DefaultCommitBytes for json tables, KVCommitFiles target-size
	// files for key_value ones); a topic further behind takes several
	// commits.
	CommitBytes int64
	// SnapshotMaxAge: each commit expires the snapshots older than this
	// (the current one is always kept); 0 is DefaultSnapshotMaxAge,
	// negative keeps every snapshot.
	SnapshotMaxAge time.Duration
}

// Stats counts a pass's work (all topics).
type Stats struct {
	Topics  int   // topics with a table mode
	Commits int   // snapshots committed
	Rows    int64 // rows added
	Files   int   // data files added
	Skipped int64 // offsets deleted by retention before being materialized
	Raw     int64 // json rows added with their value in _raw
	// Rewritten counts small data files replaced by larger ones (their
	// replacements count in Files).
	Rewritten int
	Failed    int // topics whose pass failed (logged)
}

// Materialize brings the table of every topic whose shale.iceberg.mode is
// not disabled up to the topic's last stable offset. A topic that fails
// is logged and counted; the others go on. The error is the first
// failure's (or ctx's).
func Materialize(ctx context.Context, store s3tier.Store, meta *metastore.Store, cfg Config, log *slog.Logger) (Stats, error) {
	var st Stats
	topics, err := meta.ListTopics(ctx)
	if err != nil {
		return st, err
	}
	var first error
	for _, t := range topics {
		mode := ModeOf(t.Configs)
		if mode == ModeDisabled {
			continue
		}
		st.Topics++
		if err := MaterializeTopic(ctx, store, meta, t, cfg, &st); err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			st.Failed++
			log.Warn("iceberg materialization failed", "topic", t.Name, "err", err)
			if first == nil {
				first = err
			}
		}
	}
	return st, first
}

// MaterializeTopic brings one topic's table up to its last stable offset,
// in commits of at most CommitBytes read. Each commit resumes from the
// offsets the current snapshot records, so a commit lost to a crash is
// read again and committed once.
func MaterializeTopic(ctx context.Context, store s3tier.Store, meta *metastore.Store, t metastore.Topic, cfg Config, st *Stats) error {
	mode := ModeOf(t.Configs)
	if cfg.CommitBytes <= 0 {
		cfg.CommitBytes = DefaultCommitBytes
		if mode == ModeKeyValue {
			cfg.CommitBytes = KVCommitFiles * TargetFileBytesOf(t.Configs)
		}
	}
	if mode != ModeKeyValue && mode != ModeJSON {
		return fmt.Errorf("topic %s: %s=%q: %w", t.Name, ConfigMode, mode, ErrUnknownMode)
	}
	h, err := openTable(ctx, store, meta, t, mode)
	if err != nil {
		return err
	}
	h.expireAfter = cmp.Or(cfg.SnapshotMaxAge, DefaultSnapshotMaxAge)
	if tm := h.mode(); tm != mode {
		return fmt.Errorf("table %s was created in %s mode, the topic now says %s=%s: set it back to %s (a table's mode is fixed when it is created): %w",
			t.Name, tm, ConfigMode, mode, tm, ErrModeChanged)
	}
	for ctx.Err() == nil {
		done, err := h.commitOnce(ctx, cfg, st)
		if err != nil {
			return err
		}
		if done {
			removed, added, err := h.compact(ctx, time.Now())
			st.Rewritten += removed
			st.Files += added
			return err
		}
	}
	return ctx.Err()
}

// Progress is what the current snapshot says was materialized.
type Progress struct {
	Offsets map[int32]int64 // per partition, the first offset not in the table
	Skipped int64
	Raw     int64 // json rows with their value in _raw
}

func (h *handle) progress() (Progress, error) {
	p := Progress{Offsets: map[int32]int64{}}
	snap := h.tbl.CurrentSnapshot()
	if snap == nil || snap.Summary == nil {
		return p, nil
	}
	props := snap.Summary.Properties
	var raw map[string]int64
	if err := json.Unmarshal([]byte(props[SummaryOffsets]), &raw); err != nil {
		return p, fmt.Errorf("table %s: snapshot %d: bad %s %q: %w", h.topic.Name, snap.SnapshotID, SummaryOffsets, props[SummaryOffsets], ErrBadSummary)
	}
	for k, v := range raw {
		n, err := strconv.ParseInt(k, 10, 32)
		if err != nil || v < 0 {
			return p, fmt.Errorf("table %s: snapshot %d: bad %s entry %q: %w", h.topic.Name, snap.SnapshotID, SummaryOffsets, k, ErrBadSummary)
		}
		p.Offsets[int32(n)] = v
	}
	p.Skipped, _ = strconv.ParseInt(props[SummarySkipped], 10, 64)
	p.Raw, _ = strconv.ParseInt(props[SummaryRaw], 10, 64)
	return p, nil
}

// span is one partition's part of a commit: offsets [start, end).
type span struct {
	p          int32
	start, end int64
	bytes      int64 // stored bytes to read
}

// commitOnce reads the next CommitBytes of the log past the current
// snapshot and commits them; done when nothing was left to read.
func (h *handle) commitOnce(ctx context.Context, cfg Config, st *Stats) (bool, error) {
	prog, err := h.progress()
	if err != nil {
		return false, err
	}
	states, err := h.meta.PartitionStates(ctx, h.topic.ID)
	if err != nil {
		return false, err
	}
	ends := map[int32]int64{}
	for p, o := range prog.Offsets {
		ends[p] = o
	}
	var spans []span
	budget := cfg.CommitBytes
	skipped := prog.Skipped
	for p := int32(0); p < h.topic.Partitions && budget > 0; p++ {
		s := states[p]
		start := prog.Offsets[p]
		if s.LogStartOffset > start {
			skipped += s.LogStartOffset - start
			start = s.LogStartOffset
		}
		end := s.LastStableOffset()
		if start >= end {
			if start > ends[p] {
				ends[p] = start
			}
			continue
		}
		end, used, err := h.cut(ctx, p, start, end, budget)
		if err != nil {
			return false, err
		}
		budget -= used
		spans = append(spans, span{p, start, end, used})
		ends[p] = end
	}
	if len(spans) == 0 && skipped == prog.Skipped {
		return true, nil
	}
	offs := map[string]int64{}
	for p, o := range ends {
		offs[strconv.Itoa(int(p))] = o
	}
	enc, _ := json.Marshal(offs)
	props := iceberg.Properties{SummaryOffsets: string(enc), SummarySkipped: strconv.FormatInt(skipped, 10)}
	raw := prog.Raw
	var rows int64
	var files int
	if h.mode() == ModeJSON {
		var jraw int64
		rows, files, jraw, err = h.commitJSON(ctx, spans, props, prog.Raw)
		raw += jraw
	} else {
		rows, files, err = h.commitKV(ctx, spans, props)
	}
	if err != nil {
		return false, err
	}
	st.Commits++
	st.Rows += rows
	st.Skipped += skipped - prog.Skipped
	st.Raw += raw - prog.Raw
	st.Files += files
	return false, nil
}

// kvParallelBytes: a key_value commit reading fewer stored bytes writes
// its spans one after the other into shared files, not a file per span.
var kvParallelBytes int64 = 32 << 20

// commitKV writes the key_value rows of spans as Parquet data files, then
// commits them as one snapshot whose summary has props. The spans are
// written in parallel (up to 4), each into files of its own, one per
// table partition it touches; a commit of fewer than kvParallelBytes
// (the steady state, a pass per --iceberg-interval) writes them in turn
// into one file per table partition, so that small commits do not
// multiply small files by the Kafka partitions they read.
func (h *handle) commitKV(ctx context.Context, spans []span, props iceberg.Properties) (int64, int, error) {
	var total int64
	lanes := [][]span{}
	for _, sp := range spans {
		total += sp.bytes
		lanes = append(lanes, []span{sp})
	}
	if total < kvParallelBytes {
		lanes = [][]span{spans}
	}
	paths, rows, err := h.writeKV(ctx, 4, len(lanes), func(ctx context.Context, i int, w *kvWriter) error {
		for _, sp := range lanes[i] {
			if err := h.read(ctx, sp, &sync.Mutex{}, w.add, w.flush); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	files, err := h.commit(ctx, props, func(tx *table.Transaction) error {
		if len(paths) == 0 {
			return tx.AddFiles(ctx, nil, props, false) // offsets only: an empty snapshot
		}
		staged, err := tx.StagedTable()
		if err != nil {
			return err
		}
		dfs, err := h.dataFiles(ctx, staged.Schema(), staged.Spec(), staged.Properties(), paths)
		if err != nil {
			return err
		}
		return tx.AddDataFiles(ctx, dfs, props, table.WithoutAutoNameMapping(), table.WithoutDuplicateCheck())
	})
	return rows, files, err
}

// writeKV runs n kvWriters, up to limit at once, the i-th filled by
// fill(i), and returns the data files they wrote (sorted) and their rows.
// After an error nothing more is uploaded (files already uploaded stay,
// orphans).
func (h *handle) writeKV(ctx context.Context, limit, n int, fill func(context.Context, int, *kvWriter) error) ([]string, int64, error) {
	var (
		mu    sync.Mutex
		paths []string
		rows  int64
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i := range n {
		g.Go(func() error {
			w := newKVWriter(gctx, h)
			err := fill(gctx, i, w)
			ps, ferr := w.finish(err != nil)
			if err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			paths = append(paths, ps...)
			rows += w.rows
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	slices.Sort(paths)
	return paths, rows, nil
}

// dataFiles returns the entries of the data files at paths, of a table
// of schema sc and spec: each file's footer statistics (counts, bounds)
// and partition value (one per file: its timestamps' day or hour), read
// by iceberg-go (up to 4 files at once).
func (h *handle) dataFiles(ctx context.Context, sc *iceberg.Schema, spec iceberg.PartitionSpec, props iceberg.Properties, paths []string) ([]iceberg.DataFile, error) {
	dfs := make([]iceberg.DataFile, len(paths))
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, p := range paths {
		g.Go(func() error {
			df, err := table.FileToDataFile(ctx, h.fsio, p, sc, spec, 0, props)
			dfs[i] = df
			return err
		})
	}
	return dfs, g.Wait()
}

// commitJSON reads the json rows of spans into Arrow columns (one span
// after the other: see json mode in doc.go) and commits them, with the
// columns they add, through iceberg-go's writer as one snapshot whose
// summary has props (and the table's raw count, prevRaw plus this
// commit's, returned).
func (h *handle) commitJSON(ctx context.Context, spans []span, props iceberg.Properties, prevRaw int64) (int64, int, int64, error) {
	rb, err := newRowBuilder(h.tbl.Schema())
	if err != nil {
		return 0, 0, 0, err
	}
	defer rb.release()
	jb := newJSONBuilder(rb, h.tbl.Schema())
	defer jb.release()
	var mu sync.Mutex
	for _, sp := range spans {
		if err := h.read(ctx, sp, &mu, jb.add, nil); err != nil {
			return 0, 0, 0, err
		}
	}
	raw := jb.raw
	props[SummaryRaw] = strconv.FormatInt(prevRaw+raw, 10)
	rows, files, err := h.appendRows(ctx, rb, jb, props)
	return rows, files, raw, err
}

// appendRows commits the rows of rb (jb's value columns too, in json
// mode, adding the new ones to the schema) as one snapshot whose summary
// has props, in one transaction with the topic's partitioning; it
// returns the rows and data files added. No row is an empty snapshot.
func (h *handle) appendRows(ctx context.Context, rb *rowBuilder, jb *jsonBuilder, props iceberg.Properties) (int64, int, error) {
	rows := int64(rb.rows)
	files, err := h.commit(ctx, props, func(tx *table.Transaction) error {
		if jb != nil {
			// New columns and the rows that fill them commit together.
			if err := jb.evolve(tx); err != nil {
				return fmt.Errorf("add columns: %w", err)
			}
		}
		staged, err := tx.StagedTable()
		if err != nil {
			return err
		}
		var rec arrow.RecordBatch
		if jb != nil {
			if rec, err = jb.take(staged.Schema()); err != nil {
				return err
			}
		} else {
			rec = rb.take()
		}
		defer rec.Release()
		if rows == 0 {
			return tx.AddFiles(ctx, nil, props, false)
		}
		paths, err := h.writeBatch(ctx, staged.Schema(), rec)
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		dfs, err := h.dataFiles(ctx, staged.Schema(), staged.Spec(), staged.Properties(), paths)
		if err != nil {
			return err
		}
		return tx.AddDataFiles(ctx, dfs, props, table.WithoutAutoNameMapping(), table.WithoutDuplicateCheck())
	})
	if err != nil {
		return 0, 0, err
	}
	return rows, files, nil
}

// commit commits one snapshot: in one transaction, the topic's
// partitioning, the expiry of old snapshots, and what add stages (the
// snapshot, whose summary has props). It returns the data files added.
func (h *handle) commit(ctx context.Context, props iceberg.Properties, add func(*table.Transaction) error) (int, error) {
	tx := h.tbl.NewTransaction()
	if err := h.repartition(tx); err != nil {
		return 0, fmt.Errorf("table %s: %w", h.topic.Name, err)
	}
	if h.expireAfter > 0 {
		// Manifest lists of expired snapshots are deleted below, after the
		// commit: iceberg-go's own clean-up reads every kept snapshot's
		// manifest list, each commit.
		if err := tx.ExpireSnapshots(table.WithOlderThan(h.expireAfter), table.WithPostCommit(false)); err != nil {
			return 0, fmt.Errorf("table %s: expire snapshots: %w", h.topic.Name, err)
		}
	}
	pre, preSnap := h.tbl.Metadata(), h.tbl.CurrentSnapshot()
	if err := add(tx); err != nil {
		return 0, fmt.Errorf("table %s: %w", h.topic.Name, err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("table %s: %w", h.topic.Name, err)
	}
	if cur := h.tbl.CurrentSnapshot(); cur == nil || preSnap != nil && cur.SnapshotID == preSnap.SnapshotID {
		return 0, fmt.Errorf("table %s: commit added no snapshot", h.topic.Name)
	}
	h.deleteExpired(pre)
	files := 0
	if snap := h.tbl.CurrentSnapshot(); snap != nil && snap.Summary != nil {
		files, _ = strconv.Atoi(snap.Summary.Properties["added-data-files"])
	}
	return files, nil
}

// repartition makes tx's partition spec the topic's
// shale.iceberg.partition granularity when the table's is the other one
// (Iceberg partition evolution: files already written keep theirs).
func (h *handle) repartition(tx *table.Transaction) error {
	spec := h.tbl.Spec()
	var fields []iceberg.PartitionField
	for _, f := range spec.Fields() {
		fields = append(fields, f)
	}
	if len(fields) != 1 {
		return fmt.Errorf("partition spec %v: want one timestamp field", spec)
	}
	ts := h.tbl.Schema().Fields()[2].Name
	tr, name := partitionField(ts, PartitionOf(h.topic.Configs))
	if fields[0].Name == name {
		return nil
	}
	if err := tx.UpdateSpec(true).RemoveField(fields[0].Name).AddField(ts, tr, name).Commit(); err != nil {
		return fmt.Errorf("partition by %s: %w", name, err)
	}
	return nil
}

// deleteExpired deletes the manifest lists of the snapshots pre had and
// the table's metadata now has not (expired by the commit that just
// moved the pointer). Only they: manifests and data files of an
// append-only table stay referenced by the snapshots that followed.
// Best effort: a list not deleted is an orphan (doc.go, Retention).
func (h *handle) deleteExpired(pre table.Metadata) {
	kept := map[int64]bool{}
	for _, s := range h.tbl.Metadata().Snapshots() {
		kept[s.SnapshotID] = true
	}
	expired := map[int64]bool{}
	for _, s := range pre.Snapshots() {
		if !kept[s.SnapshotID] {
			expired[s.SnapshotID] = true
			if s.ManifestList != "" {
				_ = h.fsio.Remove(s.ManifestList)
			}
		}
	}
	if len(expired) > 0 {
		h.deleteReplaced(pre, expired)
	}
}

// cut returns where a commit reading partition p from start should stop,
// at most at end, so that it reads about budget stored bytes (at least one
// index entry), and the bytes it will read.
func (h *handle) cut(ctx context.Context, p int32, start, end, budget int64) (int64, int64, error) {
	var used int64
	stop := end
	err := h.meta.ScanEntries(ctx, h.topic.ID, p, start, func(e metastore.IndexEntry) bool {
		if e.BaseOffset >= end {
			return false
		}
		if used > 0 && used+e.Bytes() > budget {
			stop = max(e.BaseOffset, start+1)
			return false
		}
		used += e.Bytes()
		return true
	})
	if err != nil {
		return 0, 0, fmt.Errorf("table %s/%d: read index: %w", h.topic.Name, p, err)
	}
	return min(stop, end), used, nil
}

// read passes the committed records of sp to add, in offset order:
// replay's reader (every byte checked), minus the records of aborted
// transactions; control records are never rows.
func (h *handle) read(ctx context.Context, sp span, mu *sync.Mutex, add func(replay.Record), flush func() error) error {
	aborted, err := h.meta.AbortedTxns(ctx, h.topic.ID, sp.p, sp.start, sp.end, 1<<20)
	if err != nil {
		return err
	}
	pl, err := replay.NewPlan(ctx, h.meta, replay.Options{Topic: h.topic.Name, Partitions: []int32{sp.p},
		From: replay.AtOffset(sp.start), To: replay.AtOffset(sp.end), Parallel: 4, ReadAhead: spanReadAhead})
	if err != nil {
		return err
	}
	if pl.Topic.ID != h.topic.ID {
		return fmt.Errorf("table %s: topic was re-created (id %s, table of %s): %w", h.topic.Name, pl.Topic.ID, h.topic.ID, metastore.ErrTopicNotFound)
	}
	return pl.Run(ctx, h.meta, h.store, &rowSink{mu: mu, add: add, flush: flush, aborted: aborted}, nil)
}

// spanReadAhead bounds a span's fetched bytes waiting to be decoded: a
// key_value commit reads up to 4 spans at once, as much as one `shale
// replay` of 4 partitions (replay.DefaultReadAhead) in all.
const spanReadAhead = replay.DefaultReadAhead / 4

// rowSink is a replay sink passing records to add (one partition at a
// time, in offset order), then calling flush (if set) after each batch
// of them.
type rowSink struct {
	mu      *sync.Mutex // shared by the sinks of one commit
	add     func(replay.Record)
	flush   func() error
	aborted []metastore.AbortedTxn
}

func (s *rowSink) Raw() bool                         { return false }
func (s *rowSink) Close() error                      { return nil }
func (s *rowSink) Open(int32) (replay.Writer, error) { return s, nil }
func (s *rowSink) WriteBatch(int32, int64, []byte) error {
	return fmt.Errorf("icetable: records only")
}

func (s *rowSink) WriteRecords(recs []replay.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		if r.Transactional && s.isAborted(r) {
			continue
		}
		s.add(r)
	}
	if s.flush != nil {
		return s.flush()
	}
	return nil
}

func (s *rowSink) isAborted(r replay.Record) bool {
	return slices.ContainsFunc(s.aborted, func(a metastore.AbortedTxn) bool {
		return a.ProducerID == r.ProducerID && a.FirstOffset <= r.Offset && r.Offset < a.LastOffset
	})
}
