package agent_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestTxnAdmin proves kadm's transaction admin calls against two agents:
// ListTransactions lists each transactional ID once, with its coordinator
// and state (filters by state and producer ID apply), and
// DescribeTransactions shows an ongoing transaction's producer, timeout,
// start and partitions, its completion after the commit, and
// TRANSACTIONAL_ID_NOT_FOUND for an ID nobody initialized.
func TestTxnAdmin(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, "txn-adm"); err != nil {
		t.Fatal(err)
	}
	cl := c.Client(t, kgo.TransactionalID("adm-1"), kgo.TransactionTimeout(45*time.Second), kgo.DefaultProduceTopic("txn-adm"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x"), Partition: 1}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ls, err := adm.ListTransactions(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := ls["adm-1"]
	if len(ls) != 1 || !ok || l.State != "Ongoing" || l.ProducerID < 0 {
		t.Fatalf("list: %+v", ls)
	}
	if ls, err = adm.ListTransactions(ctx, nil, []string{"CompleteCommit"}); err != nil || len(ls) != 0 {
		t.Fatalf("list CompleteCommit while ongoing: %+v %v", ls, err)
	}
	if ls, err = adm.ListTransactions(ctx, []int64{l.ProducerID + 1}, nil); err != nil || len(ls) != 0 {
		t.Fatalf("list another producer ID: %+v %v", ls, err)
	}
	ds, err := adm.DescribeTransactions(ctx, "adm-1", "never-initialized")
	d := ds["adm-1"]
	if d.Err != nil || d.State != "Ongoing" || d.ProducerID != l.ProducerID || d.Coordinator != l.Coordinator ||
		d.TimeoutMillis != 45000 || d.StartTimestamp < before-1000 || len(d.Topics["txn-adm"]) != 1 {
		t.Fatalf("describe ongoing: %+v (list said %+v), err %v", d, l, err)
	}
	if _, ok := d.Topics["txn-adm"][1]; !ok {
		t.Fatalf("describe ongoing: partitions %+v, want txn-adm/1", d.Topics)
	}
	if n := ds["never-initialized"]; !errors.Is(n.Err, kerr.TransactionalIDNotFound) {
		t.Fatalf("describe an unknown ID: %+v", n)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	ds, err = adm.DescribeTransactions(ctx, "adm-1")
	if d := ds["adm-1"]; err != nil || d.State != "CompleteCommit" || len(d.Topics) != 0 || d.StartTimestamp != -1 {
		t.Fatalf("describe after commit: %+v %v", d, err)
	}
}
