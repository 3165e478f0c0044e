package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/engine"
)

// TestTopicLatencyClass proves shale.flush.ms end to end with franz-go: on
// an agent whose own flush interval is a minute, a topic created with a 10
// ms class is acknowledged while a record of a default-class topic still
// waits; once the class is set on that topic (AlterConfigs), the next
// record of the partition seals the waiting one first: both acknowledged,
// in order.
func TestTopicLatencyClass(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Engine: func(_ int, cfg *engine.Config) { cfg.FlushInterval = time.Minute }})
	ctx := testCtx(t, time.Minute)
	adm := c.Admin(t)
	ten := "10"
	if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"shale.flush.ms": &ten}, "class-fast"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, "class-default"); err != nil {
		t.Fatal(err)
	}
	cl := c.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()))
	slow := make(chan *kgo.Record, 2)
	cl.Produce(ctx, &kgo.Record{Topic: "class-default", Value: []byte("waits")}, func(r *kgo.Record, err error) {
		if err != nil {
			t.Errorf("default-class produce: %v", err)
		}
		slow <- r
	})
	// Its own client: a client's first request to a broker is alone in
	// flight until answered.
	fast := c.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()))
	if err := fast.ProduceSync(ctx, &kgo.Record{Topic: "class-fast", Value: []byte("quick")}).FirstErr(); err != nil {
		t.Fatalf("10 ms class produce: %v", err)
	}
	select {
	case <-slow:
		t.Fatal("the default-class record (1 minute interval) was acknowledged with the 10 ms class")
	default:
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "shale.flush.ms", Value: &ten}}, "class-default"); err != nil {
		t.Fatal(err)
	}
	// Agents read topic configs through a cache of topicCacheTTL (1s).
	time.Sleep(1500 * time.Millisecond)
	// Another producer: the first client holds the partition's next batch
	// until its first is answered, as Kafka clients do.
	second := fast.ProduceSync(ctx, &kgo.Record{Topic: "class-default", Value: []byte("after")})
	if err := second.FirstErr(); err != nil {
		t.Fatalf("produce after the class change: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case r := <-slow:
		if r.Offset != 0 || second[0].Record.Offset != 1 {
			t.Fatalf("offsets %d then %d, want 0 then 1", r.Offset, second[0].Record.Offset)
		}
	case <-wctx.Done():
		t.Fatal("the waiting record was not acknowledged after its topic changed class")
	}
}
