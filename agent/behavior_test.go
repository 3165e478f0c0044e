package agent_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

func fetchReq(topic string, maxWaitMs, minBytes, maxBytes int32, parts map[int32]int64, partMax int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWaitMs, minBytes, maxBytes
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < int32(len(parts)); p++ {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, parts[p], partMax
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// TestPipelinedProducesAnsweredInOrder proves produce requests pipelined on
// one connection are answered in request order with ascending offsets.
func TestPipelinedProducesAnsweredInOrder(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "pipe"); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, c.Agents[0].Addr)
	const n = 20
	var corrs []int32
	for i := range n {
		b := segmenttest.Batch(segmenttest.BatchOptions{Records: 1 + i%3, Value: []byte{byte(i)}})
		corrs = append(corrs, rc.send(produceReq(9, "pipe", 0, b)))
	}
	last := int64(-1)
	for i, want := range corrs {
		corr, body, err := rc.readFrame(true)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if corr != want {
			t.Fatalf("answer %d has correlation ID %d, want %d", i, corr, want)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		if err := resp.ReadFrom(body); err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset <= last {
			t.Fatalf("answer %d: error %d base offset %d after %d", i, p.ErrorCode, p.BaseOffset, last)
		}
		last = p.BaseOffset
	}
}

// TestFetchLongPoll proves a fetch waiting for data is answered with the
// records produced meanwhile through another agent, and that a fetch with
// nothing to read is answered empty when its wait ends.
func TestFetchLongPoll(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "poll"); err != nil {
		t.Fatal(err)
	}
	empty := dialRaw(t, c.Agents[0].Addr).roundTrip(fetchReq("poll", 50, 1, 1<<20, map[int32]int64{0: 0}, 1<<20)).(*kmsg.FetchResponse)
	if p := empty.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 0 {
		t.Fatalf("fetch of an empty partition: %+v", p)
	}

	fc := dialRaw(t, c.Agents[0].Addr)
	fc.send(fetchReq("poll", 30000, 1, 1<<20, map[int32]int64{0: 0}, 1<<20))
	pc := dialRaw(t, c.Agents[1].Addr)
	b := segmenttest.Batch(segmenttest.BatchOptions{Records: 4, Value: []byte("late")})
	if code := produceCode(t, pc, produceReq(9, "poll", 0, b)); code != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(code))
	}
	_, body, err := fc.readFrame(true)
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 12
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.HighWatermark != 4 || len(p.RecordBatches) == 0 {
		t.Fatalf("long poll answered %+v, want the 4 records produced meanwhile", p)
	}
}

// TestFetchMaxBytes proves the response and partition byte limits: the first
// batch is returned even when larger, later partitions only within what is
// left, and every partition reports its offsets.
func TestFetchMaxBytes(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 2, -1, nil, "limits"); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, c.Agents[0].Addr)
	for p := range int32(2) {
		for range 3 {
			b := segmenttest.Batch(segmenttest.BatchOptions{Value: make([]byte, 1000)})
			if code := produceCode(t, rc, produceReq(9, "limits", p, b)); code != 0 {
				t.Fatalf("produce: %v", kerr.ErrorForCode(code))
			}
		}
	}
	tests := []struct {
		name             string
		maxBytes, partMx int32
		wantBatches      [2]int
	}{
		{"everything", 1 << 20, 1 << 20, [2]int{3, 3}},
		{"one byte", 1, 1 << 20, [2]int{1, 0}},
		{"partition limit", 1 << 20, 1, [2]int{1, 0}},
		{"room for two", 2200, 1 << 20, [2]int{2, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := rc.roundTrip(fetchReq("limits", 0, 1, tc.maxBytes, map[int32]int64{0: 0, 1: 0}, tc.partMx)).(*kmsg.FetchResponse)
			for i, p := range resp.Topics[0].Partitions {
				if p.ErrorCode != 0 || p.HighWatermark != 3 {
					t.Fatalf("partition %d: %+v", i, p)
				}
				var rb kmsg.RecordBatch
				n, rest := 0, p.RecordBatches
				for len(rest) > 0 {
					if err := rb.ReadFrom(rest); err != nil {
						t.Fatal(err)
					}
					rest = rest[12+rb.Length:]
					n++
				}
				if n != tc.wantBatches[i] {
					t.Errorf("partition %d: %d batches, want %d", i, n, tc.wantBatches[i])
				}
			}
		})
	}
}

// TestAgentRegistration proves live agents are the brokers of Metadata with
// distinct node IDs, and that a stopped agent disappears from it.
func TestAgentRegistration(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 3})
	brokers := func(addr string) map[int32]string {
		resp := dialRaw(t, addr).roundTrip(kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse)
		out := map[int32]string{}
		for _, b := range resp.Brokers {
			out[b.NodeID] = b.Host
		}
		return out
	}
	if got := brokers(c.Agents[0].Addr); len(got) != 3 {
		t.Fatalf("brokers %v, want 3", got)
	}
	stopped := c.Agents[2].Server.NodeID()
	if err := c.Agents[2].Stop(); err != nil {
		t.Fatal(err)
	}
	got := brokers(c.Agents[1].Addr)
	if _, ok := got[stopped]; ok || len(got) != 2 {
		t.Fatalf("brokers %v after stopping node %d", got, stopped)
	}
}

// TestAutoCreateDisabled proves Metadata does not create topics when
// auto-creation is off, nor when the request forbids it, and that the
// request that creates one gets LEADER_NOT_AVAILABLE first, as in Kafka.
func TestAutoCreateDisabled(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2, Agent: func(i int, cfg *agent.Config) { cfg.AutoCreateTopics = i == 1 }})
	ask := func(addr string, version int16, allow bool) int16 {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = version
		req.AllowAutoTopicCreation = allow
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr("maybe")
		req.Topics = append(req.Topics, mt)
		return dialRaw(t, addr).roundTrip(req).(*kmsg.MetadataResponse).Topics[0].ErrorCode
	}
	if code := ask(c.Agents[0].Addr, 12, true); code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("auto-create off: %v", kerr.ErrorForCode(code))
	}
	if code := ask(c.Agents[1].Addr, 12, false); code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("request forbids auto-create: %v", kerr.ErrorForCode(code))
	}
	// Before v4 the request cannot forbid it. The request that creates it
	// is answered LEADER_NOT_AVAILABLE, as Kafka answers it; the next one,
	// through either agent, shows the topic.
	if code := ask(c.Agents[1].Addr, 3, false); code != kerr.LeaderNotAvailable.Code {
		t.Fatalf("auto-create at v3: %v, want LEADER_NOT_AVAILABLE", kerr.ErrorForCode(code))
	}
	for i := range 2 {
		if code := ask(c.Agents[i].Addr, 3, false); code != 0 {
			t.Fatalf("agent %d after auto-create at v3: %v", i, kerr.ErrorForCode(code))
		}
	}
}

// TestCloseEndsLongPoll proves Close returns while a long poll is in flight
// and ends its connection: a graceful close answers the poll early (with
// whatever is there) when it had been read, and the connection closes.
func TestCloseEndsLongPoll(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "closing"); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, c.Agents[0].Addr)
	// The ApiVersions answer proves the connection is being served before
	// Close; the fetch after it waits up to a minute.
	rc.roundTrip(kmsg.NewPtrApiVersionsRequest())
	rc.send(fetchReq("closing", 60000, 1, 1<<20, map[int32]int64{0: 0}, 1<<20))
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Agents[0].Server.Close(cctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	rc.expectAnsweredThenClosed()
}

// TestReRegisterAfterLeaseLoss proves an agent whose etcd lease is revoked
// registers itself again with the same node ID.
func TestReRegisterAfterLeaseLoss(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agent: func(_ int, cfg *agent.Config) {
		cfg.NodeID, cfg.AgentTTL = -1, time.Second // quick keep-alives notice the loss sooner
	}})
	ctx := testCtx(t, time.Minute)
	node := c.Agents[0].Server.NodeID()
	resp, err := c.Etcd.Get(ctx, c.Namespace+"/agents/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("agent key: %v %+v", err, resp)
	}
	if _, err := c.Etcd.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	for {
		agents, err := c.Meta.ListAgents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(agents) == 1 && agents[0].NodeID == node {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("agent not registered again: %v", agents)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestProduceTimesOutWhenBucketFails proves a produce that cannot be made
// durable within its timeout is answered REQUEST_TIMED_OUT, never success,
// and that producing works again once the bucket is back.
func TestProduceTimesOutWhenBucketFails(t *testing.T) {
	var broken atomic.Bool
	c := agenttest.Start(t, agenttest.Options{
		Store: func(s s3tier.Store) s3tier.Store {
			return s3tier.Faulty(s, func(op, _ string) error {
				if op == s3tier.OpPut && broken.Load() {
					return errors.New("bucket unavailable")
				}
				return nil
			})
		},
		Engine:   func(_ int, cfg *engine.Config) { cfg.UploadTimeout = 2 * time.Second },
		LogLevel: slog.LevelError,
	})
	ctx := testCtx(t, time.Minute)
	if _, err := c.Admin(t).CreateTopic(ctx, 1, -1, nil, "durable"); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, c.Agents[0].Addr)
	b := segmenttest.Batch(segmenttest.BatchOptions{Records: 2})
	broken.Store(true)
	req := produceReq(9, "durable", 0, b)
	req.TimeoutMillis = 300
	if code := produceCode(t, rc, req); code != kerr.RequestTimedOut.Code {
		t.Fatalf("produce with a failing bucket: %v, want REQUEST_TIMED_OUT", kerr.ErrorForCode(code))
	}
	broken.Store(false)
	if code := produceCode(t, rc, produceReq(9, "durable", 0, b)); code != 0 {
		t.Fatalf("produce after the bucket recovered: %v", kerr.ErrorForCode(code))
	}
}

// TestMetadataTopicSelection proves how each Metadata version selects
// topics: v0's empty list and v1+'s null list mean all, v1+'s empty list
// none, and v10+ finds topics by ID (UNKNOWN_TOPIC_ID for an unknown one).
func TestMetadataTopicSelection(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	created, err := c.Admin(t).CreateTopic(ctx, 2, -1, nil, "md")
	if err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, c.Agents[0].Addr)
	ask := func(version int16, topics []kmsg.MetadataRequestTopic) *kmsg.MetadataResponse {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = version
		req.Topics = topics
		return rc.roundTrip(req).(*kmsg.MetadataResponse)
	}
	// All topics: "md" and the internal __consumer_offsets and
	// __transaction_state (IsInternal from v1).
	all := func(ts []kmsg.MetadataResponseTopic) bool {
		return len(ts) == 3 && *ts[0].Topic == "md" && *ts[1].Topic == "__consumer_offsets" && *ts[2].Topic == "__transaction_state"
	}
	if resp := ask(0, []kmsg.MetadataRequestTopic{}); !all(resp.Topics) {
		t.Errorf("v0 empty list: %+v", resp.Topics)
	}
	if resp := ask(1, nil); !all(resp.Topics) || resp.Topics[0].IsInternal || !resp.Topics[1].IsInternal || !resp.Topics[2].IsInternal {
		t.Errorf("v1 null list: %+v", resp.Topics)
	}
	if resp := ask(1, []kmsg.MetadataRequestTopic{}); len(resp.Topics) != 0 {
		t.Errorf("v1 empty list: %+v", resp.Topics)
	}
	byID := kmsg.NewMetadataRequestTopic()
	byID.TopicID = created.ID
	resp := ask(12, []kmsg.MetadataRequestTopic{byID})
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != "md" || len(resp.Topics[0].Partitions) != 2 {
		t.Errorf("v12 by ID: %+v", resp.Topics)
	}
	byID.TopicID = [16]byte{9}
	if resp := ask(12, []kmsg.MetadataRequestTopic{byID}); resp.Topics[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Errorf("v12 unknown ID: %v", kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	if resp := ask(13, nil); resp.ErrorCode != 0 || resp.ClusterID == nil || *resp.ClusterID == "" || resp.ControllerID < 0 {
		t.Errorf("v13: error %d cluster %v controller %d", resp.ErrorCode, resp.ClusterID, resp.ControllerID)
	}
}
