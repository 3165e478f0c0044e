package metastore_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shale-dev/shale/metastore"
)

// TestEmbeddedRestartKeepsData proves dev mode is durable across restarts:
// topics, states and index entries written before a clean stop are all there
// after starting again on the same Dir (with fsync on, as dev mode runs).
func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	start := func() (*metastore.Embedded, *clientv3.Client) {
		t.Helper()
		e, err := metastore.StartEmbedded(ctx, metastore.EmbedConfig{Dir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			e.Close()
			t.Fatal(err)
		}
		return e, cli
	}

	e1, cli1 := start()
	s1 := metastore.New(cli1, testNS)
	tp := mustCreateTopic(t, s1, "durable", 2)
	rev := mustCommit(t, s1, tp.ID, 1, 3, 4)
	pid, err := s1.AllocateProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cli1.Close()
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}

	e2, cli2 := start()
	t.Cleanup(func() { cli2.Close(); e2.Close() })
	s2 := metastore.New(cli2, testNS)
	got, err := s2.GetTopicByID(ctx, tp.ID)
	if err != nil || got.Name != "durable" || got.Partitions != 2 {
		t.Fatalf("topic after restart = %+v, %v", got, err)
	}
	st, err := s2.PartitionState(ctx, tp.ID, 1)
	if err != nil || st.NextOffset != 7 || st.Revision != rev {
		t.Fatalf("state after restart = %+v, %v; want next 7 at revision %d", st, err, rev)
	}
	es, err := s2.FindEntries(ctx, tp.ID, 1, 0, 10)
	if err != nil || len(es) != 2 || es[1].LastOffset != 6 {
		t.Fatalf("entries after restart = %+v, %v", es, err)
	}
	pid2, err := s2.AllocateProducerID(ctx)
	if err != nil || pid2 <= pid {
		t.Fatalf("producer id after restart %d, %v; want > %d", pid2, err, pid)
	}
	// And it still takes writes.
	mustCommit(t, s2, tp.ID, 1, 1)
}

// TestStartEmbeddedNeedsDir proves a missing Dir is an error, not a server
// writing into the working directory.
func TestStartEmbeddedNeedsDir(t *testing.T) {
	_, err := metastore.StartEmbedded(context.Background(), metastore.EmbedConfig{})
	wantErr(t, err, metastore.ErrInvalid)
}
