package metastore

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// CleanerPass is one key-compaction pass that completed: the end
// (exclusive) of the offsets it mapped, and when it ran. Cut: records
// followed its end when it ran (the active head, records not yet settled,
// an open transaction, or what the key map could not hold). Tail: it ran
// below min.cleanable.dirty.ratio, to compact the tail a cut pass left
// (lifecycle.CompactKeysPartition).
type CleanerPass struct {
	End  int64 `json:"end"`
	AtMs int64 `json:"at_ms"`
	Cut  bool  `json:"cut,omitempty"`
	Tail bool  `json:"tail,omitempty"`
}

// MaxCleanerPasses bounds CleanerState.Passes; AddPass drops the oldest.
const MaxCleanerPasses = 64

// CleanerState is a partition's key-compaction state (Kafka's cleaner
// checkpoint): Checkpoint is the first offset no pass has mapped (the
// start of the dirty section); Passes the latest completed passes, oldest
// first, from which ReachedMs tells when a pass first reached an offset
// (a tombstone is removed delete.retention.ms after that).
type CleanerState struct {
	Checkpoint int64         `json:"checkpoint"`
	Passes     []CleanerPass `json:"passes,omitempty"`
	// BytesBefore and BytesAfter are what the latest pass that advanced
	// the checkpoint rewrote: the bytes of the index entries it replaced,
	// and of the segments that replaced them (`shale topic describe`).
	BytesBefore int64 `json:"bytes_before,omitempty"`
	BytesAfter  int64 `json:"bytes_after,omitempty"`
	Revision    int64 `json:"-"` // etcd ModRevision; 0: none stored
}

// ReachedMs returns when the first recorded pass whose range covered
// offset ran, and false when none did. Dropping the oldest passes only
// makes offsets look reached later, never earlier, so tombstones are kept
// longer, never shorter.
func (st CleanerState) ReachedMs(offset int64) (int64, bool) {
	for _, p := range st.Passes {
		if offset < p.End {
			return p.AtMs, true
		}
	}
	return 0, false
}

// AddPass records a completed pass that mapped offsets up to end at atMs
// and moves the checkpoint there (never back).
func (st *CleanerState) AddPass(end, atMs int64) {
	if end <= st.Checkpoint {
		return
	}
	st.Checkpoint = end
	st.Passes = append(st.Passes, CleanerPass{End: end, AtMs: atMs})
	if n := len(st.Passes) - MaxCleanerPasses; n > 0 {
		st.Passes = append(st.Passes[:0], st.Passes[n:]...)
	}
}

// GetCleanerState returns a partition's cleaner state (zero, Revision 0,
// when no pass completed yet).
func (s *Store) GetCleanerState(ctx context.Context, id TopicID, partition int32) (CleanerState, error) {
	var st CleanerState
	k := s.keys.cleaner(id, partition)
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return st, fmt.Errorf("get cleaner state %s/%d: %w", id, partition, err)
	}
	if len(resp.Kvs) > 0 {
		if err := json.Unmarshal(resp.Kvs[0].Value, &st); err != nil {
			return st, fmt.Errorf("%w: key %q: %v", ErrCorruptValue, k, err)
		}
		st.Revision = resp.Kvs[0].ModRevision
	}
	return st, nil
}

// SaveCleanerState stores st if the stored state is still the one read
// (st.Revision; 0: none) and the topic exists; otherwise it writes nothing
// and returns an error wrapping ErrConflict or ErrTopicNotFound.
func (s *Store) SaveCleanerState(ctx context.Context, id TopicID, partition int32, st CleanerState) error {
	k := s.keys.cleaner(id, partition)
	val, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tr, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(k), "=", st.Revision),
		clientv3.Compare(clientv3.CreateRevision(s.keys.topicID(id)), ">", 0),
	).Then(clientv3.OpPut(k, string(val))).Else(clientv3.OpGet(s.keys.topicID(id), clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return fmt.Errorf("save cleaner state %s/%d: %w", id, partition, err)
	}
	if tr.Succeeded {
		return nil
	}
	if len(tr.Responses[0].GetResponseRange().Kvs) == 0 {
		return fmt.Errorf("save cleaner state %s/%d: %w", id, partition, ErrTopicNotFound)
	}
	return fmt.Errorf("save cleaner state %s/%d: %w: changed since revision %d", id, partition, ErrConflict, st.Revision)
}
