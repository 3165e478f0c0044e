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

	prod := c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(DialTo(c.Addr(0))), kgo.DefaultProduceTopic(topic))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("v%03d", i))})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce via agent 0: %v", err)
	}
	prod.Close()
	acked := map[string]string{} // value -> partition/offset
	for _, r := range recs {
		acked[string(r.Value)] = fmt.Sprintf("%d/%d", r.Partition, r.Offset)
	}

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

	cons := c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(DialTo(c.Addr(1))),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]string{}
	for len(got) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records through the restarted agent 1", len(got), n)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = fmt.Sprintf("%d/%d", r.Partition, r.Offset) })
	}
	for v, pos := range acked {
		if got[v] != pos {
			t.Errorf("record %s acknowledged at %s, read at %q", v, pos, got[v])
		}
	}
}
