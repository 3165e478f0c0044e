package main

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestTxnScenarioShort runs the transactions scenario of `make bench`
// briefly against one in-process agent, and proves its figures count what
// they name: a read_committed consumer reads exactly the records the
// scenario counted as acknowledged (plain) or committed (transactions),
// every transaction ended without error, and a transaction costs etcd
// more operations than a plain round of the same records.
func TestTxnScenarioShort(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst := &instance{addr: c.Agents[0].Addr, etcdURL: c.Endpoints[0], stop: func() {}}
	tg := target{name: "agenttest", start: func(context.Context, string, int) (*instance, error) { return inst, nil }}
	o := options{duration: 300 * time.Millisecond, partitions: 4, producers: 2, recordSize: 100,
		txnInterval: 100 * time.Millisecond, txnEtcdTime: 300 * time.Millisecond}
	r, err := measureTxn(ctx, tg, o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.Txns == 0 || r.TxnErrors != 0 || r.EndTxnP50ms <= 0 {
		t.Fatalf("%d transactions committed, %d failed, EndTxn p50 %.1f ms: want some, none failed", r.Txns, r.TxnErrors, r.EndTxnP50ms)
	}
	if r.EtcdPerTxn["txn"] <= r.EtcdPerRnd["txn"] {
		t.Errorf("etcd transactions per transaction %.1f, per plain round %.1f: a transaction's state writes are missing", r.EtcdPerTxn["txn"], r.EtcdPerRnd["txn"])
	}
	// Every record the scenario wrote: the warm-up's and the plain run's
	// acknowledged ones, the committed transactions', and the etcd
	// loops' rounds (each loop one round more, before counting).
	want := r.WarmupRecords + r.PlainRecords + r.TxnRecords + int64(r.Rounds+1+r.PlainRounds+1)*txnRoundRecords
	cl, err := kgo.NewClient(kgo.SeedBrokers(inst.addr), kgo.ConsumeTopics(benchTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got int64
	for idle := time.Now(); got < want && time.Since(idle) < 10*time.Second; {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		n := int64(cl.PollFetches(pctx).NumRecords())
		cancel()
		if n > 0 {
			got, idle = got+n, time.Now()
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	got += int64(cl.PollFetches(pctx).NumRecords())
	cancel()
	if got != want {
		t.Errorf("read_committed read %d records; the scenario counted %d written (warm-up %d, plain %d, committed %d, etcd rounds %d+%d)",
			got, want, r.WarmupRecords, r.PlainRecords, r.TxnRecords, r.Rounds+1, r.PlainRounds+1)
	}
}
