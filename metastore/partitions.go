package metastore

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultMaxTxnOps is etcd's default --max-txn-ops. A CommitChunks call whose
// commits add up to more TxnOps than the server's limit is refused by etcd.
const DefaultMaxTxnOps = 128

// PartitionState returns the sequencing state of one partition. A partition
// whose state key is absent (never written, or its topic deleted) reads as
// the zero state with Revision 0, which is what CommitChunks expects as
// ExpectedRevision to create it.
func (s *Store) PartitionState(ctx context.Context, id TopicID, partition int32) (PartitionState, error) {
	if partition < 0 {
		return PartitionState{}, fmt.Errorf("partition state %s/%d: %w: negative partition", id, partition, ErrInvalid)
	}
	key := s.keys.state(id, partition)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return PartitionState{}, fmt.Errorf("partition state %s/%d: %w", id, partition, err)
	}
	if len(resp.Kvs) == 0 {
		return PartitionState{}, nil
	}
	st, err := DecodePartitionState(key, resp.Kvs[0].Value)
	if err != nil {
		return PartitionState{}, err
	}
	st.Revision = resp.Kvs[0].ModRevision
	return st, nil
}

// PartitionStates returns the states of every partition of the topic that has
// a state key. Partitions without one are absent from the map (their state is
// the zero state).
func (s *Store) PartitionStates(ctx context.Context, id TopicID) (map[int32]PartitionState, error) {
	resp, err := s.cli.Get(ctx, s.keys.topicStates(id), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("partition states %s: %w", id, err)
	}
	out := make(map[int32]PartitionState, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		_, p, err := s.keys.parseStateKey(key)
		if err != nil {
			return nil, err
		}
		st, err := DecodePartitionState(key, kv.Value)
		if err != nil {
			return nil, err
		}
		st.Revision = kv.ModRevision
		out[p] = st
	}
	return out, nil
}

// TxnOps is the number of etcd operations a commit adds to a CommitChunks
// transaction: one put per entry plus the state put. It is at least 2 because
// each commit also adds up to two compares, and etcd limits compares and
// operations alike. Keep the sum over one call at or under the server's
// --max-txn-ops (DefaultMaxTxnOps unless configured).
func TxnOps(c ChunkCommit) int { return max(len(c.Entries)+len(c.Aborted)+1, 2) }

// CommitChunks makes the commits visible atomically: in one etcd transaction
// it checks, for every commit, that the partition state key is still at
// ExpectedRevision (0: absent) and, for every topic, that it still exists;
// then it writes every index entry, every aborted transaction (under
// aborted/<id>/<p>/<last offset>) and every new state. It returns the
// transaction's revision, which is the new ModRevision of every state
// written.
//
// If any check fails nothing is written and the error wraps ErrConflict; if
// the failure is because a topic was deleted, the error also wraps
// ErrTopicNotFound (so a retry loop can stop). Invalid commits (unordered or
// non-dense entries, New.NextOffset not following the last entry, a
// partition twice in one call, an invalid entry or state) fail with
// ErrInvalid before anything is sent.
//
// CommitChunks does not know the topic's partition count or the old state;
// the caller computed New from the state read at ExpectedRevision.
func (s *Store) CommitChunks(ctx context.Context, commits []ChunkCommit) (int64, error) {
	if len(commits) == 0 {
		return 0, fmt.Errorf("commit chunks: %w: no commits", ErrInvalid)
	}
	type tp struct {
		id TopicID
		p  int32
	}
	seen := make(map[tp]bool, len(commits))
	var (
		cmps   []clientv3.Cmp
		ops    []clientv3.Op
		topics []TopicID
		hasTop = make(map[TopicID]bool)
	)
	for _, c := range commits {
		if err := validateCommit(c); err != nil {
			return 0, fmt.Errorf("commit chunks %s/%d: %w", c.TopicID, c.Partition, err)
		}
		if seen[tp{c.TopicID, c.Partition}] {
			return 0, fmt.Errorf("commit chunks %s/%d: %w: partition appears twice", c.TopicID, c.Partition, ErrInvalid)
		}
		seen[tp{c.TopicID, c.Partition}] = true
		if !hasTop[c.TopicID] {
			hasTop[c.TopicID] = true
			topics = append(topics, c.TopicID)
		}
		sk := s.keys.state(c.TopicID, c.Partition)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(sk), "=", c.ExpectedRevision))
		for _, e := range c.Entries {
			val, err := encodeIndexEntry(e)
			if err != nil {
				return 0, fmt.Errorf("commit chunks %s/%d: %w", c.TopicID, c.Partition, err)
			}
			ops = append(ops, clientv3.OpPut(s.keys.entry(c.TopicID, c.Partition, e.BaseOffset), string(val)))
		}
		for _, a := range c.Aborted {
			val, err := encodeAborted(a)
			if err != nil {
				return 0, fmt.Errorf("commit chunks %s/%d: %w", c.TopicID, c.Partition, err)
			}
			ops = append(ops, clientv3.OpPut(s.keys.aborted(c.TopicID, c.Partition, a.LastOffset), string(val)))
		}
		val, err := encodePartitionState(c.New)
		if err != nil {
			return 0, fmt.Errorf("commit chunks %s/%d: %w", c.TopicID, c.Partition, err)
		}
		ops = append(ops, clientv3.OpPut(sk, string(val)))
	}
	var onFail []clientv3.Op
	for _, id := range topics {
		ik := s.keys.topicID(id)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(ik), ">", 0))
		onFail = append(onFail, clientv3.OpGet(ik, clientv3.WithKeysOnly()))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(onFail...).Commit()
	if err != nil {
		return 0, fmt.Errorf("commit chunks (%d partitions): %w", len(commits), err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	var gone []string
	for i, r := range resp.Responses {
		if len(r.GetResponseRange().Kvs) == 0 {
			gone = append(gone, topics[i].String())
		}
	}
	if len(gone) > 0 {
		return 0, fmt.Errorf("commit chunks: %w: %w: %s", ErrConflict, ErrTopicNotFound, strings.Join(gone, ","))
	}
	return 0, fmt.Errorf("commit chunks (%d partitions): %w: a partition state moved past its expected revision", len(commits), ErrConflict)
}

// validateCommit checks one commit on its own.
func validateCommit(c ChunkCommit) error {
	switch {
	case c.TopicID.IsZero():
		return fmt.Errorf("%w: zero topic id", ErrInvalid)
	case c.Partition < 0:
		return fmt.Errorf("%w: negative partition", ErrInvalid)
	case c.ExpectedRevision < 0:
		return fmt.Errorf("%w: negative expected revision", ErrInvalid)
	}
	for i, e := range c.Entries {
		if err := e.Validate(); err != nil {
			return err
		}
		if i > 0 && e.BaseOffset != c.Entries[i-1].LastOffset+1 {
			return fmt.Errorf("%w: entry %d starts at %d, want %d (entries must be ordered and dense)",
				ErrInvalid, i, e.BaseOffset, c.Entries[i-1].LastOffset+1)
		}
	}
	if n := len(c.Entries); n > 0 {
		last := c.Entries[n-1].LastOffset
		if last == maxOffset || c.New.NextOffset != last+1 {
			return fmt.Errorf("%w: new next offset %d, want %d (after the last entry)", ErrInvalid, c.New.NextOffset, last+1)
		}
		if c.Entries[0].BaseOffset < c.New.LogStartOffset {
			return fmt.Errorf("%w: entry at %d is below the new log start offset %d", ErrInvalid, c.Entries[0].BaseOffset, c.New.LogStartOffset)
		}
	}
	for _, a := range c.Aborted {
		if err := a.validate(); err != nil {
			return err
		}
		if a.LastOffset >= c.New.NextOffset {
			return fmt.Errorf("%w: aborted transaction ends at %d, past the new next offset %d", ErrInvalid, a.LastOffset, c.New.NextOffset)
		}
	}
	return c.New.Validate()
}
