package interop

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// saramaGroupHandler marks every record it sees and counts them.
type saramaGroupHandler struct {
	mu   sync.Mutex
	seen map[int32]map[int64]bool
}

func (h *saramaGroupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaGroupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaGroupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		if h.seen[m.Partition] == nil {
			h.seen[m.Partition] = map[int64]bool{}
		}
		h.seen[m.Partition][m.Offset] = true
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func (h *saramaGroupHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.seen {
		n += len(m)
	}
	return n
}

// TestSaramaConsumerGroup proves that two sarama ConsumerGroup members
// (range balancing, auto-commit) share a 6-partition topic through shale's
// coordinator: every record is consumed at least once and the group's
// committed offsets reach every partition's end.
func TestSaramaConsumerGroup(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic, group, records = "sarama-group", "sarama-g", 2000
	c.CreateTopic(t, 0, topic, numPartitions)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod := c.Client(t, kgo.DefaultProduceTopic(topic))
	ends := map[int32]int64{}
	var rest []*kgo.Record
	for i := range records {
		rest = append(rest, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	if err := prod.ProduceSync(ctx, rest...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range rest {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}

	h := &saramaGroupHandler{seen: map[int32]map[int64]bool{}}
	var wg sync.WaitGroup
	for i := range 2 {
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V2_8_0_0
		cfg.ClientID = "shale-sarama-group-" + strconv.Itoa(i)
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		cfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
		cfg.Consumer.Group.Session.Timeout = 6 * time.Second
		cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
		cg, err := sarama.NewConsumerGroup(c.Addrs(), group, cfg)
		if err != nil {
			t.Fatalf("sarama consumer group: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) && ctx.Err() == nil {
					t.Logf("sarama member %d: %v", i, err)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
		t.Cleanup(func() { _ = cg.Close() })
	}
	adm := kadm.NewClient(c.Client(t))
	for {
		done := h.count() >= records
		if done {
			os, err := adm.FetchOffsets(ctx, group)
			if err == nil {
				all := true
				for p, e := range ends {
					if r, ok := os.Lookup(topic, p); !ok || r.At != e {
						all = false
					}
				}
				if all {
					break
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("sarama group consumed %d of %d records; committed offsets never reached %v", h.count(), records, ends)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
}
