package metastore

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// CompressionStats counts the batches agents recompressed into a topic's
// compression.type: their bytes as produced and as stored, summed since
// the topic was created (data later deleted by retention still counts).
type CompressionStats struct {
	Produced int64 `json:"produced"`
	Stored   int64 `json:"stored"`
}

// Saved is the bytes the recompression saved (negative if it cost).
func (c CompressionStats) Saved() int64 { return c.Produced - c.Stored }

// AddCompressionStats adds add to the topic's counters (a compare-and-swap,
// retried on a concurrent add). It returns ErrTopicNotFound once the topic
// is deleted, so counters never outlive their topic.
func (s *Store) AddCompressionStats(ctx context.Context, id TopicID, add CompressionStats) error {
	k := s.keys.topicStats(id)
	for range maxCASAttempts {
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("add compression stats %s: %w", id, err)
		}
		var cur CompressionStats
		var rev int64
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			if err := json.Unmarshal(resp.Kvs[0].Value, &cur); err != nil {
				return fmt.Errorf("%w: key %q: %v", ErrCorruptValue, k, err)
			}
		}
		cur.Produced += add.Produced
		cur.Stored += add.Stored
		val, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		tr, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(k), "=", rev),
			clientv3.Compare(clientv3.CreateRevision(s.keys.topicID(id)), ">", 0),
		).Then(clientv3.OpPut(k, string(val))).Else(clientv3.OpGet(s.keys.topicID(id), clientv3.WithKeysOnly())).Commit()
		if err != nil {
			return fmt.Errorf("add compression stats %s: %w", id, err)
		}
		if tr.Succeeded {
			return nil
		}
		if len(tr.Responses[0].GetResponseRange().Kvs) == 0 {
			return fmt.Errorf("add compression stats %s: %w", id, ErrTopicNotFound)
		}
	}
	return fmt.Errorf("add compression stats %s: %w (gave up after %d attempts)", id, ErrConflict, maxCASAttempts)
}

// GetCompressionStats returns the topic's counters (zero if it never
// recompressed a batch).
func (s *Store) GetCompressionStats(ctx context.Context, id TopicID) (CompressionStats, error) {
	var c CompressionStats
	resp, err := s.cli.Get(ctx, s.keys.topicStats(id))
	if err != nil {
		return c, fmt.Errorf("get compression stats %s: %w", id, err)
	}
	if len(resp.Kvs) > 0 {
		if err := json.Unmarshal(resp.Kvs[0].Value, &c); err != nil {
			return c, fmt.Errorf("%w: key %q: %v", ErrCorruptValue, resp.Kvs[0].Key, err)
		}
	}
	return c, nil
}
