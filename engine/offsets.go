package engine

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
)

// Special timestamps of ListOffsets (Kafka's values).
const (
	LatestTimestamp   = -1
	EarliestTimestamp = -2
	MaxTimestamp      = -3
)

// ListOffset answers ListOffsets for one partition: the earliest or latest
// offset, the record with the largest timestamp, or the first record whose
// timestamp is >= ts. When no record qualifies it returns offset -1 and
// timestamp -1, as Kafka does.
func (e *Engine) ListOffset(ctx context.Context, topic metastore.TopicID, partition int32, ts int64) (offset, timestamp int64, err error) {
	start, next, err := e.Offsets(ctx, topic, partition)
	if err != nil {
		return 0, 0, err
	}
	switch {
	case ts == LatestTimestamp:
		return next, -1, nil
	case ts == EarliestTimestamp:
		return start, -1, nil
	case ts == MaxTimestamp:
		return e.maxTimestamp(ctx, topic, partition, start)
	case ts < 0:
		return 0, 0, kerr.InvalidRequest
	}
	var found *metastore.IndexEntry
	err = e.meta.ScanEntries(ctx, topic, partition, start, func(en metastore.IndexEntry) bool {
		if en.MaxTimestamp >= ts {
			found = &en
			return false
		}
		return true
	})
	if err != nil {
		return 0, 0, fmt.Errorf("scan index: %w", err)
	}
	if found == nil {
		return -1, -1, nil
	}
	chunk, err := e.readEntry(ctx, *found)
	if err != nil {
		return 0, 0, err
	}
	for _, b := range chunk.Batches() {
		if b.Header.MaxTimestamp < ts {
			continue
		}
		recs, err := segment.RecordTimestamps(b.Raw)
		if err != nil {
			return 0, 0, err
		}
		for _, r := range recs {
			abs := found.BaseOffset + (b.Header.BaseOffset + int64(r.OffsetDelta) - found.StoredBase)
			if r.Timestamp >= ts && abs >= start {
				return abs, r.Timestamp, nil
			}
		}
	}
	return -1, -1, nil
}

func (e *Engine) maxTimestamp(ctx context.Context, topic metastore.TopicID, partition int32, start int64) (int64, int64, error) {
	var best *metastore.IndexEntry
	err := e.meta.ScanEntries(ctx, topic, partition, start, func(en metastore.IndexEntry) bool {
		if best == nil || en.MaxTimestamp > best.MaxTimestamp {
			best = &en
		}
		return true
	})
	if err != nil || best == nil {
		return -1, -1, err
	}
	chunk, err := e.readEntry(ctx, *best)
	if err != nil {
		return 0, 0, err
	}
	off, ts := int64(-1), int64(-1)
	for _, b := range chunk.Batches() {
		if b.Header.MaxTimestamp != best.MaxTimestamp {
			continue
		}
		recs, err := segment.RecordTimestamps(b.Raw)
		if err != nil {
			return 0, 0, err
		}
		for _, r := range recs {
			if r.Timestamp > ts {
				off = best.BaseOffset + (b.Header.BaseOffset + int64(r.OffsetDelta) - best.StoredBase)
				ts = r.Timestamp
			}
		}
	}
	return off, ts, nil
}
