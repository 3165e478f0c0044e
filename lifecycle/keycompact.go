package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/span"
)

// KeyCompactConfig tunes key compaction (CompactKeysPartition). Zero
// fields take the defaults.
type KeyCompactConfig struct {
	// CompactConfig gives the segment sizes, settle time, commit deadline,
	// key prefix, temporary directory and clock, as for merge compaction.
	CompactConfig
	// MapBytes bounds the key → offset map of one pass: each distinct key
	// counts len(key) + KeyMapOverhead bytes. A pass maps whole index
	// entries from the start of the cleanable range until the next would
	// exceed it, and rewrites only those.
	MapBytes int64
}

// Key compaction defaults.
const (
	DefaultKeyMapBytes = 64 << 20
	// KeyMapOverhead is what a map entry costs beyond its key's bytes
	// (Go map slot, string header, int64 offset), counted against MapBytes.
	KeyMapOverhead = 64
)

// KeyCompactStats counts what a key-compaction pass did.
type KeyCompactStats struct {
	CompactStats
	Keys              int           // distinct keys mapped
	BytesRead         int64         // bytes of the index entries read (mapped, then filtered)
	BytesBefore       int64         // bytes of the entries replaced by rewritten segments (their size, CompactStats.BytesWritten, is after)
	RecordsRemoved    int64         // records dropped from rewritten segments (tombstones included)
	TombstonesRemoved int64         // tombstones dropped past delete.retention.ms
	MarkersRemoved    int64         // commit markers dropped past delete.retention.ms
	MappedTo          int64         // end (exclusive) of the range mapped and cleaned; -1: none
	Forced            bool          // run because a dirty record was older than max.compaction.lag.ms
	Tail              bool          // run below min.cleanable.dirty.ratio to compact the tail a cut pass left
	Cut               bool          // records followed MappedTo (metastore.CleanerPass.Cut)
	Passes            int           // partitions whose checkpoint advanced (CompactKeys)
	Failed            int           // partitions whose pass failed (CompactKeys)
	Duration          time.Duration // time the job's run took (CompactKeys)
}

// addPartition adds one partition's pass to a job's totals.
func (s *KeyCompactStats) addPartition(o KeyCompactStats) {
	s.add(o.CompactStats)
	s.Keys += o.Keys
	s.BytesRead += o.BytesRead
	s.BytesBefore += o.BytesBefore
	s.RecordsRemoved += o.RecordsRemoved
	s.TombstonesRemoved += o.TombstonesRemoved
	s.MarkersRemoved += o.MarkersRemoved
}

// CompactKeysPartition runs one key-compaction pass over a partition of t
// (see lifecycle/doc.go, "Key compaction"): it keeps, in the cleanable
// range, only the latest record of each key, and swaps the rewritten runs
// of entries in as segments, guarded by the index revision it read.
// CompactKeys runs it for every compacted partition.
//
// st.Checkpoint is the cleaner checkpoint, as in Kafka: the first offset not yet
// mapped by an earlier pass (0 at first). The pass maps the keys of the
// cleanable records from it onwards (the dirty section), within MapBytes,
// and rewrites the cleanable entries from the start of the log to the entry
// holding the first record it did not map (the clean section is filtered
// by the same map). It returns that record's offset as MappedTo: the next
// pass's checkpoint. A
// larger partition thus takes several passes, each bounded by MapBytes.
//
// The cleanable range is the longest prefix of the partition's entries
// each committed at least Settle ago and past the active head: committed
// at least min(segment.ms, max.compaction.lag.ms) ago, or followed by at
// least segment.bytes of record bytes (as Kafka's active segment rolls on
// either; segment entries, already rewritten from such entries, count as
// past it), whose records are all at
// least min.compaction.lag.ms old (by MaxTimestamp), ending below the last
// stable offset, cut where the key map would outgrow MapBytes. Records of
// the range superseded by a later record of the same key in the range are
// removed, and so are the records of aborted transactions (never mapped;
// transaction markers are kept) and tombstones (null values) that st says a pass reached at least
// delete.retention.ms ago (CleanerState.ReachedMs). The pass runs only when
// the dirty section (from the checkpoint) holds at least
// min.cleanable.dirty.ratio of the cleanable bytes, or its first entry's
// first record is max.compaction.lag.ms old (Forced), or it is the tail a
// cut pass left (Tail): the latest pass st records was Cut, not itself a
// Tail pass, and the partition is quiet (every entry committed at least
// Settle ago, none too young for min.compaction.lag.ms). A batch that
// cannot be read stops the pass with an error wrapping segment.ErrCorrupt
// before anything is written.
func CompactKeysPartition(ctx context.Context, store s3tier.Store, meta *metastore.Store, cfg KeyCompactConfig, t metastore.Topic, partition int32, st metastore.CleanerState, log *slog.Logger) (KeyCompactStats, error) {
	from := st.Checkpoint
	cfg.setDefaults()
	if cfg.MapBytes <= 0 {
		cfg.MapBytes = DefaultKeyMapBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stats := KeyCompactStats{MappedTo: -1}
	c := metastore.CompactionOf(t.Configs)
	now := cfg.Now().UnixMilli()
	settledBy, headBy := now-cfg.Settle.Milliseconds(), now-min(c.SegmentMs, c.MaxLagMs)
	var all []metastore.IndexEntry
	quiet := true // every entry settled and old enough for min.compaction.lag.ms
	ps, rev, err := meta.ScanIndex(ctx, t.ID, partition, func(e metastore.IndexEntry) bool {
		if e.MaxTimestamp > now-c.MinLagMs {
			quiet = false
			return false // neither it nor what follows is cleanable
		}
		quiet = quiet && e.CommittedMs <= settledBy
		all = append(all, e)
		return true
	})
	if err != nil {
		return stats, err
	}
	// Record bytes after each entry: an entry with segment.bytes after it
	// is past the head however young.
	after := make([]int64, len(all))
	for i := len(all) - 2; i >= 0; i-- {
		after[i] = after[i+1] + all[i+1].Bytes()
	}
	var cleanable []metastore.IndexEntry
	for i, e := range all {
		// A segment entry's CommittedMs is its rewrite: its records were
		// settled and past the head when first compacted.
		if e.Kind == metastore.EntryChunk && (e.CommittedMs > settledBy || e.CommittedMs > headBy && after[i] < c.SegmentBytes) {
			break
		}
		cleanable = append(cleanable, e)
	}
	// Records of open transactions stay dirty: the range ends before the
	// last stable offset.
	lso := ps.LastStableOffset()
	for len(cleanable) > 0 && cleanable[len(cleanable)-1].LastOffset >= lso {
		cleanable = cleanable[:len(cleanable)-1]
	}
	if len(cleanable) == 0 {
		return stats, nil
	}
	aborted, err := loadAborted(ctx, meta, t.ID, partition, cleanable[len(cleanable)-1].LastOffset)
	if err != nil {
		return stats, fmt.Errorf("key compaction of %s/%d: %w", t.Name, partition, err)
	}
	fc := span.NewFooterCache(16)
	dirty := 0
	var cleanBytes, dirtyBytes int64
	for _, e := range cleanable {
		if e.LastOffset < from {
			dirty++
			cleanBytes += e.Bytes()
		} else {
			dirtyBytes += e.Bytes()
		}
	}
	forced := dirty < len(cleanable) && now-cleanable[dirty].FirstTimestamp >= c.MaxLagMs
	below := !forced && float64(dirtyBytes) < c.MinCleanableDirtyRatio*float64(cleanBytes+dirtyBytes)
	// A pass that ran while records followed its end (Cut: a burst of
	// writes still going on, say) leaves a tail that may stay below the
	// ratio for good once the writes stop, as on Kafka; one pass finishes
	// it when the partition is quiet, at most one per pass the ratio or
	// max.compaction.lag.ms ran.
	tail := below && quiet && len(st.Passes) > 0 && st.Passes[len(st.Passes)-1].Cut && !st.Passes[len(st.Passes)-1].Tail
	if dirtyBytes == 0 || below && !tail {
		return stats, nil // not dirty enough yet
	}
	stats.Forced, stats.Tail = forced, tail
	latest, cut, err := mapKeys(ctx, store, fc, t.ID, partition, cleanable[dirty:], from, cfg.MapBytes, aborted)
	if err != nil {
		return stats, err
	}
	stats.Keys = len(latest)
	if cut <= max(from, cleanable[dirty].BaseOffset) {
		return stats, nil // nothing mapped
	}
	n := dirty
	for n < len(cleanable) && cleanable[n].BaseOffset < cut {
		stats.BytesRead += cleanable[n].Bytes() // mapped
		n++
	}
	cleanable = cleanable[:n]
	stats.MappedTo, stats.Cut = cut, cut < ps.NextOffset
	// Runs of whole entries up to TargetBytes, each rewritten only when it
	// loses a record.
	var run []metastore.IndexEntry
	var runBytes int64
	do := func() error {
		if len(run) == 0 {
			return nil
		}
		// Abort markers of the run a pass reached delete.retention.ms ago:
		// that pass removed their transactions' records, so their index
		// entries go first (a marker without its entry is ignored by
		// read_committed clients; an entry without its marker is not),
		// then the markers with the rewrite.
		var fold []int64
		for _, txns := range aborted {
			for _, a := range txns {
				at, reached := st.ReachedMs(a.LastOffset)
				if reached && now-at >= c.DeleteRetentionMs && a.LastOffset >= run[0].BaseOffset && a.LastOffset <= run[len(run)-1].LastOffset {
					fold = append(fold, a.LastOffset)
				}
			}
		}
		if len(fold) > 0 {
			if err := meta.DeleteAbortedTxns(ctx, t.ID, partition, fold); err != nil {
				return err
			}
		}
		rw := &rewriter{}
		var removed, tombstones, markers int64
		rw.fn = func(abs int64, raw []byte) ([]byte, error) {
			h, _ := segment.ParseBatchHeader(raw)
			if h.IsControl() {
				// A commit marker goes delete.retention.ms after a pass
				// reached it (consumers need no commit marker), an abort
				// marker once its index entry is gone (fold).
				typ, ok := segment.ControlType(raw)
				at, reached := st.ReachedMs(abs)
				switch {
				case !ok || !reached || now-at < c.DeleteRetentionMs:
					return raw, nil
				case typ == kmsg.ControlRecordKeyTypeCommit:
				case typ == kmsg.ControlRecordKeyTypeAbort && slices.Contains(fold, abs):
				default:
					return raw, nil
				}
				rw.changed = true
				markers++
				return segment.EmptyBatch(raw)
			}
			abortedBatch := h.IsTransactional() && aborted.has(h.ProducerID, abs)
			out, kept, err := segment.FilterRecords(raw, func(r segment.Record) bool {
				if abortedBatch {
					return false // never visible to read_committed consumers
				}
				off := abs + int64(r.OffsetDelta)
				if r.KeyNull {
					// As Kafka's cleaner: a record without a key (written
					// before the topic became compacted) goes, unless it
					// lies past what the pass mapped.
					return off >= cut
				}
				if l, mapped := latest[string(r.Key)]; mapped && off < l {
					return false
				}
				if at, reached := st.ReachedMs(off); r.ValueNull && reached && now-at >= c.DeleteRetentionMs {
					tombstones++
					return false // a tombstone past delete.retention.ms
				}
				return true
			})
			if err != nil {
				return nil, fmt.Errorf("key compaction of %s/%d at offset %d: %w", t.Name, partition, abs, err)
			}
			if int(h.RecordCount) != kept {
				rw.changed = true
				removed += int64(h.RecordCount) - int64(kept)
			}
			return out, nil
		}
		cs, err := compactRun(ctx, store, meta, cfg.CompactConfig, fc, t.ID, partition, rev, run, rw, log)
		stats.add(cs)
		stats.BytesRead += runBytes
		if cs.Segments > 0 {
			stats.BytesBefore += runBytes
			stats.RecordsRemoved += removed
			stats.TombstonesRemoved += tombstones
			stats.MarkersRemoved += markers
		}
		run, runBytes = nil, 0
		return err
	}
	for _, e := range cleanable {
		if len(run) > 0 && runBytes+e.Bytes() > cfg.TargetBytes {
			if err := do(); err != nil {
				return stats, err
			}
		}
		run = append(run, e)
		runBytes += e.Bytes()
	}
	return stats, do()
}

// mapKeys reads entries in order from offset from and maps each key to
// the offset of its latest record, until the map would outgrow budget
// bytes. Control batches (transaction markers) and the batches of aborted
// transactions hold no key to map. It returns the map and the first
// offset it did not map (the cut): every record below it and at or above
// from is in the map.
func mapKeys(ctx context.Context, store s3tier.Store, fc *span.FooterCache, id metastore.TopicID, partition int32,
	entries []metastore.IndexEntry, from, budget int64, aborted abortedTxns) (map[string]int64, int64, error) {
	latest := make(map[string]int64)
	var used int64
	var d segment.Decoder
	for _, e := range entries {
		spans, err := fc.Spans(ctx, store, id, partition, e)
		if err != nil {
			return nil, 0, err
		}
		for _, sp := range spans {
			ch, err := span.ReadSpan(ctx, store, sp)
			if err != nil {
				return nil, 0, err
			}
			for _, bt := range ch.Batches() {
				abs := sp.AbsBase + (bt.Header.BaseOffset - sp.StoredBase)
				if abs+bt.Header.OffsetSpan() <= from {
					continue
				}
				if bt.Header.IsControl() || bt.Header.IsTransactional() && aborted.has(bt.Header.ProducerID, abs) {
					continue
				}
				recs, err := d.Decode(bt.Raw)
				if err != nil {
					return nil, 0, fmt.Errorf("key map of %s/%d at offset %d: %w", id, partition, abs, err)
				}
				for _, r := range recs {
					off := abs + int64(r.OffsetDelta)
					if r.KeyNull || off < from {
						continue
					}
					k := string(r.Key)
					if _, ok := latest[k]; !ok {
						if cost := int64(len(k)) + KeyMapOverhead; used+cost <= budget {
							used += cost
						} else {
							return latest, off, nil
						}
					}
					latest[k] = off
				}
			}
		}
	}
	return latest, entries[len(entries)-1].LastOffset + 1, nil
}

// MaxAbortedTxns bounds the aborted transactions a pass loads for one
// partition (about 24 bytes each); a partition with more is not compacted
// (its pass fails, logged and counted) rather than compacted wrongly.
const MaxAbortedTxns = 1 << 20

// abortedTxns are a partition's aborted transactions by producer ID.
type abortedTxns map[int64][]metastore.AbortedTxn

// has reports whether producer pid's transactional batch at offset abs
// belongs to an aborted transaction.
func (a abortedTxns) has(pid, abs int64) bool {
	for _, t := range a[pid] {
		if t.FirstOffset <= abs && abs <= t.LastOffset {
			return true
		}
	}
	return false
}

// loadAborted reads the partition's aborted transactions that begin at or
// below to, in pages (ordered by their last offset, so a transaction that
// begins below to and ends far above it is found too).
func loadAborted(ctx context.Context, meta *metastore.Store, id metastore.TopicID, partition int32, to int64) (abortedTxns, error) {
	const page = 1000
	out := abortedTxns{}
	n := 0
	for from := int64(0); ; {
		ts, err := meta.AbortedTxns(ctx, id, partition, from, math.MaxInt64, page) // by last offset: unfiltered pages
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if t.FirstOffset <= to {
				out[t.ProducerID] = append(out[t.ProducerID], t)
			}
			from = max(from, t.LastOffset+1)
		}
		if n += len(ts); n > MaxAbortedTxns {
			return nil, fmt.Errorf("more than %d aborted transactions below offset %d: not compacted", MaxAbortedTxns, to)
		}
		if len(ts) < page {
			return out, nil
		}
	}
}

// CompactKeys runs one key-compaction pass over every partition of every
// topic whose cleanup.policy includes compact (metastore.CleanupPolicyOf):
// for each, CompactKeysPartition from the partition's stored cleaner state,
// then the state advanced to the end of what the pass mapped, stamped with
// the time the pass finished (metastore.SaveCleanerState, compared against
// the state read), unless one of its swaps conflicted (merge compaction
// rewrote the same entries meanwhile): then the checkpoint stays, so the
// next pass maps those keys again and removes what the refused swap kept. A crash between the index swap and the state's save
// only makes the next pass map the same offsets again, and tombstones look
// reached later, never earlier. A partition whose pass fails (a corrupt
// batch: segment.ErrCorrupt) is logged and counted in Failed, and the job
// goes on with the others; nothing of that partition is rewritten.
func CompactKeys(ctx context.Context, store s3tier.Store, meta *metastore.Store, cfg KeyCompactConfig, log *slog.Logger) (KeyCompactStats, error) {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	total := KeyCompactStats{MappedTo: -1}
	start := time.Now()
	topics, err := meta.ListTopics(ctx)
	if err != nil {
		return total, fmt.Errorf("key compaction: %w", err)
	}
	for _, t := range topics {
		if _, compacts := metastore.CleanupPolicyOf(t.Configs); !compacts {
			continue
		}
		for p := int32(0); p < t.Partitions; p++ {
			st, err := meta.GetCleanerState(ctx, t.ID, p)
			if err != nil {
				return total, fmt.Errorf("key compaction %s/%d: %w", t.Name, p, err)
			}
			ps, err := CompactKeysPartition(ctx, store, meta, cfg, t, p, st, log)
			total.addPartition(ps)
			if err != nil {
				if ctx.Err() != nil {
					return total, ctx.Err()
				}
				total.Failed++
				log.Error("key compaction of a partition failed; its data is left as it is", "topic", t.Name, "partition", p, "err", err)
				continue
			}
			if ps.MappedTo <= st.Checkpoint {
				continue
			}
			if ps.Conflicts > 0 {
				// A run was not swapped (merge compaction rewrote its
				// entries meanwhile): its superseded records are still
				// there, and only a pass mapping the same keys again
				// removes them. The checkpoint stays.
				log.Info("key compaction pass not saved: a swap conflicted; the next pass maps again", "topic", t.Name, "partition", p, "conflicts", ps.Conflicts)
				continue
			}
			total.Passes++
			st.AddPass(ps.MappedTo, cfg.Now().UnixMilli())
			last := &st.Passes[len(st.Passes)-1]
			last.Cut, last.Tail = ps.Cut, ps.Tail
			st.BytesBefore, st.BytesAfter = ps.BytesBefore, ps.BytesWritten
			err = meta.SaveCleanerState(ctx, t.ID, p, st)
			if errors.Is(err, metastore.ErrTopicNotFound) {
				break
			}
			if err != nil {
				log.Warn("key compaction checkpoint not saved; the next pass maps again", "topic", t.Name, "partition", p, "err", err)
			}
			log.Info("key compaction pass", "topic", t.Name, "partition", p, "checkpoint", ps.MappedTo, "keys", ps.Keys,
				"bytes_read", ps.BytesRead, "bytes_before", ps.BytesBefore, "bytes_after", ps.BytesWritten, "removed", ps.RecordsRemoved, "tombstones_removed", ps.TombstonesRemoved, "segments", ps.Segments, "forced", ps.Forced, "tail", ps.Tail)
		}
	}
	total.Duration = time.Since(start)
	return total, nil
}
