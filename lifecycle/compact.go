package lifecycle

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/span"
)

// CompactConfig tunes compaction. Zero fields take the defaults below.
type CompactConfig struct {
	// TargetBytes is the size compacted segments grow to (whole index
	// entries; a segment ends at the entry that reaches it).
	TargetBytes int64
	// ChunkBytes is the size segments are cut into: a fetch reads one chunk
	// per ranged GET.
	ChunkBytes int64
	// Settle: only entries committed at least this long ago are compacted,
	// so the tail being written is left alone.
	Settle time.Duration
	// MinEntries is how many small (chunk) entries a run of entries must
	// hold before it is compacted, unless it fills a whole segment. It keeps
	// a slow partition from rewriting its last small segment on every pass.
	MinEntries int
	// CommitDeadline bounds the time from the start of a segment's upload
	// to its index swap; a slower swap is abandoned (the object is then
	// garbage). Garbage collection's grace period must exceed it, so GC
	// never deletes a segment that is still going to be committed.
	CommitDeadline time.Duration
	// Prefix starts the keys of compacted segments.
	Prefix string
	// TempDir holds segments while they are built (default os.TempDir()).
	TempDir string
	// Now returns wall-clock time (tests may override).
	Now func() time.Time
}

// Compaction defaults.
const (
	DefaultCompactTargetBytes = 128 << 20
	DefaultCompactChunkBytes  = 1 << 20
	DefaultCompactSettle      = time.Minute
	DefaultCompactMinEntries  = 64
	DefaultCommitDeadline     = 2 * time.Minute
	DefaultSegmentPrefix      = "seg/"
)

func (c *CompactConfig) setDefaults() {
	if c.TargetBytes <= 0 {
		c.TargetBytes = DefaultCompactTargetBytes
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = DefaultCompactChunkBytes
	}
	if c.Settle <= 0 {
		c.Settle = DefaultCompactSettle
	}
	if c.MinEntries <= 0 {
		c.MinEntries = DefaultCompactMinEntries
	}
	if c.CommitDeadline <= 0 {
		c.CommitDeadline = DefaultCommitDeadline
	}
	if c.Prefix == "" {
		c.Prefix = DefaultSegmentPrefix
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// CompactStats counts what a compaction pass did.
type CompactStats struct {
	Segments        int   // segments written and swapped in
	EntriesReplaced int   // index entries they replaced
	BytesWritten    int64 // object bytes uploaded
	Conflicts       int   // swaps refused because the index changed
}

func (s *CompactStats) add(o CompactStats) {
	s.Segments += o.Segments
	s.EntriesReplaced += o.EntriesReplaced
	s.BytesWritten += o.BytesWritten
	s.Conflicts += o.Conflicts
}

// SegmentKey is the object key of a compacted segment starting at base:
// <prefix><topic id>/<partition>/<base, 20 digits>-<random>.seg. The topic
// ID (not the name) keeps a re-created topic apart; the random part keeps
// two attempts at the same range apart.
func SegmentKey(prefix string, id metastore.TopicID, partition int32, base int64) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s%s/%d/%020d-%s.seg", prefix, id, partition, base, hex.EncodeToString(r[:]))
}

// Compact runs one compaction pass over every partition of every topic.
// See CompactPartition. It stops at the first error other than a conflict.
func Compact(ctx context.Context, store s3tier.Store, meta *metastore.Store, cfg CompactConfig, log *slog.Logger) (CompactStats, error) {
	var total CompactStats
	topics, err := meta.ListTopics(ctx)
	if err != nil {
		return total, fmt.Errorf("compact: %w", err)
	}
	for _, t := range topics {
		for p := int32(0); p < t.Partitions; p++ {
			st, err := CompactPartition(ctx, store, meta, cfg, t.ID, p, log)
			total.add(st)
			if errors.Is(err, metastore.ErrTopicNotFound) {
				break
			}
			if err != nil {
				return total, fmt.Errorf("compact %s/%d: %w", t.Name, p, err)
			}
		}
	}
	return total, nil
}

// CompactPartition rewrites runs of small index entries of one partition
// into segment objects and swaps each run for one segment entry
// (metastore.ReplaceEntries). Only entries committed before now-Settle are
// considered, stopping at the first younger one. A run is the longest
// sequence of consecutive entries that are chunk entries or segments
// smaller than TargetBytes/2, cut at TargetBytes; it is compacted when it
// fills a segment or holds MinEntries chunk entries.
//
// Crash safety: the segment is uploaded before the swap, and the replaced
// objects are left to garbage collection. A crash before the swap leaves an
// unreferenced segment (garbage); a refused swap deletes its segment.
func CompactPartition(ctx context.Context, store s3tier.Store, meta *metastore.Store, cfg CompactConfig, id metastore.TopicID, partition int32, log *slog.Logger) (CompactStats, error) {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var stats CompactStats
	cutoff := cfg.Now().Add(-cfg.Settle).UnixMilli()
	var runs [][]metastore.IndexEntry
	var cur []metastore.IndexEntry
	var curBytes int64
	chunkEntries := func() int {
		n := 0
		for _, e := range cur {
			if e.Kind == metastore.EntryChunk {
				n++
			}
		}
		return n
	}
	flush := func(full bool) {
		if len(cur) >= 2 && (full || chunkEntries() >= cfg.MinEntries) {
			runs = append(runs, cur)
		}
		cur, curBytes = nil, 0
	}
	_, rev, err := meta.ScanIndex(ctx, id, partition, func(e metastore.IndexEntry) bool {
		if e.CommittedMs > cutoff {
			return false
		}
		if e.Kind != metastore.EntryChunk && e.Bytes() >= cfg.TargetBytes/2 {
			flush(false)
			return true
		}
		if len(cur) > 0 && curBytes+e.Bytes() > cfg.TargetBytes {
			flush(true)
		}
		cur = append(cur, e)
		curBytes += e.Bytes()
		return true
	})
	if err != nil {
		return stats, err
	}
	flush(false)
	fc := span.NewFooterCache(16)
	for _, run := range runs {
		st, err := compactRun(ctx, store, meta, cfg, fc, id, partition, rev, run, nil, log)
		stats.add(st)
		if err != nil {
			return stats, err
		}
	}
	return stats, nil
}

// rewriter is key compaction's change to compactRun: each batch goes
// through fn, and a run none of whose batches fn changed is not rewritten.
type rewriter struct {
	fn      func(abs int64, raw []byte) ([]byte, error)
	changed bool // set by fn
}

// compactRun builds, uploads and swaps in the segment for one run (through
// rw when not nil).
func compactRun(ctx context.Context, store s3tier.Store, meta *metastore.Store, cfg CompactConfig, fc *span.FooterCache,
	id metastore.TopicID, partition int32, rev int64, run []metastore.IndexEntry, rw *rewriter, log *slog.Logger) (CompactStats, error) {
	var stats CompactStats
	first, last := run[0], run[len(run)-1]
	f, err := os.CreateTemp(cfg.TempDir, "shale-compact-*.seg")
	if err != nil {
		return stats, fmt.Errorf("compact: temp file: %w", err)
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	var rewrite func(int64, []byte) ([]byte, error)
	if rw != nil {
		rewrite = rw.fn
	}
	repl, err := buildSegment(ctx, store, fc, cfg, f, id, partition, run, rewrite)
	if err != nil {
		return stats, err
	}
	if rw != nil && !rw.changed {
		return stats, nil // nothing removed: the run stays as it is
	}
	key := SegmentKey(cfg.Prefix, id, partition, first.BaseOffset)
	repl.ObjectKey = key
	size := repl.Pos + repl.Size
	started := time.Now()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return stats, fmt.Errorf("compact: rewind %s: %w", f.Name(), err)
	}
	if err := store.Put(ctx, key, f, size); err != nil {
		return stats, fmt.Errorf("compact: upload %s: %w", key, err)
	}
	if time.Since(started) > cfg.CommitDeadline {
		// GC may already consider it garbage: never reference it.
		_ = store.Delete(ctx, key)
		return stats, fmt.Errorf("compact: upload of %s took %v, over the commit deadline %v", key, time.Since(started), cfg.CommitDeadline)
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.CommitDeadline-time.Since(started))
	defer cancel()
	repl.CommittedMs = cfg.Now().UnixMilli()
	err = meta.ReplaceEntries(sctx, id, partition, rev, first, last, repl)
	if errors.Is(err, metastore.ErrConflict) {
		stats.Conflicts++
		log.Info("compaction swap refused: index changed", "object", key, "from", first.BaseOffset, "to", last.LastOffset)
		_ = store.Delete(ctx, key) // certainly unreferenced
		return stats, nil
	}
	if err != nil {
		// Outcome unknown: leave the object; GC removes it if unreferenced.
		return stats, err
	}
	stats.Segments++
	stats.EntriesReplaced += len(run)
	stats.BytesWritten += size
	log.Info("compacted", "topic_id", id.String(), "partition", partition, "from", first.BaseOffset, "to", last.LastOffset,
		"entries", len(run), "object", key, "bytes", size)
	return stats, nil
}

// buildSegment writes the run's batches, at their absolute offsets and cut
// into chunks of about cfg.ChunkBytes, as one segment object to w, and
// returns its index entry (without ObjectKey and CommittedMs). Every span
// read is checked (CRC, offsets); the offsets must be dense from the first
// entry's base to the last entry's last offset. A non-nil rewrite replaces
// each batch (given its absolute base offset) by what it returns, which
// must span the same offsets (key compaction's segment.FilterRecords).
func buildSegment(ctx context.Context, store s3tier.Store, fc *span.FooterCache, cfg CompactConfig, f *os.File,
	id metastore.TopicID, partition int32, run []metastore.IndexEntry, rewrite func(abs int64, raw []byte) ([]byte, error)) (metastore.IndexEntry, error) {
	bw := bufio.NewWriterSize(f, 1<<20)
	b := segment.NewBuilder(bw)
	next := run[0].BaseOffset
	var pending [][]byte
	var pendingBytes int64
	chunkBase := next
	addChunk := func() error {
		if len(pending) == 0 {
			return nil
		}
		if _, err := b.AddChunk(id, partition, chunkBase, pending); err != nil {
			return fmt.Errorf("compact: %w", err)
		}
		pending, pendingBytes, chunkBase = nil, 0, next
		return nil
	}
	for _, e := range run {
		spans, err := fc.Spans(ctx, store, id, partition, e)
		if err != nil {
			return metastore.IndexEntry{}, err
		}
		for _, sp := range spans {
			ch, err := span.ReadSpan(ctx, store, sp)
			if err != nil {
				return metastore.IndexEntry{}, err
			}
			for _, bt := range ch.Batches() {
				abs := sp.AbsBase + (bt.Header.BaseOffset - sp.StoredBase)
				if abs != next {
					return metastore.IndexEntry{}, fmt.Errorf("compact %s/%d: batch of %s at offset %d, want %d: %w", id, partition, sp.Object, abs, next, segment.ErrCorrupt)
				}
				raw := bt.Raw
				if rewrite != nil {
					if raw, err = rewrite(abs, raw); err != nil {
						return metastore.IndexEntry{}, err
					}
					// Key compaction: a run of emptied batches keeps one
					// header (segment.CoalesceEmpty).
					if n := len(pending); n > 0 {
						if m, ok := segment.CoalesceEmpty(pending[n-1], raw); ok {
							pending[n-1] = m
							next += bt.Header.OffsetSpan()
							continue
						}
					}
				}
				pending = append(pending, raw)
				pendingBytes += int64(len(raw))
				next += bt.Header.OffsetSpan()
				if pendingBytes >= cfg.ChunkBytes {
					if err := addChunk(); err != nil {
						return metastore.IndexEntry{}, err
					}
				}
			}
		}
	}
	if last := run[len(run)-1].LastOffset; next != last+1 {
		return metastore.IndexEntry{}, fmt.Errorf("compact %s/%d: batches end at %d, entries at %d: %w", id, partition, next-1, last, segment.ErrCorrupt)
	}
	if err := addChunk(); err != nil {
		return metastore.IndexEntry{}, err
	}
	chunks, err := b.Finish()
	if err != nil {
		return metastore.IndexEntry{}, fmt.Errorf("compact: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return metastore.IndexEntry{}, fmt.Errorf("compact: write %s: %w", f.Name(), err)
	}
	size := b.Size()
	footerStart := size - segment.TrailerSize - int64(len(chunks))*segment.FooterEntrySize
	tail := make([]byte, size-footerStart)
	if _, err := f.ReadAt(tail, footerStart); err != nil {
		return metastore.IndexEntry{}, fmt.Errorf("compact: read back %s: %w", f.Name(), err)
	}
	e := metastore.IndexEntry{
		Kind:           metastore.EntrySegment,
		BaseOffset:     run[0].BaseOffset,
		LastOffset:     run[len(run)-1].LastOffset,
		Pos:            footerStart,
		Size:           size - footerStart,
		StoredBase:     run[0].BaseOffset,
		FirstTimestamp: chunks[0].FirstTimestamp,
		MaxTimestamp:   chunks[0].MaxTimestamp,
		CRC:            segment.Checksum(tail),
		DataBytes:      footerStart - segment.HeaderSize,
	}
	for _, c := range chunks {
		e.Batches += c.Batches
		e.MaxTimestamp = max(e.MaxTimestamp, c.MaxTimestamp)
	}
	return e, nil
}
