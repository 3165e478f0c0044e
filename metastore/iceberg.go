package metastore

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TablePointer is the commit point of a topic's Iceberg table
// (<ns>/iceberg/<id>): the bucket key of its current metadata file and that
// file's version. A metadata file becomes the table's only when
// SwapTablePointer moves the pointer to it, so files written by a commit
// that did not get there (a crash, a lost election) are never current.
type TablePointer struct {
	// Metadata is the current metadata file's location (a URI such as
	// s3://bucket/prefix/iceberg/<topic>/metadata/00003-<uuid>.metadata.json).
	Metadata string `json:"metadata"`
	// Version is the metadata file's version (its name's number).
	Version int `json:"version"`
	// Revision is the pointer's etcd ModRevision; 0: no table yet.
	Revision int64 `json:"-"`
}

// GetTablePointer returns a topic's Iceberg table pointer (Revision 0 when
// the topic has no table yet).
func (s *Store) GetTablePointer(ctx context.Context, id TopicID) (TablePointer, error) {
	var tp TablePointer
	k := s.keys.iceberg(id)
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return tp, fmt.Errorf("get table pointer %s: %w", id, err)
	}
	if len(resp.Kvs) > 0 {
		if err := json.Unmarshal(resp.Kvs[0].Value, &tp); err != nil {
			return tp, fmt.Errorf("%w: key %q: %v", ErrCorruptValue, k, err)
		}
		tp.Revision = resp.Kvs[0].ModRevision
	}
	return tp, nil
}

// SwapTablePointer stores next if the stored pointer is still the one read
// (prev.Revision; 0: none) and the topic exists; otherwise it writes nothing
// and returns an error wrapping ErrConflict or ErrTopicNotFound. It returns
// next with its new Revision.
func (s *Store) SwapTablePointer(ctx context.Context, id TopicID, prev, next TablePointer) (TablePointer, error) {
	k := s.keys.iceberg(id)
	val, err := json.Marshal(next)
	if err != nil {
		return next, err
	}
	tr, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(k), "=", prev.Revision),
		clientv3.Compare(clientv3.CreateRevision(s.keys.topicID(id)), ">", 0),
	).Then(clientv3.OpPut(k, string(val))).Else(clientv3.OpGet(s.keys.topicID(id), clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return next, fmt.Errorf("swap table pointer %s: %w", id, err)
	}
	if !tr.Succeeded {
		if len(tr.Responses[0].GetResponseRange().Kvs) == 0 {
			return next, fmt.Errorf("swap table pointer %s: %w", id, ErrTopicNotFound)
		}
		return next, fmt.Errorf("swap table pointer %s: %w: changed since revision %d", id, ErrConflict, prev.Revision)
	}
	next.Revision = tr.Header.Revision
	return next, nil
}
