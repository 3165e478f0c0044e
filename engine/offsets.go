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
	return e.ListOffsetIsolated(ctx, topic, partition, ts, false)
}

// ListOffsetIsolated is ListOffset at an isolation level: with
// readCommitted, latest is the last stable offset, and a record found at
// or past it counts as not found (offset -1), as in Kafka.
func (e *Engine) ListOffsetIsolated(ctx context.Context, topic metastore.TopicID, partition int32, ts int64, readCommitted bool) (offset, timestamp int64, err error) {
	o, err := e.states.refreshAll(ctx, partKey{topic, partition})
	if err != nil {
		return 0, 0, err
	}
	if !readCommitted || ts == EarliestTimestamp {
		return e.listOffset(ctx, topic, partition, ts, o.start, o.next)
	}
	if ts == LatestTimestamp {
		return o.lso, -1, nil
	}
	off, stamp, err := e.listOffset(ctx, topic, partition, ts, o.start, o.next)
	if err == nil && off >= o.lso {
		return -1, -1, nil
	}
	return off, stamp, err
}

func (e *Engine) listOffset(ctx context.Context, topic metastore.TopicID, partition int32, ts, start, next int64) (offset, timestamp int64, err error) {
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
	k := partKey{topic, partition}
	// The first entry whose MaxTimestamp reaches ts holds the answer unless
	// its qualifying records all lie below the log start: then look on.
	for from := start; from < next; {
		var found *metastore.IndexEntry
		err = e.meta.ScanEntries(ctx, topic, partition, from, func(en metastore.IndexEntry) bool {
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
		off, stamp, ok, err := e.firstAtOrAfter(ctx, k, *found, ts, start)
		if err != nil || ok {
			return off, stamp, err
		}
		from = found.LastOffset + 1
	}
	return -1, -1, nil
}

// firstAtOrAfter finds, in one index entry, the first record at or above
// offset start whose timestamp is >= ts.
func (e *Engine) firstAtOrAfter(ctx context.Context, k partKey, en metastore.IndexEntry, ts, start int64) (int64, int64, bool, error) {
	spans, err := e.footers.Spans(ctx, e.store, k.id, k.p, en)
	if err != nil {
		return 0, 0, false, err
	}
	for _, sp := range spans {
		if sp.MaxTimestamp < ts || sp.LastOffset() < start {
			continue
		}
		chunk, err := e.readSpan(ctx, sp)
		if err != nil {
			return 0, 0, false, err
		}
		for _, b := range chunk.Batches() {
			if b.Header.MaxTimestamp < ts {
				continue
			}
			recs, err := segment.RecordTimestamps(b.Raw)
			if err != nil {
				return 0, 0, false, err
			}
			for _, r := range recs {
				abs := sp.AbsBase + (b.Header.BaseOffset + int64(r.OffsetDelta) - sp.StoredBase)
				if r.Timestamp >= ts && abs >= start {
					return abs, r.Timestamp, true, nil
				}
			}
		}
	}
	return 0, 0, false, nil
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
	spans, err := e.footers.Spans(ctx, e.store, topic, partition, *best)
	if err != nil {
		return 0, 0, err
	}
	off, ts := int64(-1), int64(-1)
	for _, sp := range spans {
		if sp.MaxTimestamp != best.MaxTimestamp {
			continue
		}
		chunk, err := e.readSpan(ctx, sp)
		if err != nil {
			return 0, 0, err
		}
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
					off = sp.AbsBase + (b.Header.BaseOffset + int64(r.OffsetDelta) - sp.StoredBase)
					ts = r.Timestamp
				}
			}
		}
		break
	}
	return off, ts, nil
}
