package agent_test

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestEndTxnV5BumpsEpoch proves EndTxn v5 (KIP-890 part 2) as Kafka 4
// answers it: each end moves the producer to the next epoch, which the
// response carries; a late batch of the ended transaction (its old epoch)
// is refused; a retry of the end succeeds with the new epoch while the
// other outcome is INVALID_TXN_STATE; a commit with no transaction is
// INVALID_TXN_STATE and an abort with none only bumps the epoch; an epoch
// two behind is PRODUCER_FENCED. At the last epoch (32766) the end moves
// the producer to a new producer ID, epoch 0, and a retry with the old ID
// succeeds. A read_committed consumer then reads exactly the two committed
// records.
func TestEndTxnV5BumpsEpoch(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	const topic, tid = "txn-v5", "v5-txn"
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, c.Agents[0].Addr)
	want := func(what string, got int16, want error) {
		t.Helper()
		if err := kerr.ErrorForCode(got); !errors.Is(err, want) && !(want == nil && got == 0) {
			t.Errorf("%s: error %v, want %v", what, err, want)
		}
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis = 5, kmsg.StringPtr(tid), 60000
	ir := rc.roundTrip(init).(*kmsg.InitProducerIDResponse)
	want("init", ir.ErrorCode, nil)
	pid, epoch := ir.ProducerID, ir.ProducerEpoch

	add := func(pid int64, epoch int16) int16 {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch = 3, tid, pid, epoch
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		req.Topics = append(req.Topics, rt)
		return rc.roundTrip(req).(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode
	}
	produce := func(pid int64, epoch int16, seq int32, value string) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.TransactionID, req.Acks, req.TimeoutMillis = 9, kmsg.StringPtr(tid), -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Transactional: true, Idempotent: true,
			ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Value: []byte(value)})
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rc.roundTrip(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	end := func(pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
		req := kmsg.NewPtrEndTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = 5, tid, pid, epoch, commit
		return rc.roundTrip(req).(*kmsg.EndTxnResponse)
	}
	wantEnd := func(what string, r *kmsg.EndTxnResponse, wantPID int64, wantEpoch int16) {
		t.Helper()
		want(what, r.ErrorCode, nil)
		if r.ProducerID != wantPID || r.ProducerEpoch != wantEpoch {
			t.Errorf("%s: next producer %d epoch %d, want %d epoch %d", what, r.ProducerID, r.ProducerEpoch, wantPID, wantEpoch)
		}
	}

	want("add", add(pid, epoch), nil)
	want("produce c1", produce(pid, epoch, 0, "c1"), nil)
	wantEnd("commit", end(pid, epoch, true), pid, epoch+1)
	wantEnd("commit retried", end(pid, epoch, true), pid, epoch+1)
	want("the retry as an abort", end(pid, epoch, false).ErrorCode, kerr.InvalidTxnState)
	if code := produce(pid, epoch, 1, "late"); code == 0 {
		t.Errorf("a late batch at the ended transaction's epoch was accepted")
	}
	want("commit with no transaction", end(pid, epoch+1, true).ErrorCode, kerr.InvalidTxnState)
	wantEnd("abort with no transaction", end(pid, epoch+1, false), pid, epoch+2)
	want("end two epochs behind", end(pid, epoch, true).ErrorCode, kerr.ProducerFenced)
	want("end of another producer", end(pid+1, 0, true).ErrorCode, kerr.InvalidProducerIDMapping)
	epoch += 2
	want("add a", add(pid, epoch), nil)
	want("produce a", produce(pid, epoch, 0, "a"), nil)
	wantEnd("abort", end(pid, epoch, false), pid, epoch+1)
	epoch++

	// The last epoch: set in etcd behind the agent's back, then an add
	// at the agent's cached epoch fails on the state's revision (the
	// agent reads the state again) and the next one sees 32766.
	resp, err := c.Etcd.Get(ctx, c.Namespace+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var key string
	for _, kv := range resp.Kvs {
		if k := string(kv.Key); strings.Contains(k, "/txns/"+tid+"/") && strings.HasSuffix(k, "/state") {
			key = k
		}
	}
	if key == "" {
		t.Fatalf("no state key of %s in etcd", tid)
	}
	got, err := c.Etcd.Get(ctx, key)
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("read %s: %v", key, err)
	}
	var st map[string]any
	if err := json.Unmarshal(got.Kvs[0].Value, &st); err != nil {
		t.Fatal(err)
	}
	st["epoch"] = math.MaxInt16 - 1
	raw, _ := json.Marshal(st)
	if _, err := c.Etcd.Put(ctx, key, string(raw)); err != nil {
		t.Fatal(err)
	}
	if code := add(pid, epoch); code == 0 {
		t.Fatalf("add at the epoch the agent cached: accepted after etcd moved to %d", math.MaxInt16-1)
	}
	last := int16(math.MaxInt16 - 1)
	want("add at the last epoch", add(pid, last), nil)
	want("produce c2", produce(pid, last, 0, "c2"), nil)
	r := end(pid, last, true)
	want("commit at the last epoch", r.ErrorCode, nil)
	if r.ProducerID == pid || r.ProducerID < 0 || r.ProducerEpoch != 0 {
		t.Errorf("commit at the last epoch: next producer %d epoch %d, want a new producer ID at epoch 0", r.ProducerID, r.ProducerEpoch)
	}
	wantEnd("commit at the last epoch retried", end(pid, last, true), r.ProducerID, 0)
	if code := produce(pid, last, 1, "late"); code == 0 {
		t.Errorf("a late batch of the old producer ID was accepted")
	}

	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var vals []string
	for len(vals) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { vals = append(vals, string(r.Value)) })
	}
	if !slices.Equal(vals, []string{"c1", "c2"}) {
		t.Errorf("read_committed read %q, want [c1 c2]", vals)
	}
}
