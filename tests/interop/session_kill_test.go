package interop

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestKillAgentDuringIncrementalFetches proves fetch sessions (KIP-227)
// lose nothing at an agent's SIGKILL: a franz-go consumer (which fetches
// through incremental sessions) reading from both agents in small fetches
// has agent A killed under it halfway, opens new sessions on B, and reads
// every record exactly once, in order, at dense offsets, including those
// written after the kill.
func TestKillAgentDuringIncrementalFetches(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic, perRound = "session-kill", 3000
	c.CreateTopic(t, 1, topic, numPartitions)
	prod := c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(cluster.DialTo(c.Addr(1))), kgo.DefaultProduceTopic(topic))
	produce := func(from int) {
		t.Helper()
		var rs []*kgo.Record
		for i := from; i < from+perRound; i++ {
			rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprint(i % 97)), Value: []byte(fmt.Sprintf("s-%06d", i))})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	produce(0)

	cons := c.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(2048), kgo.FetchMaxWait(200*time.Millisecond), kgo.RetryTimeout(60*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seen := map[string]bool{}
	next := map[int32]int64{}
	killed := false
	for len(seen) < 2*perRound {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(seen), 2*perRound)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("partition %d: %v (retried)", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next[r.Partition] {
				t.Fatalf("partition %d: record at offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			if seen[string(r.Value)] {
				t.Fatalf("record %s read twice", r.Value)
			}
			seen[string(r.Value)] = true
		})
		if !killed && len(seen) >= perRound/2 {
			c.Kill(0)
			killed = true
			t.Logf("killed agent 0 after %d records read", len(seen))
			produce(perRound)
		}
	}
	for i := range 2 * perRound {
		if v := fmt.Sprintf("s-%06d", i); !seen[v] {
			t.Fatalf("record %s never read", v)
		}
	}
}
