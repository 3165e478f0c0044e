package agent_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// gateStore holds the first Put after arm, and any later Put of the same
// key (a hedged upload), until release: an object uploaded but not yet
// committed to etcd, for as long as a test needs.
type gateStore struct {
	s3tier.Store
	mu      sync.Mutex
	armed   bool
	key     string        // the held object's
	held    chan struct{} // closed when the Put is held
	release chan struct{}
}

func (g *gateStore) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed, g.key, g.held, g.release = true, "", make(chan struct{}), make(chan struct{})
}

func (g *gateStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	g.mu.Lock()
	first := g.armed
	hold := first || key == g.key
	if first {
		g.armed, g.key = false, key
	}
	held, release := g.held, g.release
	g.mu.Unlock()
	if first {
		close(held)
	}
	if hold {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Store.Put(ctx, key, body, size)
}

// TestTxnLateBatchRefused proves the KIP-890 part 1 race closed: a
// transactional produce verified (transaction Ongoing, partition added)
// whose write commits only after the transaction's abort marker reached
// its partition (a client that aborted with the produce in flight) is
// refused with INVALID_TXN_STATE and never written, so it opens no
// transaction that no coordinator knows (a hanging transaction, which
// would hold the partition's last stable offset forever). The produce
// goes to the agent that does not coordinate the ID and its object's
// upload is held until the abort is answered; partition 0 had a batch of
// the transaction before (its marker closes a transaction), partition 1
// none (its marker finds nothing to close). Part 1 is spoken at Kafka
// 3.5's versions (Produce v9, EndTxn v3), as librdkafka 2.0 sends them;
// under part 2 (Produce v12, EndTxn v5) the abort bumps the epoch, and
// the late batch is INVALID_PRODUCER_EPOCH.
func TestTxnLateBatchRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		txnVer   int16
		versions *kversion.Versions
		want     error
	}{
		{"part1", 1, kversion.V3_5_0(), kerr.InvalidTxnState},
		{"part2", 2, kversion.V4_0_0(), kerr.InvalidProducerEpoch},
	} {
		t.Run(tc.name, func(t *testing.T) { testTxnLateBatch(t, tc.txnVer, tc.versions, tc.want) })
	}
}

func testTxnLateBatch(t *testing.T, txnVer int16, versions *kversion.Versions, wantLate error) {
	gate := &gateStore{}
	c := agenttest.Start(t, agenttest.Options{Agents: 2,
		Agent: func(_ int, cfg *agent.Config) { cfg.TransactionVersion = txnVer },
		Store: func(s s3tier.Store) s3tier.Store { gate.Store = s; return gate }})
	ctx := testCtx(t, time.Minute)
	const topic, tid = "txn-late", "late-batch"
	adm := c.Admin(t)
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	maxv := kgo.MaxVersions(versions)
	cl := c.Client(t, maxv)
	want := func(what string, got int16, want error) { t.Helper(); requireCode(t, what, got, want) }
	pid, epoch := initTxnID(ctx, t, cl, tid)
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = tid, pid, epoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = topic, []int32{0, 1}
	add.Topics = append(add.Topics, at)
	ar, err := add.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ar.Topics[0].Partitions {
		want("add partitions", p.ErrorCode, nil)
	}
	ds, err := adm.DescribeTransactions(ctx, tid)
	if err != nil || ds[tid].Err != nil {
		t.Fatalf("describe: %v %v", err, ds[tid].Err)
	}
	other := c.Agents[0].Addr // the agent that does not coordinate tid
	if c.Agents[0].Server.NodeID() == ds[tid].Coordinator {
		other = c.Agents[1].Addr
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(other), maxv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pcl.Close)
	produce := func(ctx context.Context, seqs map[int32]int32) (*kmsg.ProduceResponse, error) {
		req := kmsg.NewPtrProduceRequest()
		req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr(tid), -1, 20000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		for p, seq := range seqs {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = p
			rp.Records = segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Transactional: true, Idempotent: true,
				ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Value: []byte("late")})
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := pcl.SeedBrokers()[0].Request(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.(*kmsg.ProduceResponse), nil
	}
	first, err := produce(ctx, map[int32]int32{0: 0})
	if err != nil {
		t.Fatal(err)
	}
	want("first batch to partition 0", first.Topics[0].Partitions[0].ErrorCode, nil)

	gate.arm()
	type answer struct {
		resp *kmsg.ProduceResponse
		err  error
	}
	late := make(chan answer, 1)
	go func() {
		resp, err := produce(ctx, map[int32]int32{0: 1, 1: 0})
		late <- answer{resp, err}
	}()
	select {
	case <-gate.held: // verified, uploading, not committed
	case <-ctx.Done():
		t.Fatal("the late produce's upload never started")
	}
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = tid, pid, epoch, false
	er, err := end.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want("abort", er.ErrorCode, nil)
	waitTxnPhase(ctx, t, adm, tid, "CompleteAbort")
	close(gate.release)
	a := <-late
	if a.err != nil {
		t.Fatal(a.err)
	}
	for _, p := range a.resp.Topics[0].Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); !errors.Is(err, wantLate) {
			t.Errorf("batch to partition %d committing after the abort: error %v at offset %d, want %v",
				p.Partition, err, p.BaseOffset, wantLate)
		}
	}

	// Nothing of it is written; no transaction is left open.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p, wantEnd := range map[int32]int64{0: 2, 1: 0} { // partition 0: the first batch and the marker
		e, _ := ends.Lookup(topic, p)
		s, _ := stable.Lookup(topic, p)
		if e.Err != nil || s.Err != nil || e.Offset != wantEnd || s.Offset != wantEnd {
			t.Errorf("partition %d: end offset %d (%v), last stable offset %d (%v), want both %d",
				p, e.Offset, e.Err, s.Offset, s.Err, wantEnd)
		}
	}
}

// waitTxnPhase waits until DescribeTransactions reports tid in state.
func waitTxnPhase(ctx context.Context, t *testing.T, adm *kadm.Client, tid, state string) {
	t.Helper()
	var last string
	for ctx.Err() == nil {
		ds, err := adm.DescribeTransactions(ctx, tid)
		if err == nil && ds[tid].Err == nil {
			if last = ds[tid].State; last == state {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("transaction %s: state %q, want %q", tid, last, state)
}

// requireCode fails t now unless got is want's code (nil: no error).
func requireCode(t *testing.T, what string, got int16, want error) {
	t.Helper()
	if err := kerr.ErrorForCode(got); !errors.Is(err, want) && !(want == nil && got == 0) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// initTxnID sends InitProducerId for tid (a minute's timeout) through cl,
// to its coordinator, and returns the producer ID and epoch.
func initTxnID(ctx context.Context, t *testing.T, cl *kgo.Client, tid string) (int64, int16) {
	t.Helper()
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr(tid), 60000
	ir, err := init.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	requireCode(t, "init", ir.ErrorCode, nil)
	return ir.ProducerID, ir.ProducerEpoch
}
