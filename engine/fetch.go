package engine

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
)

// FetchResult is what one partition's fetch returns.
type FetchResult struct {
	// Records holds whole v2 record batches with absolute base offsets. The
	// first batch may start before the requested offset (Kafka semantics:
	// clients skip the records below it).
	Records        []byte
	HighWatermark  int64
	LogStartOffset int64
}

// maxEntrySize refuses to download index entries claiming absurd sizes
// (a corrupt index must not make an agent allocate without bound).
const maxEntrySize = 1 << 30

// Offsets returns a partition's log start offset and next offset (the high
// watermark), read from etcd.
func (e *Engine) Offsets(ctx context.Context, topic metastore.TopicID, partition int32) (start, next int64, err error) {
	next, start, err = e.states.refresh(ctx, partKey{topic, partition})
	return start, next, err
}

// CachedOffsets is Offsets from this agent's watch-fed view: no etcd read
// when the partition is known, possibly a few milliseconds behind another
// agent's commit.
func (e *Engine) CachedOffsets(ctx context.Context, topic metastore.TopicID, partition int32) (start, next int64, err error) {
	next, start, err = e.states.get(ctx, partKey{topic, partition})
	return start, next, err
}

// Fetch reads batches of one partition starting at offset, up to about
// maxBytes (at least one batch when any is available). An offset equal to
// the high watermark returns no records; outside [log start, high
// watermark] it returns kerr.OffsetOutOfRange.
func (e *Engine) Fetch(ctx context.Context, topic metastore.TopicID, partition int32, offset int64, maxBytes int) (FetchResult, error) {
	k := partKey{topic, partition}
	next, start, err := e.states.get(ctx, k)
	if err != nil {
		return FetchResult{}, err
	}
	if offset > next || offset < start {
		// The cache may lag another agent's commit or retention: confirm.
		if next, start, err = e.states.refresh(ctx, k); err != nil {
			return FetchResult{}, err
		}
	}
	res := FetchResult{HighWatermark: next, LogStartOffset: start}
	if offset < start || offset > next {
		return res, kerr.OffsetOutOfRange
	}
	if offset == next {
		return res, nil
	}
	entries := e.index.lookup(k, offset)
	if entries == nil {
		if entries, err = e.meta.FindEntries(ctx, topic, partition, offset, 16); err != nil {
			return res, fmt.Errorf("read index: %w", err)
		}
		e.index.add(k, entries)
	}
	if len(entries) == 0 || entries[0].BaseOffset > offset {
		// Retention removed it after we read the state.
		return res, kerr.OffsetOutOfRange
	}
	for i, en := range entries {
		if en.BaseOffset >= next || (len(res.Records) > 0 && len(res.Records) >= maxBytes) {
			break
		}
		chunk, err := e.readEntry(ctx, en)
		if err != nil {
			return res, err
		}
		from := 0
		if i == 0 {
			if j, ok := chunk.FindOffset(en.StoredBase + (offset - en.BaseOffset)); ok {
				from = j
			}
		}
		bs := chunk.Batches()
		if len(res.Records) > 0 && from < len(bs) && len(res.Records)+len(bs[from].Raw) > maxBytes {
			break
		}
		res.Records, _ = chunk.AppendPatched(res.Records, from, en.BaseOffset, en.StoredBase, maxBytes-len(res.Records))
	}
	return res, nil
}

// WaitForData returns a channel closed when the partition's offsets change
// (new data, retention), for long polls.
func (e *Engine) WaitForData(topic metastore.TopicID, partition int32) <-chan struct{} {
	return e.states.wakeChan(partKey{topic, partition})
}

// readEntry returns the verified chunk bytes of an index entry, from the
// local cache or a ranged GET.
func (e *Engine) readEntry(ctx context.Context, en metastore.IndexEntry) (segment.Chunk, error) {
	if en.Size <= 0 || en.Size > maxEntrySize {
		return segment.Chunk{}, fmt.Errorf("index entry for %s claims %d bytes: %w", en.ObjectKey, en.Size, segment.ErrCorrupt)
	}
	data, ok := e.cache.read(en.ObjectKey, en.Pos, en.Size)
	if ok {
		e.count(func(s *Stats) { s.CacheHits++ })
	} else {
		e.count(func(s *Stats) { s.CacheMisses++ })
		var err error
		if data, err = e.getRange(ctx, en.ObjectKey, en.Pos, en.Size); err != nil {
			return segment.Chunk{}, err
		}
	}
	chunk, err := segment.ParseChunk(data, en.ObjectKey, en.Pos, en.CRC)
	if err != nil {
		return segment.Chunk{}, err
	}
	if !ok {
		e.cache.putRange(en.ObjectKey, en.Pos, en.Size, data)
	}
	return chunk, nil
}

func (e *Engine) getRange(ctx context.Context, key string, pos, size int64) ([]byte, error) {
	rc, err := e.store.GetRange(ctx, key, pos, size)
	if err != nil {
		return nil, fmt.Errorf("read %s [%d, %d): %w", key, pos, pos+size, err)
	}
	defer rc.Close()
	buf := make([]byte, size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read %s [%d, %d): object shorter than indexed: %w", key, pos, pos+size, segment.ErrTruncated)
		}
		return nil, fmt.Errorf("read %s [%d, %d): %w", key, pos, pos+size, err)
	}
	return buf, nil
}
