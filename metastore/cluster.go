package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ClusterInfo is what a cluster records about itself at its first start
// (key <ns>/cluster): where its objects live, so that tools which read etcd
// (replay, status) need nothing else, and so that an agent pointed at
// another bucket is refused rather than writing a second cluster's objects
// into this index. Credentials are never recorded.
type ClusterInfo struct {
	// Bucket is the store's URL: s3://bucket[/prefix] or file:///abs/dir.
	Bucket string `json:"bucket"`
	// S3Endpoint, S3Region and S3PathStyle are how the first agent reached
	// an S3 bucket (hints for tools; agents may reach it otherwise).
	S3Endpoint  string `json:"s3_endpoint,omitempty"`
	S3Region    string `json:"s3_region,omitempty"`
	S3PathStyle bool   `json:"s3_path_style,omitempty"`
	// CreatedMs is when the record was written (Unix ms).
	CreatedMs int64 `json:"created_ms"`
}

// Validate checks the record's invariants.
func (c ClusterInfo) Validate() error {
	if !strings.HasPrefix(c.Bucket, "s3://") && !strings.HasPrefix(c.Bucket, "file:///") {
		return fmt.Errorf("cluster bucket %q is neither s3://bucket/prefix nor file:///dir", c.Bucket)
	}
	return nil
}

// ErrNoClusterRecord: the namespace holds no cluster record (no agent of
// this version has started on it yet).
var ErrNoClusterRecord = errors.New("metastore: no cluster record")

// Cluster returns the namespace's cluster record, or ErrNoClusterRecord.
func (s *Store) Cluster(ctx context.Context) (ClusterInfo, error) {
	key := s.keys.cluster()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return ClusterInfo{}, fmt.Errorf("metastore: read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return ClusterInfo{}, fmt.Errorf("%w at %s", ErrNoClusterRecord, key)
	}
	return decodeCluster(key, resp.Kvs[0].Value)
}

// ErrRecovering: the namespace is being restored by `shale recover` (its
// <ns>/recovering marker is set: a restore in progress, or one killed
// midway and not yet run again). Agents refuse to start on it.
var ErrRecovering = errors.New("metastore: a restore from the bucket is in progress")

// RecordCluster writes info as the cluster record unless one exists
// (CreateRevision == 0), and returns the record now in etcd: info, or the
// one an earlier agent wrote, which the caller compares with its own. It
// returns ErrRecovering, writing nothing, while a Restore's marker is set:
// every agent records the cluster before it serves (cli.checkCluster), so
// none starts on a half-restored namespace; the check and the write are
// one transaction, and BeginRestore sets the marker only on an empty
// namespace, so an agent and a restore cannot both pass.
func (s *Store) RecordCluster(ctx context.Context, info ClusterInfo) (ClusterInfo, error) {
	if err := info.Validate(); err != nil {
		return ClusterInfo{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return ClusterInfo{}, err
	}
	key, marker := s.keys.cluster(), s.keys.recovering()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0), clientv3.Compare(clientv3.CreateRevision(marker), "=", 0)).
		Then(clientv3.OpPut(key, string(b))).
		Else(clientv3.OpGet(key), clientv3.OpGet(marker)).
		Commit()
	if err != nil {
		return ClusterInfo{}, fmt.Errorf("metastore: record cluster at %s: %w", key, err)
	}
	if resp.Succeeded {
		return info, nil
	}
	if m := resp.Responses[1].GetResponseRange().Kvs; len(m) > 0 {
		return ClusterInfo{}, fmt.Errorf("%w: %s names %s", ErrRecovering, marker, m[0].Value)
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return ClusterInfo{}, fmt.Errorf("metastore: record cluster at %s: %w", key, ErrConflict)
	}
	return decodeCluster(key, kvs[0].Value)
}

func decodeCluster(key string, v []byte) (ClusterInfo, error) {
	var c ClusterInfo
	if err := decodeStrict(v, &c); err != nil {
		return ClusterInfo{}, corrupt(key, err)
	}
	if err := c.Validate(); err != nil {
		return ClusterInfo{}, corrupt(key, err)
	}
	return c, nil
}
