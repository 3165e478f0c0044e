package metastore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxCASAttempts bounds every compare-and-swap retry loop in this package.
const maxCASAttempts = 64

// metadataTopicID is the ID Kafka reserves for its metadata topic
// (Uuid.METADATA_TOPIC_ID); NewTopicID never returns it.
var metadataTopicID = TopicID{15: 1}

// NewTopicID returns a random version-4 UUID, avoiding the IDs Kafka reserves
// (zero and the metadata topic ID) and IDs whose base64 form starts with '-'
// (as Kafka's Uuid.randomUuid does, so they are safe on command lines).
func NewTopicID() (TopicID, error) {
	for {
		var id TopicID
		if _, err := rand.Read(id[:]); err != nil {
			return TopicID{}, fmt.Errorf("metastore: random topic id: %w", err)
		}
		id[6] = id[6]&0x0f | 0x40 // version 4
		id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
		if id.IsZero() || id == metadataTopicID || base64.RawURLEncoding.EncodeToString(id[:])[0] == '-' {
			continue
		}
		return id, nil
	}
}

// CreateTopic creates a topic with a fresh random ID. It fails with
// ErrTopicExists if the name is taken and ErrInvalid for a bad name, partition
// count or config.
func (s *Store) CreateTopic(ctx context.Context, name string, partitions int32, configs map[string]string) (Topic, error) {
	t := Topic{Name: name, Partitions: partitions, CreatedMs: time.Now().UnixMilli()}
	if len(configs) > 0 {
		t.Configs = maps.Clone(configs)
	}
	for range maxCASAttempts {
		id, err := NewTopicID()
		if err != nil {
			return Topic{}, err
		}
		t.ID = id
		val, err := encodeTopic(t)
		if err != nil {
			return Topic{}, fmt.Errorf("create topic %q: %w", name, err)
		}
		tk, ik := s.keys.topic(name), s.keys.topicID(id)
		resp, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(tk), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(ik), "=", 0),
		).Then(
			clientv3.OpPut(tk, string(val)),
			clientv3.OpPut(ik, name),
		).Else(
			clientv3.OpGet(tk, clientv3.WithKeysOnly()),
		).Commit()
		if err != nil {
			return Topic{}, fmt.Errorf("create topic %q: %w", name, err)
		}
		if resp.Succeeded {
			t.Revision = resp.Header.Revision
			return t, nil
		}
		if len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
			return Topic{}, fmt.Errorf("create topic %q: %w", name, ErrTopicExists)
		}
		// The random ID collided with a live topic's: draw another.
	}
	return Topic{}, fmt.Errorf("create topic %q: no free topic id after %d attempts", name, maxCASAttempts)
}

// GetTopic returns the topic called name, or ErrTopicNotFound.
func (s *Store) GetTopic(ctx context.Context, name string) (Topic, error) {
	if err := ValidTopicName(name); err != nil {
		return Topic{}, fmt.Errorf("get topic: %w", err)
	}
	resp, err := s.cli.Get(ctx, s.keys.topic(name))
	if err != nil {
		return Topic{}, fmt.Errorf("get topic %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return Topic{}, fmt.Errorf("get topic %q: %w", name, ErrTopicNotFound)
	}
	return s.decodeTopicKV(string(resp.Kvs[0].Key), resp.Kvs[0].Value, resp.Kvs[0].ModRevision, name)
}

func (s *Store) decodeTopicKV(key string, val []byte, modRev int64, wantName string) (Topic, error) {
	t, err := DecodeTopic(key, val)
	if err != nil {
		return Topic{}, err
	}
	if t.Name != wantName {
		return Topic{}, fmt.Errorf("%w: key %q holds topic named %q", ErrCorruptValue, key, t.Name)
	}
	t.Revision = modRev
	return t, nil
}

// GetTopicByID returns the topic with the given ID, or ErrTopicNotFound (also
// when the name now belongs to a re-created topic with another ID).
func (s *Store) GetTopicByID(ctx context.Context, id TopicID) (Topic, error) {
	resp, err := s.cli.Get(ctx, s.keys.topicID(id))
	if err != nil {
		return Topic{}, fmt.Errorf("get topic %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return Topic{}, fmt.Errorf("get topic %s: %w", id, ErrTopicNotFound)
	}
	name := string(resp.Kvs[0].Value)
	if ValidTopicName(name) != nil {
		return Topic{}, fmt.Errorf("%w: key %q: bad topic name %q", ErrCorruptValue, resp.Kvs[0].Key, name)
	}
	t, err := s.GetTopic(ctx, name)
	if errors.Is(err, ErrTopicNotFound) || err == nil && t.ID != id {
		// Deleted (and perhaps re-created) between the two reads.
		return Topic{}, fmt.Errorf("get topic %s: %w", id, ErrTopicNotFound)
	}
	return t, err
}

// ListTopics returns every topic, sorted by name.
func (s *Store) ListTopics(ctx context.Context) ([]Topic, error) {
	prefix := s.keys.topicsPrefix()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	topics := make([]Topic, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		t, err := s.decodeTopicKV(string(kv.Key), kv.Value, kv.ModRevision, string(kv.Key[len(prefix):]))
		if err != nil {
			return nil, fmt.Errorf("list topics: %w", err)
		}
		topics = append(topics, t)
	}
	sort.Slice(topics, func(i, j int) bool { return topics[i].Name < topics[j].Name })
	return topics, nil
}

// UpdateTopic applies fn to the current topic and stores the result if the
// topic did not change meanwhile, retrying fn on a concurrent change (so fn
// may run more than once and must only depend on its argument). fn may change
// Configs and increase Partitions; anything else is ErrInvalid. An error from
// fn is returned as is (wrapped) and nothing is written.
func (s *Store) UpdateTopic(ctx context.Context, name string, fn func(*Topic) error) (Topic, error) {
	for range maxCASAttempts {
		cur, err := s.GetTopic(ctx, name)
		if err != nil {
			return Topic{}, fmt.Errorf("update topic: %w", err)
		}
		next := cur
		next.Configs = maps.Clone(cur.Configs)
		if err := fn(&next); err != nil {
			return Topic{}, fmt.Errorf("update topic %q: %w", name, err)
		}
		switch {
		case next.ID != cur.ID || next.Name != cur.Name:
			return Topic{}, fmt.Errorf("update topic %q: %w: id and name cannot change", name, ErrInvalid)
		case next.Partitions < cur.Partitions:
			return Topic{}, fmt.Errorf("update topic %q: %w: partitions cannot decrease from %d to %d", name, ErrInvalid, cur.Partitions, next.Partitions)
		case next.CreatedMs != cur.CreatedMs:
			return Topic{}, fmt.Errorf("update topic %q: %w: created_ms cannot change", name, ErrInvalid)
		}
		if len(next.Configs) == 0 {
			next.Configs = nil
		}
		val, err := encodeTopic(next)
		if err != nil {
			return Topic{}, fmt.Errorf("update topic %q: %w", name, err)
		}
		tk := s.keys.topic(name)
		resp, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(tk), "=", cur.Revision),
		).Then(clientv3.OpPut(tk, string(val))).Commit()
		if err != nil {
			return Topic{}, fmt.Errorf("update topic %q: %w", name, err)
		}
		if resp.Succeeded {
			next.Revision = resp.Header.Revision
			return next, nil
		}
	}
	return Topic{}, fmt.Errorf("update topic %q: %w (gave up after %d attempts)", name, ErrConflict, maxCASAttempts)
}

// DeleteTopic deletes the topic and, in the same transaction, every key kept
// for its ID (partition states with their producer state, index entries).
// Objects in the bucket are left to garbage collection. It returns the topic
// as it was.
func (s *Store) DeleteTopic(ctx context.Context, name string) (Topic, error) {
	for range maxCASAttempts {
		cur, err := s.GetTopic(ctx, name)
		if err != nil {
			return Topic{}, fmt.Errorf("delete topic: %w", err)
		}
		tk := s.keys.topic(name)
		ops := []clientv3.Op{
			clientv3.OpDelete(tk),
			clientv3.OpDelete(s.keys.topicID(cur.ID)),
		}
		for _, p := range s.keys.topicScoped(cur.ID) {
			ops = append(ops, clientv3.OpDelete(p, clientv3.WithPrefix()))
		}
		resp, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(tk), "=", cur.Revision),
		).Then(ops...).Commit()
		if err != nil {
			return Topic{}, fmt.Errorf("delete topic %q: %w", name, err)
		}
		if resp.Succeeded {
			return cur, nil
		}
	}
	return Topic{}, fmt.Errorf("delete topic %q: %w (gave up after %d attempts)", name, ErrConflict, maxCASAttempts)
}
