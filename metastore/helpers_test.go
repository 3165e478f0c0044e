package metastore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
)

const testNS = "/shale"

// newStore starts an embedded etcd and returns a Store on it, the raw client
// and the endpoints.
func newStore(t *testing.T) (*metastore.Store, *clientv3.Client, []string) {
	t.Helper()
	cli, eps := testenv.Etcd(t)
	return metastore.New(cli, testNS), cli, eps
}

// testCtx returns a context that ends with the test or after a minute.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// entries builds dense entries starting at base, one per record count.
func entries(base int64, obj string, records ...int64) []metastore.IndexEntry {
	out := make([]metastore.IndexEntry, 0, len(records))
	pos := int64(0)
	for _, n := range records {
		out = append(out, metastore.IndexEntry{
			BaseOffset:  base,
			LastOffset:  base + n - 1,
			ObjectKey:   obj,
			Pos:         pos,
			Size:        100 * n,
			Batches:     1,
			CommittedMs: 1,
		})
		pos += 100 * n
		base += n
	}
	return out
}

// appendCommit builds the commit that appends entries with the given record
// counts after st.
func appendCommit(id metastore.TopicID, p int32, st metastore.PartitionState, obj string, records ...int64) metastore.ChunkCommit {
	es := entries(st.NextOffset, obj, records...)
	next := st.Clone()
	next.NextOffset = es[len(es)-1].LastOffset + 1
	return metastore.ChunkCommit{TopicID: id, Partition: p, ExpectedRevision: st.Revision, Entries: es, New: next}
}

// mustCommit reads the state of p and appends entries to it.
func mustCommit(t *testing.T, s *metastore.Store, id metastore.TopicID, p int32, records ...int64) int64 {
	t.Helper()
	ctx := testCtx(t)
	st, err := s.PartitionState(ctx, id, p)
	if err != nil {
		t.Fatalf("PartitionState: %v", err)
	}
	rev, err := s.CommitChunks(ctx, []metastore.ChunkCommit{appendCommit(id, p, st, fmt.Sprintf("obj-%d-%d", p, st.NextOffset), records...)})
	if err != nil {
		t.Fatalf("CommitChunks: %v", err)
	}
	return rev
}

func mustCreateTopic(t *testing.T, s *metastore.Store, name string, partitions int32) metastore.Topic {
	t.Helper()
	tp, err := s.CreateTopic(testCtx(t), name, partitions, nil)
	if err != nil {
		t.Fatalf("CreateTopic(%q): %v", name, err)
	}
	return tp
}

// countKeys counts the keys under prefix with a raw etcd read.
func countKeys(t *testing.T, cli *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := cli.Get(testCtx(t), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("count %s: %v", prefix, err)
	}
	return resp.Count
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

// testenvClient returns an extra, independent client to the same server.
func testenvClient(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	return testenv.EtcdClient(t, eps)
}
