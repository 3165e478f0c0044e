package interop

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

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
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	ends := produceKeyed(t, ctx, c, topic, 6, 6000)

	own := newOwnership()
	revoking := make(chan struct{}) // closed when k1 starts its first revocation
	killed := make(chan struct{})   // closed once the coordinator is dead
	var revokeOnce sync.Once
	tl := &tally{processed: map[int32]map[int64]bool{}}
	member := func(name string, stop <-chan struct{}) <-chan struct{} {
		cl := c.Client(t, append([]kgo.Opt{
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ServerSideBalancer(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(), kgo.ClientID(name), kgo.RetryTimeout(30 * time.Second),
			// franz-go (v1.22.3) retries a KIP-848 heartbeat against the
			// dead coordinator until a metadata refresh drops that broker;
			// a member with nothing to commit then never reaches the new
			// one (k2 dialed it for over a minute): refresh often, and
			// give up a heartbeat's retries early.
			kgo.RequestRetries(3), kgo.MetadataMaxAge(time.Second), kgo.MetadataMinAge(100 * time.Millisecond),
			kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(500 * time.Millisecond), kgo.RebalanceTimeout(20 * time.Second),
		}, own.opts(name, func() {
			if name != "k1" {
				return
			}
			first := false
			revokeOnce.Do(func() { first = true; close(revoking) })
			if first {
				select { // the revocation stays unacknowledged until the kill
				case <-killed:
				case <-ctx.Done():
				}
			}
		})...)...)
		return tl.consume(ctx, t, name, cl, stop)
	}
	stop := make(chan struct{})
	d1 := member("k1", stop)
	for tl.count() < 500 {
		if ctx.Err() != nil {
			t.Fatalf("k1 processed %d records alone", tl.count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	coord := coordinatorIndex(t, ctx, c, group, -1)
	committed, stopWatch := watchCommitted(t, ctx, c, (coord+1)%3, group)

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

	tl.waitAll(t, ctx, committed, ends)
	after := committed()
	for p, o := range before {
		if after[p] < o {
			t.Errorf("partition %d: committed %d before the kill, %d at the end", p, o, after[p])
		}
	}
	// The group settles: each member owns 3 partitions.
	for {
		n := own.counts()
		if n["k1"] == 3 && n["k2"] == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the group never settled at 3 partitions each: %v", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopWatch()
	own.check(t)
}
