package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { Main(m) }

// TestKillRestartKeepsAcknowledgedRecords proves the harness's Kill and
// Restart (same addresses, processes really replaced) and, through them,
// DESIGN invariant 6: records acknowledged by agent 0 are read back through
// agent 1 after both agents were SIGKILLed and restarted, since agents keep
// nothing that etcd and the bucket do not hold.
func TestKillRestartKeepsAcknowledgedRecords(t *testing.T) {
	c := Start(t, Options{Agents: 2})
	addrs := c.Addrs()
	const topic, n = "restart", 100
	c.CreateTopic(t, 0, topic, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acked := produceNumbered(ctx, t, c, 0, topic, n)

	pids := []int{c.agent(0).current().cmd.Process.Pid, c.agent(1).current().cmd.Process.Pid}
	c.Kill(0)
	c.Kill(1)
	c.Restart(0)
	c.Restart(1)
	for i := range 2 {
		if c.Addr(i) != addrs[i] {
			t.Errorf("agent %d moved from %s to %s on restart", i, addrs[i], c.Addr(i))
		}
		if pid := c.agent(i).current().cmd.Process.Pid; pid == pids[i] {
			t.Errorf("agent %d: same pid %d after Kill and Restart", i, pid)
		}
	}

	samePositions(t, acked, readPositions(ctx, t, c, 1, topic, n))
}

// produceNumbered produces n records (values v000, v001, ...) through agent
// i, one ProduceSync, and returns where each was acknowledged: value ->
// "partition/offset".
func produceNumbered(ctx context.Context, t *testing.T, c *Cluster, i int, topic string, n int) map[string]string {
	t.Helper()
	prod := c.Client(t, kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(DialTo(c.Addr(i))), kgo.DefaultProduceTopic(topic))
	defer prod.Close()
	var recs []*kgo.Record
	for k := range n {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(k)), Value: []byte(fmt.Sprintf("v%03d", k))})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce via agent %d: %v", i, err)
	}
	acked := map[string]string{}
	for _, r := range recs {
		acked[string(r.Value)] = fmt.Sprintf("%d/%d", r.Partition, r.Offset)
	}
	return acked
}

// readPositions consumes the topic from the start through agent i until it
// has read n distinct values, and returns where each was read: value ->
// "partition/offset". A fetch error or ctx's end fails t.
func readPositions(ctx context.Context, t *testing.T, c *Cluster, i int, topic string, n int) map[string]string {
	t.Helper()
	cons := c.Client(t, kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(DialTo(c.Addr(i))),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cons.Close()
	got := map[string]string{}
	for len(got) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records through agent %d", len(got), n, i)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = fmt.Sprintf("%d/%d", r.Partition, r.Offset) })
	}
	return got
}

// samePositions fails t for each acknowledged record read at another
// position (or not read).
func samePositions(t *testing.T, acked, got map[string]string) {
	t.Helper()
	for v, pos := range acked {
		if got[v] != pos {
			t.Errorf("record %s acknowledged at %s, read at %q", v, pos, got[v])
		}
	}
}
