package agent_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// txnV2Cluster starts agents advertising transaction.version 2.
func txnV2Cluster(t *testing.T, agents int) *agenttest.Cluster {
	return agenttest.Start(t, agenttest.Options{Agents: agents, Agent: func(_ int, cfg *agent.Config) { cfg.TransactionVersion = 2 }})
}

// TestTxnV2ImplicitAdds proves KIP-890 part 2's implicit adds, sent raw
// to the agent that does not coordinate the transactional ID: a Produce
// v12 to a partition never added starts the transaction with it, a
// TxnOffsetCommit v5+ for a group never added (no AddOffsetsToTxn; the
// client sends v6, topics by ID) adds the group, EndTxn v5 commits both (the record read_committed, the
// offset the group's), and a Produce v11 to a partition not added is
// still INVALID_TXN_STATE.
func TestTxnV2ImplicitAdds(t *testing.T) {
	c := txnV2Cluster(t, 2)
	ctx := testCtx(t, time.Minute)
	const topic, tid, group = "txn-v2", "v2-implicit", "v2-group"
	adm := c.Admin(t)
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	want := func(what string, got int16, want error) { t.Helper(); requireCode(t, what, got, want) }
	cl := c.Client(t)
	pid, epoch := initTxnID(ctx, t, cl, tid)
	ds, err := adm.DescribeTransactions(ctx, tid)
	if err != nil || ds[tid].Err != nil {
		t.Fatalf("describe: %v %v", err, ds[tid].Err)
	}
	// The agent that does not coordinate tid answers the implicit adds.
	other := c.Agents[0].Addr
	if c.Agents[0].Server.NodeID() == ds[tid].Coordinator {
		other = c.Agents[1].Addr
	}
	rc := dialRaw(t, other)
	produce := func(version int16, partition int32, seq int32, value string) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.TransactionID, req.Acks, req.TimeoutMillis = version, kmsg.StringPtr(tid), -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = partition
		rp.Records = segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Transactional: true, Idempotent: true,
			ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Value: []byte(value)})
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rc.roundTrip(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	want("produce v12 to a partition never added", produce(12, 0, 0, "v2"), nil)
	want("produce v11 to a partition not added", produce(11, 1, 0, "v1"), kerr.InvalidTxnState)
	ds, err = adm.DescribeTransactions(ctx, tid)
	if d := ds[tid]; err != nil || d.State != "Ongoing" || len(d.Topics[topic]) != 1 {
		t.Fatalf("after the implicit add: %+v %v, want Ongoing with %s/0", d, err, topic)
	}

	toc := kmsg.NewPtrTxnOffsetCommitRequest()
	toc.Version = 5
	toc.TransactionalID, toc.Group, toc.ProducerID, toc.ProducerEpoch, toc.Generation = tid, group, pid, epoch, -1
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	tt := kmsg.NewTxnOffsetCommitRequestTopic()
	tt.Topic, tt.TopicID = topic, md.Topics[topic].ID // the client picks v5 (names) or v6 (IDs)
	tp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	tp.Partition, tp.Offset = 1, 42
	tt.Partitions = append(tt.Partitions, tp)
	toc.Topics = append(toc.Topics, tt)
	tr, err := toc.RequestWith(ctx, cl) // to the group's coordinator
	if err != nil {
		t.Fatal(err)
	}
	want("TxnOffsetCommit v5+ for a group never added", tr.Topics[0].Partitions[0].ErrorCode, nil)

	end := kmsg.NewPtrEndTxnRequest()
	end.Version, end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = 5, tid, pid, epoch, true
	er, err := end.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want("EndTxn v5", er.ErrorCode, nil)
	if er.ProducerEpoch != epoch+1 {
		t.Errorf("EndTxn v5: next epoch %d, want %d", er.ProducerEpoch, epoch+1)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if o, ok := offs.Lookup(topic, 1); err != nil || !ok || o.At != 42 {
		t.Errorf("group offset of %s/1 after the commit: %+v (found %v) %v, want 42", topic, o, ok, err)
	}
	cons := c.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var vals []string
	for len(vals) < 1 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { vals = append(vals, string(r.Value)) })
	}
	if len(vals) != 1 || vals[0] != "v2" {
		t.Errorf("read_committed read %q, want [v2]", vals)
	}
}

// TestTxnV2ExactlyOnce proves franz-go running KIP-890 part 2 against
// agents that advertise transaction.version 2 (produce v12+ with no
// AddPartitionsToTxn, TxnOffsetCommit v5+ with no AddOffsetsToTxn, EndTxn
// v5): two GroupTransactSessions in one group copy 400 records, and a
// read_committed read of the output has each exactly once; each
// transactional ID's epoch moved once per transaction (EndTxn v5).
func TestTxnV2ExactlyOnce(t *testing.T) {
	c := txnV2Cluster(t, 2)
	ctx := testCtx(t, 2*time.Minute)
	const in, out, group, n = "v2-in", "v2-out", "v2-eos", 400
	adm := c.Admin(t)
	for _, topic := range []string{in, out} {
		if _, err := adm.CreateTopic(ctx, 2, -1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	prod := c.Client(t, kgo.DefaultProduceTopic(in))
	for i := range n {
		prod.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%03d", i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce input %d: %v", i, err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil || t.Failed() {
		t.Fatalf("produce input: %v", err)
	}
	var mu sync.Mutex
	commits := map[string]int{}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, id := range []string{"v2-a", "v2-b"} {
		s, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.Addrs()...), kgo.TransactionalID(id),
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.DefaultProduceTopic(out),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets())
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer s.Close()
			for wctx.Err() == nil {
				fs := s.PollRecords(wctx, 25)
				if fs.NumRecords() == 0 {
					continue
				}
				if err := s.Begin(); err != nil {
					t.Errorf("%s: begin: %v", id, err)
					return
				}
				fs.EachRecord(func(r *kgo.Record) {
					s.Produce(wctx, &kgo.Record{Value: append([]byte("out-"), r.Value...)}, nil)
				})
				committed, err := s.End(wctx, kgo.TryCommit)
				if err != nil {
					if wctx.Err() == nil {
						t.Errorf("%s: end: %v", id, err)
					}
					return
				}
				if committed {
					mu.Lock()
					commits[id]++
					mu.Unlock()
				}
			}
		})
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		offs, err := adm.FetchOffsets(ctx, group)
		var sum int64
		if err == nil {
			offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		}
		if sum >= n {
			break
		}
		if time.Now().After(deadline) || t.Failed() {
			stop()
			wg.Wait()
			t.Fatalf("the group committed %d of %d input records", sum, n)
		}
	}
	stop()
	wg.Wait()

	cons := c.Client(t, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	seen := map[string]int{}
	total := 0
	for idle := time.Now(); time.Since(idle) < 3*time.Second; {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cons.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++; idle = time.Now() })
	}
	for i := range n {
		if k := seen[fmt.Sprintf("out-%03d", i)]; k != 1 {
			t.Errorf("input %03d is in the output %d times", i, k)
		}
	}
	if total != n {
		t.Errorf("read_committed read %d output records, want %d", total, n)
	}
	ds, err := adm.DescribeTransactions(ctx, "v2-a", "v2-b")
	if err != nil {
		t.Fatal(err)
	}
	for id, k := range commits {
		// One epoch for the init, one more per ended transaction.
		if d := ds[id]; d.Err != nil || int(d.ProducerEpoch) < k {
			t.Errorf("%s: %d commits, epoch %d (%v): want the epoch bumped by each end (EndTxn v5)", id, k, d.ProducerEpoch, d.Err)
		}
	}
	t.Logf("commits per transactional ID: %v", commits)
}
