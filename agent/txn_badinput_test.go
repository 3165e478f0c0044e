package agent_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/metrics"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestTxnBadInput proves that transactional requests out of order or from
// the wrong producer get Kafka's error codes: a timeout above 15 minutes,
// EndTxn with no transaction, an unknown producer ID, a stale epoch
// (PRODUCER_FENCED; INVALID_PRODUCER_EPOCH at old versions), a partition
// of an unknown topic (and OPERATION_NOT_ATTEMPTED for the rest, nothing
// added), TxnOffsetCommit for a group not in the transaction, a
// transactional produce to a partition not added, and a fenced producer's
// batch.
func TestTxnBadInput(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 2, -1, nil, "txn-bad"); err != nil {
		t.Fatal(err)
	}
	// One agent: it coordinates everything. Requests go at the versions set.
	rc := dialRaw(t, c.Agents[0].Addr)
	const tid = "bad-txn"
	send := func(req kmsg.Request) kmsg.Response {
		t.Helper()
		return rc.roundTrip(req)
	}
	want := func(what string, got int16, want error) {
		t.Helper()
		if err := kerr.ErrorForCode(got); !errors.Is(err, want) && !(want == nil && got == 0) {
			t.Errorf("%s: error %v, want %v", what, err, want)
		}
	}
	initPID := func(timeoutMs int32) *kmsg.InitProducerIDResponse {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version, req.TransactionalID, req.TransactionTimeoutMillis = 4, kmsg.StringPtr(tid), timeoutMs
		return send(req).(*kmsg.InitProducerIDResponse)
	}
	want("timeout of 16 minutes", initPID(16*60*1000).ErrorCode, kerr.InvalidTransactionTimeout)
	first := initPID(60000)
	want("init", first.ErrorCode, nil)
	endTxn := func(pid int64, epoch int16, version int16) int16 {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = tid, pid, epoch, true
		req.Version = version
		return send(req).(*kmsg.EndTxnResponse).ErrorCode
	}
	want("EndTxn with no transaction", endTxn(first.ProducerID, first.ProducerEpoch, 4), kerr.InvalidTxnState)
	want("EndTxn of an unknown producer", endTxn(first.ProducerID+1, 0, 4), kerr.InvalidProducerIDMapping)

	addParts := func(pid int64, epoch int16, topics map[string][]int32) *kmsg.AddPartitionsToTxnResponse {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch = 3, tid, pid, epoch
		for topic, ps := range topics {
			rt := kmsg.NewAddPartitionsToTxnRequestTopic()
			rt.Topic, rt.Partitions = topic, ps
			req.Topics = append(req.Topics, rt)
		}
		return send(req).(*kmsg.AddPartitionsToTxnResponse)
	}
	resp := addParts(first.ProducerID, first.ProducerEpoch, map[string][]int32{"txn-bad": {0}, "no-such-topic": {0}})
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rt.Topic == "no-such-topic" {
				want("AddPartitions of an unknown topic", rp.ErrorCode, kerr.UnknownTopicOrPartition)
			} else {
				want("AddPartitions beside an unknown topic", rp.ErrorCode, kerr.OperationNotAttempted)
			}
		}
	}
	resp = addParts(first.ProducerID, first.ProducerEpoch, map[string][]int32{"txn-bad": {0}})
	want("AddPartitions", resp.Topics[0].Partitions[0].ErrorCode, nil)

	produce := func(pid int64, epoch int16, seq int32, partition int32) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.Version = 9
		req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr(tid), -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "txn-bad"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = partition
		rp.Records = segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Transactional: true, Idempotent: true,
			ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return send(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	want("produce to a partition not added", produce(first.ProducerID, first.ProducerEpoch, 0, 1), kerr.InvalidTxnState)
	want("produce to an added partition", produce(first.ProducerID, first.ProducerEpoch, 0, 0), nil)

	toc := kmsg.NewPtrTxnOffsetCommitRequest()
	toc.Version = 3
	toc.TransactionalID, toc.Group, toc.ProducerID, toc.ProducerEpoch, toc.Generation = tid, "bad-g", first.ProducerID, first.ProducerEpoch, -1
	tt := kmsg.NewTxnOffsetCommitRequestTopic()
	tt.Topic = "txn-bad"
	tp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	tp.Offset = 1
	tt.Partitions = append(tt.Partitions, tp)
	toc.Topics = append(toc.Topics, tt)
	want("TxnOffsetCommit for a group not added", send(toc).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, kerr.InvalidTxnState)

	// A second init fences the first producer (and aborts its transaction).
	second := initPID(60000)
	want("second init", second.ErrorCode, nil)
	if second.ProducerID != first.ProducerID || second.ProducerEpoch != first.ProducerEpoch+1 {
		t.Fatalf("second init: producer %d epoch %d, want %d epoch %d", second.ProducerID, second.ProducerEpoch, first.ProducerID, first.ProducerEpoch+1)
	}
	want("EndTxn of the fenced epoch (v4)", endTxn(first.ProducerID, first.ProducerEpoch, 4), kerr.ProducerFenced)
	want("EndTxn of the fenced epoch (v1)", endTxn(first.ProducerID, first.ProducerEpoch, 1), kerr.InvalidProducerEpoch)
	want("AddPartitions of the fenced epoch", addParts(first.ProducerID, first.ProducerEpoch, map[string][]int32{"txn-bad": {0}}).Topics[0].Partitions[0].ErrorCode, kerr.ProducerFenced)
	want("produce of the fenced epoch", produce(first.ProducerID, first.ProducerEpoch, 1, 0), kerr.InvalidProducerEpoch)
}

// TestTxnTimeoutAbortsAndAdvancesLSO proves that a transaction left open
// past its transaction.timeout.ms is aborted by its coordinator: the last
// stable offset (ListOffsets read_committed) then reaches the high
// watermark, the agent counts it (txn_timeouts_total 1, txn_ended_total
// abort 1), and the producer, whose epoch the abort bumped, is fenced.
func TestTxnTimeoutAbortsAndAdvancesLSO(t *testing.T) {
	m := metrics.New()
	c := agenttest.Start(t, agenttest.Options{Agent: func(_ int, cfg *agent.Config) { cfg.Metrics = m }})
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "txn-timeout"); err != nil {
		t.Fatal(err)
	}
	cl := c.Client(t, kgo.TransactionalID("hung"), kgo.TransactionTimeout(time.Second), kgo.DefaultProduceTopic("txn-timeout"))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("hung")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	lso := func() (int64, int64) {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "txn-timeout"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		var out [2]int64
		for i, iso := range []int8{1, 0} {
			req.IsolationLevel = iso
			resp, err := req.RequestWith(ctx, c.Client(t))
			if err != nil {
				t.Fatal(err)
			}
			out[i] = resp.Topics[0].Partitions[0].Offset
		}
		return out[0], out[1]
	}
	if committed, hwm := lso(); committed != 0 || hwm != 1 {
		t.Fatalf("open transaction: read_committed latest %d, read_uncommitted latest %d; want 0 and 1", committed, hwm)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		committed, hwm := lso()
		if committed == hwm && hwm == 2 { // the record and the abort marker
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20s after a 1s timeout: read_committed latest %d, read_uncommitted latest %d; want both 2", committed, hwm)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The LSO moves at the marker's commit; the coordinator counts the
	// abort right after it marks the transaction complete.
	var counted map[string]float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		counted = map[string]float64{}
		mfs, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, mt := range mf.GetMetric() {
				name := mf.GetName()
				for _, l := range mt.GetLabel() {
					name += "/" + l.GetValue()
				}
				counted[name] = mt.GetCounter().GetValue()
			}
		}
		if counted["shale_txn_timeouts_total"] >= 1 || time.Now().After(deadline) {
			break
		}
	}
	if counted["shale_txn_timeouts_total"] != 1 || counted["shale_txn_ended_total/abort"] != 1 {
		t.Errorf("metrics after the timeout: txn_timeouts_total %v, txn_ended_total{abort} %v; want 1 and 1",
			counted["shale_txn_timeouts_total"], counted["shale_txn_ended_total/abort"])
	}
	err := cl.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("commit after the timeout abort: %v, want the producer fenced", err)
	}
}

// TestOrphanTransactionAdopted proves that a transaction whose coordinator
// agent goes away while it is open, and whose producer never returns, is
// adopted by a surviving agent and aborted at its timeout, so the
// partition's last stable offset (read through the survivor) reaches the
// high watermark instead of holding read_committed consumers forever.
func TestOrphanTransactionAdopted(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	agent.SetTxnOrphanSweep(c.Agents[1].Server, time.Millisecond)
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "orphan"); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, c.Agents[0].Addr) // agent 0 coordinates the transaction
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis = 4, kmsg.StringPtr("orphan"), 500
	ir := rc.roundTrip(init).(*kmsg.InitProducerIDResponse)
	if ir.ErrorCode != 0 {
		t.Fatalf("init: %v", kerr.ErrorForCode(ir.ErrorCode))
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.Version, add.TransactionalID, add.ProducerID, add.ProducerEpoch = 3, "orphan", ir.ProducerID, ir.ProducerEpoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = "orphan", []int32{0}
	add.Topics = append(add.Topics, at)
	if code := rc.roundTrip(add).(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("add partitions: %v", kerr.ErrorForCode(code))
	}
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.TransactionID, pr.Acks, pr.TimeoutMillis = 9, kmsg.StringPtr("orphan"), -1, 10000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "orphan"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = segmenttest.Batch(segmenttest.BatchOptions{Records: 3, Transactional: true, Idempotent: true,
		ProducerID: ir.ProducerID, ProducerEpoch: ir.ProducerEpoch})
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	if code := rc.roundTrip(pr).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(code))
	}
	if err := c.Agents[0].Stop(); err != nil {
		t.Fatal(err)
	}
	survivor := c.Client(t, kgo.SeedBrokers(c.Agents[1].Addr))
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.IsolationLevel = 1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "orphan"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := lo.RequestWith(ctx, survivor)
		if err != nil {
			t.Fatal(err)
		}
		if off := resp.Topics[0].Partitions[0].Offset; off == 4 { // 3 records and the abort marker
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("30s after the coordinator left: read_committed latest %d, want 4", off)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAddPartitionsBatchedVerifyOnly proves AddPartitionsToTxn's v4+
// batched form (KIP-890 part 1, what Kafka's partition leaders send): one
// request answers two transactional IDs on their own; a verify-only entry
// answers INVALID_TXN_STATE for a partition not in the ongoing
// transaction, 0 for one in it, and adds nothing, while a plain entry in
// the same request adds its partition.
func TestAddPartitionsBatchedVerifyOnly(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, "txn-verify"); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, c.Agents[0].Addr)
	pids := map[string]*kmsg.InitProducerIDResponse{}
	for _, id := range []string{"verify-a", "verify-b"} {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version, req.TransactionalID, req.TransactionTimeoutMillis = 4, kmsg.StringPtr(id), 60000
		pids[id] = rc.roundTrip(req).(*kmsg.InitProducerIDResponse)
	}
	// verify-a adds partition 0 (v3, as a client does).
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.Version, add.TransactionalID, add.ProducerID, add.ProducerEpoch = 3, "verify-a", pids["verify-a"].ProducerID, pids["verify-a"].ProducerEpoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = "txn-verify", []int32{0}
	add.Topics = append(add.Topics, at)
	if code := rc.roundTrip(add).(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("add verify-a/0: %v", kerr.ErrorForCode(code))
	}
	batch := kmsg.NewPtrAddPartitionsToTxnRequest()
	batch.Version = 4
	for _, e := range []struct {
		id     string
		verify bool
		parts  []int32
	}{{"verify-a", true, []int32{0, 1}}, {"verify-b", false, []int32{1}}} {
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = e.id, pids[e.id].ProducerID, pids[e.id].ProducerEpoch, e.verify
		tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		tt.Topic, tt.Partitions = "txn-verify", e.parts
		tx.Topics = append(tx.Topics, tt)
		batch.Transactions = append(batch.Transactions, tx)
	}
	resp := rc.roundTrip(batch).(*kmsg.AddPartitionsToTxnResponse)
	got := map[string]int16{}
	for _, tx := range resp.Transactions {
		for _, tt := range tx.Topics {
			for _, p := range tt.Partitions {
				got[fmt.Sprintf("%s/%d", tx.TransactionalID, p.Partition)] = p.ErrorCode
			}
		}
	}
	want := map[string]int16{"verify-a/0": 0, "verify-a/1": kerr.InvalidTxnState.Code, "verify-b/1": 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batched answer %v, want %v", got, want)
	}
	ds, err := adm.DescribeTransactions(ctx, "verify-a", "verify-b")
	if err != nil {
		t.Fatal(err)
	}
	if a := ds["verify-a"].Topics["txn-verify"]; len(a) != 1 {
		t.Errorf("verify-a's partitions after a verify-only request: %v, want only 0", a)
	}
	if b := ds["verify-b"]; b.State != "Ongoing" || len(b.Topics["txn-verify"]) != 1 {
		t.Errorf("verify-b after its batched add: %+v, want Ongoing with partition 1", b)
	}
}
