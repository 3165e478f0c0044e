package agent_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestTxnAdmin proves kadm's transaction admin calls against two agents:
// ListTransactions lists each transactional ID once, with its coordinator
// and state (filters by state and producer ID apply), and
// DescribeTransactions shows an ongoing transaction's producer, timeout,
// start and partitions, its completion after the commit, and
// TRANSACTIONAL_ID_NOT_FOUND for an ID nobody initialized; and
// DescribeProducers, through each agent, shows the producer in the
// partition it wrote with its epoch, last sequence and open transaction's
// first offset, none after the commit, and UNKNOWN_TOPIC_OR_PARTITION for
// a partition that does not exist.
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
	// producers describes txn-adm/1 through agent i, and gives the error
	// for txn-adm/7 (no such partition; kgo would not send it).
	producers := func(i int) (kadm.DescribedProducer, bool, error) {
		t.Helper()
		cl := c.Client(t, kgo.SeedBrokers(c.Agents[i].Addr))
		req := kmsg.NewPtrDescribeProducersRequest()
		rt := kmsg.NewDescribeProducersRequestTopic()
		rt.Topic, rt.Partitions = "txn-adm", []int32{7}
		req.Topics = append(req.Topics, rt)
		resp := dialRaw(t, c.Agents[i].Addr).roundTrip(req).(*kmsg.DescribeProducersResponse)
		err7 := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
		dp, err := kadm.NewClient(cl).DescribeProducers(ctx, kadm.TopicsSet{"txn-adm": {1: {}}})
		if err != nil {
			t.Fatalf("describe producers via agent %d: %v", i, err)
		}
		ps := dp["txn-adm"].Partitions
		if p := ps[1]; p.Err != nil || len(p.ActiveProducers) != 1 {
			t.Fatalf("describe producers of txn-adm/1 via agent %d: %+v", i, p)
		}
		pr, ok := ps[1].ActiveProducers[l.ProducerID]
		return pr, ok, err7
	}
	for i := range 2 {
		pr, ok, err7 := producers(i)
		if !ok || pr.ProducerEpoch != int16(d.ProducerEpoch) || pr.LastSequence != 0 || pr.CurrentTxnStartOffset != 0 || pr.LastTimestamp < before-1000 {
			t.Errorf("describe producers via agent %d, transaction ongoing: %+v (found %v), want producer %d epoch %d, last sequence 0, transaction from offset 0",
				i, pr, ok, l.ProducerID, d.ProducerEpoch)
		}
		if !errors.Is(err7, kerr.UnknownTopicOrPartition) {
			t.Errorf("describe producers of txn-adm/7 via agent %d: %v, want UNKNOWN_TOPIC_OR_PARTITION", i, err7)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if pr, ok, _ := producers(1); !ok || pr.CurrentTxnStartOffset != -1 {
		t.Errorf("describe producers after the commit: %+v (found %v), want no open transaction", pr, ok)
	}
	ds, err = adm.DescribeTransactions(ctx, "adm-1")
	if d := ds["adm-1"]; err != nil || d.State != "CompleteCommit" || len(d.Topics) != 0 || d.StartTimestamp != -1 {
		t.Fatalf("describe after commit: %+v %v", d, err)
	}
}
