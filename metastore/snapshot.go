package metastore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Snapshot and restore of a namespace: what the manifest job writes to the
// bucket and `shale recover` writes back (see "Snapshots" in doc.go).

// KV is one key of a namespace snapshot: Key is relative to the namespace
// prefix (namespace + "/"), Value is the stored value as it is.
type KV struct {
	Key   string
	Value []byte
}

// Snapshot kinds, the first component of a relative key, as counted by
// SnapshotKind (for what `shale recover` prints).
const (
	KindTopic       = "topics"
	KindPartition   = "partitions"
	KindIndex       = "index"
	KindGroupOffset = "group offsets"
	KindGroup       = "groups"
	KindACL         = "acls"
	KindUser        = "users"
	KindTxn         = "transactions"
	KindOther       = "other"
)

// SnapshotKind classifies a relative key for reports.
func SnapshotKind(rel string) string {
	dir, rest, _ := strings.Cut(rel, "/")
	switch dir + "/" {
	case dirTopics:
		return KindTopic
	case dirPartitions:
		return KindPartition
	case dirIndex:
		return KindIndex
	case dirGroups:
		if strings.Contains(rest, "/offsets/") {
			return KindGroupOffset
		}
		return KindGroup
	case dirACLs:
		return KindACL
	case dirUsers:
		return KindUser
	case dirTxns:
		return KindTxn
	}
	return KindOther
}

// snapshotPage is how many keys one read of Snapshot returns.
const snapshotPage = 1000

// Snapshot calls fn, in key order, for every key of the namespace that is
// not bound to a lease, as of etcd revision rev (0: the current one;
// returned): the state that
// cannot be derived from anything else. Leased keys (agents, job
// elections, group and transaction coordinators, manifest pins) belong to
// live processes and are rebuilt by them. For an index entry, object is
// the object key it points into (else ""). Reads are paged at one
// revision, so the snapshot is consistent however large; if etcd compacts
// that revision meanwhile, Snapshot fails and may simply be called again.
func (s *Store) Snapshot(ctx context.Context, rev int64, fn func(kv KV, object string) error) (int64, error) {
	root := s.keys.root()
	end := clientv3.GetPrefixRangeEnd(root)
	from := root
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(snapshotPage),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return 0, fmt.Errorf("metastore: snapshot %s at revision %d: %w", from, rev, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if kv.Lease != 0 || string(kv.Key) == s.keys.recovering() || string(kv.Key) == s.keys.manifestLast() {
				continue
			}
			key := string(kv.Key)
			var object string
			if strings.HasPrefix(key, s.keys.indexPrefix()) {
				e, err := DecodeIndexEntry(key, kv.Value)
				if err != nil {
					return 0, err
				}
				object = e.ObjectKey
			}
			if err := fn(KV{Key: key[len(root):], Value: kv.Value}, object); err != nil {
				return 0, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// CountKeys returns how many keys the namespace holds (leased ones too).
func (s *Store) CountKeys(ctx context.Context) (int64, error) {
	root := s.keys.root()
	resp, err := s.cli.Get(ctx, root, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("metastore: count keys under %s: %w", root, err)
	}
	return resp.Count, nil
}

// RecoveringMarker returns the manifest a Restore in progress (or killed)
// names, "" when none.
func (s *Store) RecoveringMarker(ctx context.Context) (string, error) {
	key := s.keys.recovering()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("metastore: read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// WipeNamespace deletes every key of the namespace (shale recover --force).
func (s *Store) WipeNamespace(ctx context.Context) error {
	root := s.keys.root()
	if _, err := s.cli.Delete(ctx, root, clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("metastore: delete %s*: %w", root, err)
	}
	return nil
}

// RestoreGapProducerIDs is what Restore adds to the producer ID counter:
// IDs handed out after the snapshot are never handed out again.
const RestoreGapProducerIDs = 1 << 20

// ErrRestoreBusy: Restore on a namespace a restore of another source is
// writing (or was killed writing).
var ErrRestoreBusy = errors.New("metastore: another restore is in progress")

// ErrNotEmpty: BeginRestore on a namespace that holds keys and no marker
// of the same source.
var ErrNotEmpty = errors.New("metastore: the namespace holds keys")

// BeginRestore sets the <ns>/recovering marker to source, in one
// transaction with the check that the namespace holds no key at all; or
// finds the marker already naming source (a restore of it killed midway:
// resumed). Otherwise it returns ErrNotEmpty or ErrRestoreBusy and writes
// nothing. With the marker set, agents refuse to start (RecordCluster),
// and since an agent records the cluster before it serves, an agent
// started on the empty namespace first makes BeginRestore fail instead.
func (s *Store) BeginRestore(ctx context.Context, source string) error {
	root, marker := s.keys.root(), s.keys.recovering()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(root), "=", 0).WithPrefix()).
		Then(clientv3.OpPut(marker, source)).
		Else(clientv3.OpGet(marker), clientv3.OpGet(root, clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit()
	if err != nil {
		return fmt.Errorf("metastore: write %s: %w", marker, err)
	}
	if resp.Succeeded {
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if string(kvs[0].Value) == source {
			return nil
		}
		return fmt.Errorf("%w: %s names %s, not %s", ErrRestoreBusy, marker, kvs[0].Value, source)
	}
	return fmt.Errorf("%w: %d keys under %s", ErrNotEmpty, resp.Responses[1].GetResponseRange().Count, root)
}

// RestoreBatch bounds one transaction of Restore: operations (etcd's
// --max-txn-ops) and value bytes (under --max-request-bytes).
type RestoreBatch struct {
	MaxOps   int
	MaxBytes int
}

// Restore writes kvs (relative keys, as Snapshot gave them) into the
// namespace, in transactions within limits, calling progress after each
// with the keys written so far. source names what is restored (the
// manifest's object key): Restore first records it at <ns>/recovering and
// deletes that record last, so a restore killed midway can be run again
// with the same source (every put is idempotent) and agents can tell a
// half-restored namespace. The producer ID counter is raised by
// RestoreGapProducerIDs. Restore does not check that the namespace is
// empty; the caller does (CountKeys, RecoveringMarker).
func (s *Store) Restore(ctx context.Context, source string, kvs []KV, lim RestoreBatch, progress func(done int)) error {
	if lim.MaxOps <= 0 {
		lim.MaxOps = DefaultMaxTxnOps
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = 1 << 20
	}
	marker := s.keys.recovering()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(marker), "=", 0)).
		Then(clientv3.OpPut(marker, source)).
		Else(clientv3.OpGet(marker)).Commit()
	if err != nil {
		return fmt.Errorf("metastore: write %s: %w", marker, err)
	}
	if !resp.Succeeded {
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 && string(kvs[0].Value) != source {
			return fmt.Errorf("%w: %s names %s, not %s", ErrRestoreBusy, marker, kvs[0].Value, source)
		}
	}
	var ops []clientv3.Op
	size, done := 0, 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("metastore: restore %d keys from %s: %w", len(ops), ops[0].KeyBytes(), err)
		}
		done += len(ops)
		ops, size = ops[:0], 0
		if progress != nil {
			progress(done)
		}
		return nil
	}
	for _, kv := range kvs {
		v := kv.Value
		if kv.Key == keyProducerID {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("%w: %s%s: %q", ErrCorruptValue, s.keys.root(), kv.Key, v)
			}
			v = []byte(strconv.FormatInt(n+RestoreGapProducerIDs, 10))
		}
		if len(ops) == lim.MaxOps || (len(ops) > 0 && size+len(kv.Key)+len(v) > lim.MaxBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		ops = append(ops, clientv3.OpPut(s.keys.root()+kv.Key, string(v)))
		size += len(kv.Key) + len(v)
	}
	if err := flush(); err != nil {
		return err
	}
	if _, err := s.cli.Delete(ctx, marker); err != nil {
		return fmt.Errorf("metastore: delete %s: %w", marker, err)
	}
	return nil
}

// ClusterKey is the cluster record's key relative to the namespace, for
// a restore that writes the record of the bucket it reads.
const ClusterKey = keyCluster
