package lifecycle

import (
	"context"
	"fmt"
	"log/slog"

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
	Keys           int   // distinct keys mapped
	RecordsRemoved int64 // records dropped from rewritten segments
	MappedTo       int64 // end (exclusive) of the range mapped and cleaned; -1: none
}

// CompactKeysPartition runs one key-compaction pass over a partition of t
// (see lifecycle/doc.go, "Key compaction"): it keeps, in the cleanable
// range, only the latest record of each key, and swaps the rewritten runs
// of entries in as segments, guarded by the index revision it read. It is
// not yet run by Lifecycle: cleanup.policy=compact is refused until it is.
//
// from is the cleaner checkpoint, as in Kafka: the first offset not yet
// mapped by an earlier pass (0 at first). The pass maps the keys of the
// cleanable entries from the one holding from onwards (the dirty section),
// within MapBytes, and rewrites the cleanable entries from the start of the
// log to the end of what it mapped (the clean section is filtered by the
// same map). It returns that end as MappedTo: the next pass's from. A
// larger partition thus takes several passes, each bounded by MapBytes.
//
// The cleanable range is the longest prefix of the partition's entries
// each committed at least Settle ago and at least min(segment.ms,
// max.compaction.lag.ms) ago (the active head; segment entries, already
// rewritten from such entries, count as past it), whose records are all at
// least min.compaction.lag.ms old (by MaxTimestamp), with no transactional
// batch, cut where the key map would outgrow MapBytes. Records of the range
// superseded by a later record of the same key in the range are removed;
// tombstones are kept (their removal after delete.retention.ms is not built
// yet). A batch that cannot be read stops the pass with an error wrapping
// segment.ErrCorrupt before anything is written.
func CompactKeysPartition(ctx context.Context, store s3tier.Store, meta *metastore.Store, cfg KeyCompactConfig, t metastore.Topic, partition int32, from int64, log *slog.Logger) (KeyCompactStats, error) {
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
	committedBy := min(now-cfg.Settle.Milliseconds(), now-min(c.SegmentMs, c.MaxLagMs))
	var cleanable []metastore.IndexEntry
	_, rev, err := meta.ScanIndex(ctx, t.ID, partition, func(e metastore.IndexEntry) bool {
		// A segment entry's CommittedMs is its rewrite: its records were
		// settled and past the head when first compacted.
		if e.Kind == metastore.EntryChunk && e.CommittedMs > committedBy || e.MaxTimestamp > now-c.MinLagMs {
			return false
		}
		cleanable = append(cleanable, e)
		return true
	})
	if err != nil || len(cleanable) == 0 {
		return stats, err
	}
	fc := span.NewFooterCache(16)
	dirty := 0
	for dirty < len(cleanable) && cleanable[dirty].LastOffset < from {
		dirty++
	}
	latest, n, err := mapKeys(ctx, store, fc, t.ID, partition, cleanable[dirty:], cfg.MapBytes)
	if err != nil {
		return stats, err
	}
	stats.Keys = len(latest)
	if n == 0 {
		if dirty < len(cleanable) {
			log.Info("key compaction: nothing mapped (a transactional batch, or an index entry with more keys than the map budget)",
				"topic", t.Name, "partition", partition, "offset", cleanable[dirty].BaseOffset, "map_bytes", cfg.MapBytes)
		}
		return stats, nil
	}
	cleanable = cleanable[:dirty+n]
	stats.MappedTo = cleanable[len(cleanable)-1].LastOffset + 1
	// Runs of whole entries up to TargetBytes, each rewritten only when it
	// loses a record.
	var run []metastore.IndexEntry
	var runBytes int64
	do := func() error {
		if len(run) == 0 {
			return nil
		}
		rw := &rewriter{}
		var removed int64
		rw.fn = func(abs int64, raw []byte) ([]byte, error) {
			out, kept, err := segment.FilterRecords(raw, func(r segment.Record) bool {
				if r.KeyNull {
					return true
				}
				l, mapped := latest[string(r.Key)]
				return !mapped || abs+int64(r.OffsetDelta) >= l
			})
			if err != nil {
				return nil, fmt.Errorf("key compaction of %s/%d at offset %d: %w", t.Name, partition, abs, err)
			}
			if h, _ := segment.ParseBatchHeader(raw); int(h.RecordCount) != kept {
				rw.changed = true
				removed += int64(h.RecordCount) - int64(kept)
			}
			return out, nil
		}
		st, err := compactRun(ctx, store, meta, cfg.CompactConfig, fc, t.ID, partition, rev, run, rw, log)
		stats.add(st)
		if st.Segments > 0 {
			stats.RecordsRemoved += removed
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

// mapKeys reads entries in order and maps each key to the offset of its
// latest record, whole entries at a time, while the map fits in budget
// bytes and no transactional batch is met. It returns the map and how many
// entries it covers.
func mapKeys(ctx context.Context, store s3tier.Store, fc *span.FooterCache, id metastore.TopicID, partition int32,
	entries []metastore.IndexEntry, budget int64) (map[string]int64, int, error) {
	latest := make(map[string]int64)
	var used int64
	var d segment.Decoder
	for i, e := range entries {
		spans, err := fc.Spans(ctx, store, id, partition, e)
		if err != nil {
			return nil, 0, err
		}
		staged := make(map[string]int64)
		var add int64
		for _, sp := range spans {
			ch, err := span.ReadSpan(ctx, store, sp)
			if err != nil {
				return nil, 0, err
			}
			for _, bt := range ch.Batches() {
				if bt.Header.IsTransactional() || bt.Header.IsControl() {
					return latest, i, nil // transactions are not compacted yet
				}
				abs := sp.AbsBase + (bt.Header.BaseOffset - sp.StoredBase)
				recs, err := d.Decode(bt.Raw)
				if err != nil {
					return nil, 0, fmt.Errorf("key map of %s/%d at offset %d: %w", id, partition, abs, err)
				}
				for _, r := range recs {
					if r.KeyNull {
						continue
					}
					k := string(r.Key)
					if _, ok := latest[k]; !ok {
						if _, ok := staged[k]; !ok {
							add += int64(len(k)) + KeyMapOverhead
						}
					}
					staged[k] = abs + int64(r.OffsetDelta)
				}
			}
		}
		if used+add > budget {
			return latest, i, nil
		}
		for k, off := range staged {
			latest[k] = off
		}
		used += add
	}
	return latest, len(entries), nil
}
