package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Share groups (KIP-932). A share group exists once share-groups/<g>/group
// is written (CreateShareGroup: its first member, or an operator setting
// its offsets); its share-partition states are opaque bytes to metastore
// (package share encodes them), written by compare-and-swap so that agents
// serving the same share-partition at once never both apply a change to
// one state (PutShareState).

// ShareGroupRecord is the value of share-groups/<g>/group.
type ShareGroupRecord struct {
	CreatedMs int64 `json:"created_ms"`
}

// ShareState is one share-partition's stored state.
type ShareState struct {
	TopicID   TopicID
	Partition int32
	Data      []byte
	// Revision is the value's ModRevision, what PutShareState compares.
	Revision int64
}

// CreateShareGroup records that group is a share group (no-op if it is).
func (s *Store) CreateShareGroup(ctx context.Context, group string) error {
	k := s.keys.shareGroup(group)
	v, _ := json.Marshal(ShareGroupRecord{CreatedMs: time.Now().UnixMilli()})
	if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(v))).Commit(); err != nil {
		return fmt.Errorf("create share group %q: %w", group, err)
	}
	return nil
}

// IsShareGroup reports whether group is a share group.
func (s *Store) IsShareGroup(ctx context.Context, group string) (bool, error) {
	resp, err := s.cli.Get(ctx, s.keys.shareGroup(group), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("read share group %q: %w", group, err)
	}
	return resp.Count > 0, nil
}

// ShareGroups lists every share group.
func (s *Store) ShareGroups(ctx context.Context) ([]string, error) {
	p := s.keys.sharesPrefix()
	resp, err := s.cli.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list share groups: %w", err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		g, tail, err := s.keys.parseShareKey(string(kv.Key))
		if err != nil {
			return nil, err
		}
		if tail == "group" {
			out = append(out, g)
		}
	}
	return out, nil
}

// GetShareState reads one share-partition's state; ok is false (Revision
// 0) when it has none yet.
func (s *Store) GetShareState(ctx context.Context, group string, id TopicID, p int32) (ShareState, bool, error) {
	st := ShareState{TopicID: id, Partition: p}
	resp, err := s.cli.Get(ctx, s.keys.shareState(group, id, p))
	if err != nil {
		return st, false, fmt.Errorf("read share state %q %s/%d: %w", group, id, p, err)
	}
	if len(resp.Kvs) == 0 {
		return st, false, nil
	}
	st.Data, st.Revision = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
	return st, true, nil
}

// ShareStates reads every share-partition state of group.
func (s *Store) ShareStates(ctx context.Context, group string) ([]ShareState, error) {
	p := s.keys.shareStates(group)
	resp, err := s.cli.Get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read share states of %q: %w", group, err)
	}
	out := make([]ShareState, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		idS, partS, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), p), "/")
		id, err1 := ParseTopicID(idS)
		part, err2 := strconv.ParseInt(partS, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: share state key %q", ErrCorruptValue, kv.Key)
		}
		out = append(out, ShareState{TopicID: id, Partition: int32(part), Data: kv.Value, Revision: kv.ModRevision})
	}
	return out, nil
}

// PutShareState writes a share-partition's state if it is still at
// expected (its ModRevision as read; 0: absent) and the group still exists
// as a share group: else ErrConflict (re-read and retry), or ErrNotShareGroup.
// It returns the new revision.
func (s *Store) PutShareState(ctx context.Context, group string, id TopicID, p int32, data []byte, expected int64) (int64, error) {
	k := s.keys.shareState(group, id, p)
	g := s.keys.shareGroup(group)
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(k), "=", expected),
		clientv3.Compare(clientv3.CreateRevision(g), ">", 0),
	).Then(clientv3.OpPut(k, string(data))).Else(clientv3.OpGet(g, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return 0, fmt.Errorf("write share state %q %s/%d: %w", group, id, p, err)
	}
	if !resp.Succeeded {
		if r := resp.Responses[0].GetResponseRange(); r != nil && r.Count == 0 {
			return 0, fmt.Errorf("write share state %q %s/%d: %w", group, id, p, ErrNotShareGroup)
		}
		return 0, fmt.Errorf("write share state %q %s/%d: %w", group, id, p, ErrConflict)
	}
	return resp.Header.Revision, nil
}

// ErrNotShareGroup: a share state write for a group that is not (or no
// longer) a share group.
var ErrNotShareGroup = errors.New("metastore: not a share group")

// DeleteShareStates deletes group's share-partition states of one topic.
func (s *Store) DeleteShareStates(ctx context.Context, group string, id TopicID) error {
	if _, err := s.cli.Delete(ctx, s.keys.shareTopicStates(group, id), clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("delete share states %q %s: %w", group, id, err)
	}
	return nil
}

// DeleteShareGroup deletes a share group: its record and every state.
func (s *Store) DeleteShareGroup(ctx context.Context, group string) error {
	if _, err := s.cli.Delete(ctx, s.keys.share(group), clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("delete share group %q: %w", group, err)
	}
	return nil
}

// GroupConfigs returns a group's configs (GROUP config resources), nil if
// none was set.
func (s *Store) GroupConfigs(ctx context.Context, group string) (map[string]string, error) {
	resp, err := s.cli.Get(ctx, s.keys.groupConfigs(group))
	if err != nil {
		return nil, fmt.Errorf("read group configs %q: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		return nil, fmt.Errorf("%w: group configs %q: %v", ErrCorruptValue, group, err)
	}
	return m, nil
}

// UpdateGroupConfigs replaces a group's configs with what update returns
// for the current ones, by compare-and-swap (ErrConflict after a few
// lost races). An empty result deletes the key.
func (s *Store) UpdateGroupConfigs(ctx context.Context, group string, update func(map[string]string) (map[string]string, error)) error {
	k := s.keys.groupConfigs(group)
	for range 5 {
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("read group configs %q: %w", group, err)
		}
		var cur map[string]string
		rev := int64(0)
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			if err := json.Unmarshal(resp.Kvs[0].Value, &cur); err != nil {
				return fmt.Errorf("%w: group configs %q: %v", ErrCorruptValue, group, err)
			}
		}
		next, err := update(cur)
		if err != nil {
			return err
		}
		op := clientv3.OpDelete(k)
		if len(next) > 0 {
			v, _ := json.Marshal(next)
			op = clientv3.OpPut(k, string(v))
		}
		tr, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).Then(op).Commit()
		if err != nil {
			return fmt.Errorf("write group configs %q: %w", group, err)
		}
		if tr.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("write group configs %q: %w", group, ErrConflict)
}
