package agent_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent/agenttest"
)

// ownership tracks which group member owns each partition, from kgo's
// assignment callbacks, and every record each member processed.
type ownership struct {
	t         *testing.T
	mu        sync.Mutex
	owner     map[int32]string
	events    []string
	processed map[int32]map[int64]int // partition -> offset -> times
	next      map[int32]int64         // partition -> last processed + 1
	by        map[string]int          // member -> records processed
	overlaps  int
}

func newOwnership(t *testing.T) *ownership {
	return &ownership{t: t, owner: map[int32]string{}, processed: map[int32]map[int64]int{}, next: map[int32]int64{}, by: map[string]int{}}
}

func (o *ownership) assigned(me string, ps map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, parts := range ps {
		for _, p := range parts {
			if cur, ok := o.owner[p]; ok && cur != me {
				o.overlaps++
				o.t.Errorf("partition %d assigned to %s while %s still owns it", p, me, cur)
			}
			o.owner[p] = me
		}
	}
	o.events = append(o.events, fmt.Sprintf("%s %s assigned %v", time.Now().Format("15:04:05.000"), me, ps))
}

func (o *ownership) revoked(me string, ps map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, parts := range ps {
		for _, p := range parts {
			if o.owner[p] == me {
				delete(o.owner, p)
			}
		}
	}
	o.events = append(o.events, fmt.Sprintf("%s %s revoked %v", time.Now().Format("15:04:05.000"), me, ps))
}

func (o *ownership) process(me string, r *kgo.Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if cur := o.owner[r.Partition]; cur != me {
		o.t.Errorf("%s processed %d/%d owned by %q", me, r.Partition, r.Offset, cur)
	}
	if o.processed[r.Partition] == nil {
		o.processed[r.Partition] = map[int64]int{}
	}
	o.processed[r.Partition][r.Offset]++
	o.by[me]++
	o.next[r.Partition] = max(o.next[r.Partition], r.Offset+1)
}

// nextOf is the offset after the last record processed of partition p.
func (o *ownership) nextOf(p int32) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.next[p]
}

func (o *ownership) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, m := range o.processed {
		n += len(m)
	}
	return n
}

// groupMember runs one kgo group consumer until ctx ends or stop is
// closed, committing what it processed after every poll (rebalances are
// blocked while a poll's records are processed and committed).
func groupMember(t *testing.T, ctx context.Context, seeds []string, group, topic, name string, o *ownership, balancer kgo.GroupBalancer, stop <-chan struct{}) <-chan struct{} {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(balancer),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.RebalanceTimeout(10*time.Second),
		kgo.ClientID(name),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { o.assigned(name, ps) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, ps map[string][]int32) {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				t.Logf("%s: commit on revoke: %v", name, err)
			}
			o.revoked(name, ps)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { o.revoked(name, ps) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cl.Close() // leaves the group
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			fs := cl.PollRecords(pctx, 50)
			cancel()
			time.Sleep(20 * time.Millisecond) // "work", so rebalances happen mid-stream
			fs.EachRecord(func(r *kgo.Record) { o.process(name, r) })
			if len(fs.Records()) > 0 {
				if err := cl.CommitUncommittedOffsets(ctx); err != nil {
					t.Logf("%s: commit: %v", name, err)
				}
			}
			cl.AllowRebalance()
		}
	}()
	return done
}

// TestGroupConsumersRebalance proves that franz-go group consumers
// coordinated by shale process every record at least once while three
// members join and leave, with eager (range) and cooperative-sticky
// balancing: no partition ever has two owners, every record is processed by
// the partition's owner, and the offsets committed in the end equal the end
// of every partition (what was processed).
func TestGroupConsumersRebalance(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	seeds := c.Addrs()
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t, 60*time.Second)
			topic, group := "grp-"+tc.name, "g-"+tc.name
			const partitions, records = 6, 3000
			adm := c.Admin(t)
			if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			prod := c.Client(t, kgo.DefaultProduceTopic(topic))
			var recs []*kgo.Record
			for i := range records {
				recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte("v")})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			o := newOwnership(t)
			stops := []chan struct{}{make(chan struct{}), make(chan struct{}), make(chan struct{})}
			var dones []<-chan struct{}
			waitFor := func(n int, what string) {
				for o.count() < n {
					if ctx.Err() != nil {
						t.Fatalf("%s: processed %d records, want %d; events:\n%v", what, o.count(), n, o.events)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			dones = append(dones, groupMember(t, ctx, seeds, group, topic, "m0", o, tc.balancer, stops[0]))
			waitFor(1, "first member")
			dones = append(dones, groupMember(t, ctx, seeds, group, topic, "m1", o, tc.balancer, stops[1]))
			dones = append(dones, groupMember(t, ctx, seeds, group, topic, "m2", o, tc.balancer, stops[2]))
			time.Sleep(1500 * time.Millisecond)
			close(stops[0]) // m0 leaves
			<-dones[0]
			waitFor(records, "after m0 left")
			// Wait until the remaining members' commits cover everything.
			var committed kadm.OffsetResponses
			for {
				var err error
				committed, err = adm.FetchOffsets(ctx, group)
				if err == nil {
					all := true
					for p := range int32(partitions) {
						if r, ok := committed.Lookup(topic, p); !ok || r.At != o.nextOf(p) {
							all = false
						}
					}
					if all {
						break
					}
				}
				if ctx.Err() != nil {
					o.mu.Lock()
					next := maps.Clone(o.next)
					o.mu.Unlock()
					t.Fatalf("committed offsets %v never matched processed %v", committed, next)
				}
				time.Sleep(50 * time.Millisecond)
			}
			close(stops[1])
			close(stops[2])
			<-dones[1]
			<-dones[2]
			o.mu.Lock()
			defer o.mu.Unlock()
			for p := range int32(partitions) {
				for off := range o.next[p] {
					if o.processed[p][off] == 0 {
						t.Errorf("record %d/%d never processed", p, off)
					}
				}
			}
			dups := 0
			for _, m := range o.processed {
				for _, n := range m {
					dups += n - 1
				}
			}
			t.Logf("%s: %d records processed (%d duplicates; per member %v), %d assignment events", tc.name, records, dups, o.by, len(o.events))
			for _, m := range []string{"m0", "m1", "m2"} {
				if o.by[m] == 0 {
					t.Errorf("member %s processed nothing: the group never spread the work", m)
				}
			}
			if t.Failed() {
				t.Logf("events:\n%v", o.events)
			}
		})
	}
}
