package replay

import (
	"context"
	"errors"
	"fmt"
	"io"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/s3tier"
)

// ErrReadOnly is returned by the read-only decorators for any write.
var ErrReadOnly = errors.New("replay: write refused: replay is read-only")

// ReadOnlyStore returns s with Put and Delete refused (ErrReadOnly). The
// replay command reads the bucket through it, so it can never change it.
func ReadOnlyStore(s s3tier.Store) s3tier.Store { return readOnlyStore{s} }

type readOnlyStore struct{ s3tier.Store }

func (r readOnlyStore) Put(_ context.Context, key string, _ io.ReadSeeker, _ int64) error {
	return fmt.Errorf("put %s: %w", key, ErrReadOnly)
}

func (r readOnlyStore) Delete(_ context.Context, key string) error {
	return fmt.Errorf("delete %s: %w", key, ErrReadOnly)
}

// ReadOnlyKV returns kv with every write refused (ErrReadOnly): Put,
// Delete, Compact, and a Do or Txn holding a put or delete (transactions
// of gets and compares pass). Use it as an etcd client's KV:
//
//	cli.KV = replay.ReadOnlyKV(cli.KV)
func ReadOnlyKV(kv clientv3.KV) clientv3.KV { return readOnlyKV{kv} }

type readOnlyKV struct{ clientv3.KV }

func (r readOnlyKV) Put(_ context.Context, key, _ string, _ ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	return nil, fmt.Errorf("etcd put %s: %w", key, ErrReadOnly)
}

func (r readOnlyKV) Delete(_ context.Context, key string, _ ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	return nil, fmt.Errorf("etcd delete %s: %w", key, ErrReadOnly)
}

func (r readOnlyKV) Compact(context.Context, int64, ...clientv3.CompactOption) (*clientv3.CompactResponse, error) {
	return nil, fmt.Errorf("etcd compact: %w", ErrReadOnly)
}

func (r readOnlyKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	if writes(op) {
		return clientv3.OpResponse{}, fmt.Errorf("etcd %s: %w", op.KeyBytes(), ErrReadOnly)
	}
	return r.KV.Do(ctx, op)
}

func (r readOnlyKV) Txn(ctx context.Context) clientv3.Txn {
	return &readOnlyTxn{inner: r.KV.Txn(ctx)}
}

// writes reports whether op is or holds a put or delete.
func writes(op clientv3.Op) bool {
	if op.IsPut() || op.IsDelete() {
		return true
	}
	if op.IsTxn() {
		_, thenOps, elseOps := op.Txn()
		for _, o := range append(thenOps, elseOps...) {
			if writes(o) {
				return true
			}
		}
	}
	return false
}

type readOnlyTxn struct {
	inner clientv3.Txn
	write bool
}

func (t *readOnlyTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.inner = t.inner.If(cs...)
	return t
}

func (t *readOnlyTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.note(ops)
	t.inner = t.inner.Then(ops...)
	return t
}

func (t *readOnlyTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.note(ops)
	t.inner = t.inner.Else(ops...)
	return t
}

func (t *readOnlyTxn) note(ops []clientv3.Op) {
	for _, o := range ops {
		t.write = t.write || writes(o)
	}
}

func (t *readOnlyTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.write {
		return nil, fmt.Errorf("etcd txn: %w", ErrReadOnly)
	}
	return t.inner.Commit()
}
