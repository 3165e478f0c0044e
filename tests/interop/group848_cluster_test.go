package interop

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestConsumerGroup848BesideClassic proves a KIP-848 consumer group and a
// classic group consume one topic side by side on two agent processes,
// each group's two members seeded with a different agent: each group reads
// every record, both members reading some (records are produced once the
// members share the partitions), and
// ListGroups (v5) and DescribeGroups report one group as "consumer" and
// the other as "classic".
func TestConsumerGroup848BesideClassic(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2, Args: []string{"--group-consumer-heartbeat-interval", "300ms"}})
	const topic, records = "g848-side", 2000
	c.CreateTopic(t, 0, topic, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type seen struct {
		mu       sync.Mutex
		offsets  map[int32]map[int64]bool
		members  map[string]int
		assigned map[string]int // partitions each member holds now
	}
	consume := func(group string, opts ...kgo.Opt) *seen {
		s := &seen{offsets: map[int32]map[int64]bool{}, members: map[string]int{}, assigned: map[string]int{}}
		for i := range 2 {
			name := group + "-" + strconv.Itoa(i)
			cl := c.Client(t, append([]kgo.Opt{kgo.SeedBrokers(c.Addr(i)), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ClientID(name), kgo.FetchMaxBytes(4 << 10),
				kgo.HeartbeatInterval(300 * time.Millisecond),
				kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
					s.mu.Lock()
					s.assigned[name] += len(a[topic])
					s.mu.Unlock()
				}),
				kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
					s.mu.Lock()
					s.assigned[name] -= len(r[topic])
					s.mu.Unlock()
				}),
			}, opts...)...)
			go func() {
				for ctx.Err() == nil {
					fs := cl.PollRecords(ctx, 50)
					s.mu.Lock()
					fs.EachRecord(func(r *kgo.Record) {
						if s.offsets[r.Partition] == nil {
							s.offsets[r.Partition] = map[int64]bool{}
						}
						s.offsets[r.Partition][r.Offset] = true
						s.members[name]++
					})
					s.mu.Unlock()
				}
			}()
		}
		return s
	}
	next := consume("g848-consumer", kgo.ServerSideBalancer())
	classic := consume("g848-classic")
	// Records are produced once both members of each group hold two
	// partitions, so each member must read some.
	spread := func(s *seen) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, n := range s.assigned {
			if n != 2 {
				return false
			}
		}
		return len(s.assigned) == 2
	}
	for !spread(next) || !spread(classic) {
		if ctx.Err() != nil {
			t.Fatalf("members never shared the partitions: consumer group %v, classic group %v", next.assigned, classic.assigned)
		}
		time.Sleep(50 * time.Millisecond)
	}
	prod := c.Client(t, kgo.DefaultProduceTopic(topic))
	var recs []*kgo.Record
	for i := range records {
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	done := func(s *seen) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := 0
		for _, m := range s.offsets {
			n += len(m)
		}
		return n == records
	}
	for !done(next) || !done(classic) {
		if ctx.Err() != nil {
			t.Fatalf("consumer group done %v, classic group done %v", done(next), done(classic))
		}
		time.Sleep(50 * time.Millisecond)
	}
	adm := kadm.NewClient(c.Client(t))
	for ctx.Err() == nil {
		ls, err := adm.ListGroups(ctx)
		if err == nil {
			if l, ok := ls["g848-consumer"]; ok && l.GroupType == "consumer" && ls["g848-classic"].GroupType == "classic" {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	ds, err := adm.DescribeGroups(ctx, "g848-consumer", "g848-classic")
	if err != nil {
		t.Fatal(err)
	}
	if d := ds["g848-consumer"]; d.Err != nil || d.ProtocolType != "consumer" || len(d.Members) != 2 {
		t.Errorf("consumer group described as %+v", d)
	}
	if d := ds["g848-classic"]; d.Err != nil || d.State != "Stable" || len(d.Members) != 2 {
		t.Errorf("classic group described as %+v", d)
	}
	for _, s := range []*seen{next, classic} {
		s.mu.Lock()
		if len(s.members) != 2 {
			t.Errorf("records were read by %v: want both members", s.members)
		}
		s.mu.Unlock()
	}
}
