package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shale-dev/shale/metastore"
)

// RetentionStats counts what a retention pass did.
type RetentionStats struct {
	Partitions     int   // partitions whose log start advanced
	OffsetsDropped int64 // sum of log start advances
}

// ApplyRetention runs one retention pass over every topic: for each
// partition it computes the new log start offset from the topic's
// retention.ms (entries whose MaxTimestamp is older than now - retention.ms,
// from the start) and retention.bytes (oldest entries while the rest still
// holds at least retention.bytes), whole index entries only, and advances
// it with metastore.TruncateBefore, which deletes those entries. The objects
// are left to garbage collection. As in Kafka, only topics whose
// cleanup.policy includes delete (the default) are touched: a
// cleanup.policy=compact topic keeps its data whatever its retention
// configs say (metastore.CleanupPolicyOf).
func ApplyRetention(ctx context.Context, meta *metastore.Store, now time.Time, log *slog.Logger) (RetentionStats, error) {
	var stats RetentionStats
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	topics, err := meta.ListTopics(ctx)
	if err != nil {
		return stats, fmt.Errorf("retention: %w", err)
	}
	for _, t := range topics {
		ms, limit := metastore.RetentionOf(t.Configs)
		if deletes, _ := metastore.CleanupPolicyOf(t.Configs); !deletes || ms < 0 && limit < 0 {
			continue
		}
		for p := int32(0); p < t.Partitions; p++ {
			target, start, err := retentionTarget(ctx, meta, t.ID, p, ms, limit, now)
			if err != nil {
				return stats, fmt.Errorf("retention %s/%d: %w", t.Name, p, err)
			}
			if target <= start {
				continue
			}
			newStart, err := meta.TruncateBefore(ctx, t.ID, p, target)
			if errors.Is(err, metastore.ErrTopicNotFound) {
				break
			}
			if err != nil {
				return stats, fmt.Errorf("retention %s/%d: %w", t.Name, p, err)
			}
			stats.Partitions++
			stats.OffsetsDropped += newStart - start
			log.Info("retention advanced log start", "topic", t.Name, "partition", p, "from", start, "to", newStart)
		}
	}
	return stats, nil
}

// retentionTarget returns the log start offset retention asks for and the
// current one.
func retentionTarget(ctx context.Context, meta *metastore.Store, id metastore.TopicID, p int32, ms, limit int64, now time.Time) (int64, int64, error) {
	var entries []metastore.IndexEntry
	var total int64
	st, _, err := meta.ScanIndex(ctx, id, p, func(e metastore.IndexEntry) bool {
		entries = append(entries, e)
		total += e.Bytes()
		return true
	})
	if err != nil {
		return 0, 0, err
	}
	target := st.LogStartOffset
	if ms >= 0 {
		cutoff := now.UnixMilli() - ms
		for _, e := range entries {
			if e.MaxTimestamp >= cutoff {
				break
			}
			target = max(target, e.LastOffset+1)
		}
	}
	if limit >= 0 {
		for _, e := range entries {
			if total-e.Bytes() < limit {
				break
			}
			total -= e.Bytes()
			target = max(target, e.LastOffset+1)
		}
	}
	return min(target, st.NextOffset), st.LogStartOffset, nil
}
