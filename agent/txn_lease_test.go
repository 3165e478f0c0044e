package agent_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// TestTxnCoordinatorSweepsAfterLeaseLoss proves the transaction
// coordinator goes back to work once its agent has registered again after
// losing its etcd lease: a transaction begun in the new session and left
// open past its timeout is aborted by the coordinator's sweep (the last
// stable offset reaches the high watermark, past the abort marker).
func TestTxnCoordinatorSweepsAfterLeaseLoss(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agent: func(_ int, cfg *agent.Config) {
		cfg.NodeID, cfg.AgentTTL = -1, time.Second // quick keep-alives notice the loss sooner
	}})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	const topic = "txn-lease"
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// A first transaction starts the coordinator under the first session.
	first := c.Client(t, kgo.TransactionalID("lease-a"), kgo.DefaultProduceTopic(topic))
	if err := first.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := first.ProduceSync(ctx, &kgo.Record{Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := first.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	old, err := c.Etcd.Get(ctx, c.Namespace+"/agents/", clientv3.WithPrefix())
	if err != nil || len(old.Kvs) != 1 || old.Kvs[0].Lease == 0 {
		t.Fatalf("agent key: %v %+v", err, old)
	}
	if _, err := c.Etcd.Revoke(ctx, clientv3.LeaseID(old.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		now, err := c.Etcd.Get(ctx, c.Namespace+"/agents/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(now.Kvs) == 1 && now.Kvs[0].Lease != old.Kvs[0].Lease {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("agent not registered again 20 s after its lease was revoked")
		}
	}

	hung := c.Client(t, kgo.TransactionalID("lease-b"), kgo.TransactionTimeout(time.Second), kgo.DefaultProduceTopic(topic))
	if err := hung.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := hung.ProduceSync(ctx, &kgo.Record{Value: []byte("b")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Offsets: a 0, its commit marker 1, b 2, b's abort marker 3.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		stable, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		end, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := stable.Lookup(topic, 0)
		e, _ := end.Lookup(topic, 0)
		if s.Err == nil && e.Err == nil && s.Offset == 4 && e.Offset == 4 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after a 1 s transaction timeout: last stable offset %d (%v), end %d (%v); want both 4", s.Offset, s.Err, e.Offset, e.Err)
		}
	}
}
