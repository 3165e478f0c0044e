package interop

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// ownership audits which member owns each partition, as the members' own
// callbacks say: assigned adds, revoked and lost remove. A partition
// assigned to a member while another still owns it is a violation.
type ownership struct {
	mu         sync.Mutex
	owner      map[int32]string
	violations []string
}

func (o *ownership) assign(name string, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ps := range m {
		for _, p := range ps {
			if cur, ok := o.owner[p]; ok && cur != name {
				o.violations = append(o.violations, fmt.Sprintf("partition %d assigned to %s while %s owns it", p, name, cur))
			}
			o.owner[p] = name
		}
	}
}

func (o *ownership) drop(name string, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ps := range m {
		for _, p := range ps {
			if o.owner[p] == name {
				delete(o.owner, p)
			}
		}
	}
}

// TestConsumerGroup848KillDuringRevocation SIGKILLs the agent
// coordinating a KIP-848 group at the instant a member is revoking
// partitions: k1 owns all 6 partitions under load, k2 joins, and k1's
// OnPartitionsRevoked holds the revocation unacknowledged until the
// coordinator is dead. The members carry on through the survivors. The
// audit: no partition is ever owned by two members at once (as their
// assign, revoke and lost callbacks tell), committed offsets (polled
// through a survivor) never go back and none committed before the kill is
// lost, every record is processed, the committed offsets reach the log
// ends, and the group settles at 3 partitions each. Without the new
// coordinator's grace (consumer_group.go, Failover), k2 was given
// partitions k1 still owned in 1 of 3 runs. (It replaces the KIP-848 run
// of coordinatorFailover, whose kill came at no particular instant.)
func TestConsumerGroup848KillDuringRevocation(t *testing.T) {
	t.Parallel()
	c := cluster.Start(t, cluster.Options{Agents: 3, Args: []string{"--group-consumer-heartbeat-interval", "500ms", "--group-consumer-session-timeout", "6s"}})
	const topic, group = "grp-revoke-kill", "grp-revoke-kill-g"
	const partitions, records = 6, 6000
	c.CreateTopic(t, 0, topic, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	prod := c.Client(t, kgo.DefaultProduceTopic(topic))
	var recs []*kgo.Record
	for i := range records {
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{}
	for _, r := range recs {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}

	own := &ownership{owner: map[int32]string{}}
	revoking := make(chan struct{}) // closed when k1 starts its first revocation
	killed := make(chan struct{})   // closed once the coordinator is dead
	var revokeOnce sync.Once
	var mu sync.Mutex
	processed := map[int32]map[int64]bool{}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, m := range processed {
			n += len(m)
		}
		return n
	}
	member := func(name string, stop <-chan struct{}) <-chan struct{} {
		cl := c.Client(t,
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ServerSideBalancer(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(), kgo.ClientID(name), kgo.RetryTimeout(30*time.Second),
			// franz-go (v1.22.3) retries a KIP-848 heartbeat against the
			// dead coordinator until a metadata refresh drops that broker;
			// a member with nothing to commit then never reaches the new
			// one (k2 dialed it for over a minute): refresh often, and
			// give up a heartbeat's retries early.
			kgo.RequestRetries(3), kgo.MetadataMaxAge(time.Second), kgo.MetadataMinAge(100*time.Millisecond),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond), kgo.RebalanceTimeout(20*time.Second),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { own.assign(name, m) }),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				if name == "k1" {
					first := false
					revokeOnce.Do(func() { first = true; close(revoking) })
					if first {
						select { // the revocation stays unacknowledged until the kill
						case <-killed:
						case <-ctx.Done():
						}
					}
				}
				own.drop(name, m)
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { own.drop(name, m) }),
		)
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer cl.Close()
			for ctx.Err() == nil {
				select {
				case <-stop:
					return
				default:
				}
				pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
				fs := cl.PollRecords(pctx, 40)
				pcancel()
				mu.Lock()
				fs.EachRecord(func(r *kgo.Record) {
					if processed[r.Partition] == nil {
						processed[r.Partition] = map[int64]bool{}
					}
					processed[r.Partition][r.Offset] = true
				})
				mu.Unlock()
				time.Sleep(30 * time.Millisecond)
				if len(fs.Records()) > 0 {
					if err := cl.CommitUncommittedOffsets(ctx); err != nil {
						t.Logf("%s: commit: %v", name, err)
					}
				}
			}
		}()
		return done
	}
	stop := make(chan struct{})
	d1 := member("k1", stop)
	for count() < 500 {
		if ctx.Err() != nil {
			t.Fatalf("k1 processed %d records alone", count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	coord := coordinatorIndex(t, ctx, c, group, -1)
	survivor := (coord + 1) % 3
	admS := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(survivor)), kgo.Dialer(cluster.DialTo(c.Addr(survivor)))))
	committed := func() map[int32]int64 {
		os, err := admS.FetchOffsets(ctx, group)
		if err != nil {
			return nil
		}
		out := map[int32]int64{}
		os.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
		return out
	}
	var last map[int32]int64
	pollStop, pollDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			select {
			case <-pollStop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			cur := committed()
			for p, o := range cur {
				if o < last[p] {
					t.Errorf("partition %d: committed offset went back from %d to %d", p, last[p], o)
				}
			}
			if cur != nil {
				last = cur
			}
		}
	}()

	d2 := member("k2", stop)
	defer func() { close(stop); <-d1; <-d2 }()
	select {
	case <-revoking:
	case <-ctx.Done():
		t.Fatal("k1 never started revoking partitions for k2")
	}
	before := committed()
	c.Kill(coord)
	close(killed)
	t.Logf("killed coordinator agent %d while k1 was revoking; committed before: %v", coord, before)

	for count() < records {
		if ctx.Err() != nil {
			t.Fatalf("processed %d of %d records", count(), records)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		cur := committed()
		all := true
		for p, e := range ends {
			if cur[p] != e {
				all = false
			}
		}
		if all {
			for p, o := range before {
				if cur[p] < o {
					t.Errorf("partition %d: committed %d before the kill, %d at the end", p, o, cur[p])
				}
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("committed %v never reached the ends %v", cur, ends)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The group settles: each member owns 3 partitions.
	for {
		own.mu.Lock()
		n := map[string]int{}
		for _, m := range own.owner {
			n[m]++
		}
		own.mu.Unlock()
		if n["k1"] == 3 && n["k2"] == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the group never settled at 3 partitions each: %v", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(pollStop)
	<-pollDone
	own.mu.Lock()
	defer own.mu.Unlock()
	for _, v := range own.violations {
		t.Error(v)
	}
	t.Logf("owners at the end: %v", own.owner)
}
