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
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/tests/cluster"
)

// TestGroupOffsetsAcrossAgents proves that offsets committed through agent
// A (every connection pinned to it) are fetched through agent B (pinned
// too): committed offsets live in etcd, and any agent serves OffsetFetch.
func TestGroupOffsetsAcrossAgents(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic, group = "grp-offsets", "grp-across"
	c.CreateTopic(t, 0, topic, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admA := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(cluster.DialTo(c.Addr(0)))))
	admB := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(cluster.DialTo(c.Addr(1)))))
	var want kadm.Offsets
	for p := range int32(3) {
		want.Add(kadm.Offset{Topic: topic, Partition: p, At: int64(100 + p), LeaderEpoch: -1, Metadata: "m" + strconv.Itoa(int(p))})
	}
	resp, err := admA.CommitOffsets(ctx, group, want)
	if err != nil || resp.Error() != nil {
		t.Fatalf("commit through A: %v %v", err, resp.Error())
	}
	got, err := admB.FetchOffsets(ctx, group)
	if err != nil || got.Error() != nil {
		t.Fatalf("fetch through B: %v %v", err, got.Error())
	}
	for p := range int32(3) {
		r, ok := got.Lookup(topic, p)
		if !ok || r.At != int64(100+p) || r.Metadata != "m"+strconv.Itoa(int(p)) {
			t.Errorf("partition %d through B: %+v (found %v), want offset %d metadata m%d", p, r, ok, 100+p, p)
		}
	}
}

// TestGroupCoordinatorKill proves failover of a group coordinator with a
// real SIGKILL: two franz-go members consume a 6-partition topic (all
// agents as seeds); the agent coordinating the group is killed; the group
// carries on through another agent and every record is processed at least
// once. Committed offsets, polled through a surviving agent throughout,
// never move backwards and none acknowledged before the kill is lost. No
// partition is ever owned by two members at once, as their assign, revoke
// and lost callbacks tell (ownership): before the new coordinator held
// its first join for a session timeout (agent/groups.go, Failover), the
// first member to rejoin was given partitions the other still owned in 2
// of 3 runs. The
// takeover time (kill to the first commit accepted again) is logged; it is
// bounded by the agent TTL (3s in the harness) plus the clients' retry and
// rejoin, and the test fails beyond 20s.
func TestGroupCoordinatorKill(t *testing.T) {
	t.Parallel() // with the other long failover tests (doc.go)
	coordinatorFailover(t, "kill", func(c *cluster.Cluster, i int) { c.Kill(i) })
}

// TestGroupCoordinatorGracefulStop is the same failover with SIGTERM: a
// stopping agent hands group coordination over as it exits (its lease is
// revoked, so the coordinator key is gone by the time the process is),
// instead of leaving the group waiting for the lease to expire.
func TestGroupCoordinatorGracefulStop(t *testing.T) {
	t.Parallel()
	coordinatorFailover(t, "stop", func(c *cluster.Cluster, i int) {
		c.Stop(i)
		meta := metastore.New(testenv.EtcdClient(t, c.EtcdEndpoints()), "/shale")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		holder, err := meta.GroupCoordinator(ctx, "grp-stop-g")
		if err != nil {
			t.Fatal(err)
		}
		agents, err := meta.ListAgents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		live := map[int32]bool{}
		for _, a := range agents {
			live[a.NodeID] = true
		}
		if holder >= 0 && !live[holder] {
			t.Errorf("after SIGTERM the coordinator key still names the stopped agent (node %d): coordination was not handed over", holder)
		}
	})
}

func coordinatorFailover(t *testing.T, mode string, takeDown func(c *cluster.Cluster, i int), memberOpts ...kgo.Opt) {
	c := cluster.Start(t, cluster.Options{Agents: 3, Args: []string{"--group-consumer-heartbeat-interval", "500ms", "--group-consumer-session-timeout", "6s"}})
	topic, group := "grp-"+mode, "grp-"+mode+"-g"
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	ends := produceKeyed(t, ctx, c, topic, 6, 6000)
	tl := &tally{processed: map[int32]map[int64]bool{}}
	own := newOwnership()
	defer own.check(t) // after the members stopped (deferred below)
	member := func(name string, stop <-chan struct{}) <-chan struct{} {
		opts := append([]kgo.Opt{
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
			kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(500 * time.Millisecond),
			kgo.RebalanceTimeout(10 * time.Second), kgo.ClientID(name),
			kgo.RetryTimeout(30 * time.Second),
		}, own.opts(name, nil)...)
		cl := c.Client(t, append(opts, memberOpts...)...)
		return tl.consume(ctx, t, name, cl, stop)
	}
	stop := make(chan struct{})
	d1, d2 := member("k1", stop), member("k2", stop)
	defer func() { close(stop); <-d1; <-d2 }()
	for tl.count() < 1000 {
		if ctx.Err() != nil {
			t.Fatalf("processed %d records before the kill", tl.count())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Which agent coordinates the group?
	coord := coordinatorIndex(t, ctx, c, group, -1)
	committed, stopWatch := watchCommitted(t, ctx, c, (coord+1)%3, group)
	before := committed()
	t.Logf("killing coordinator agent %d (%s); committed before: %v", coord, c.Addr(coord), before)
	killed := time.Now()
	takeDown(c, coord)

	// New coordinator named, and first commit accepted after the kill.
	newCoord := coordinatorIndex(t, ctx, c, group, coord)
	named := time.Since(killed)
	var resumed time.Duration
	for resumed == 0 {
		tl.mu.Lock()
		if n := len(tl.commitOK); n > 0 && tl.commitOK[n-1].After(killed) {
			for _, at := range tl.commitOK {
				if at.After(killed) {
					resumed = at.Sub(killed)
					break
				}
			}
		}
		tl.mu.Unlock()
		if ctx.Err() != nil {
			t.Fatalf("no commit accepted after the kill")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("takeover: the new coordinator (agent %d) named %v after the kill; first commit accepted %v after the kill (agent TTL 3s, session 6s)",
		newCoord, named.Round(time.Millisecond), resumed.Round(time.Millisecond))
	if resumed > 20*time.Second {
		t.Errorf("takeover took %v, want under 20s", resumed)
	}
	after := committed()
	for p, o := range before {
		if after[p] < o {
			t.Errorf("partition %d: committed %d before the kill, %d after takeover", p, o, after[p])
		}
	}
	tl.waitAll(t, ctx, committed, ends)
	stopWatch()
}

// produceKeyed produces n records keyed 0..n-1 to a new topic of
// partitions partitions and returns each partition's end offset.
func produceKeyed(t *testing.T, ctx context.Context, c *cluster.Cluster, topic string, partitions int32, n int) map[int32]int64 {
	t.Helper()
	c.CreateTopic(t, 0, topic, partitions)
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	if err := c.Client(t, kgo.DefaultProduceTopic(topic)).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{}
	for _, r := range recs {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}
	return ends
}

// tally is what a group's members processed: every (partition, offset)
// once, and when their commits succeeded.
type tally struct {
	mu        sync.Mutex
	processed map[int32]map[int64]bool
	commitOK  []time.Time
}

func (tl *tally) count() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, m := range tl.processed {
		n += len(m)
	}
	return n
}

// consume polls cl (at most 40 records a poll), records what it gets and
// commits it, until ctx ends or stop is closed; it closes cl when done.
//
// A commit waits at most memberCommitWait: with BlockRebalanceOnPoll the
// member gives up its partitions only once the poll is allowed to end, and
// a commit retrying against a dead coordinator (RetryTimeout 30s) would
// hold them past the session timeout. Kafka gives a member that stops
// heartbeating that long no partitions either (its session ended and they
// go to others, as here after a takeover's hold); members that want the
// ownership guarantee keep each poll-to-poll step under their session
// timeout, as this one does.
// memberCommitWait bounds a member's commit (consume); well under the 6s
// session timeout of the failover tests.
const memberCommitWait = 2 * time.Second

func (tl *tally) consume(ctx context.Context, t *testing.T, name string, cl *kgo.Client, stop <-chan struct{}) <-chan struct{} {
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
			tl.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				if tl.processed[r.Partition] == nil {
					tl.processed[r.Partition] = map[int64]bool{}
				}
				tl.processed[r.Partition][r.Offset] = true
			})
			tl.mu.Unlock()
			time.Sleep(30 * time.Millisecond)
			if len(fs.Records()) > 0 {
				cctx, ccancel := context.WithTimeout(ctx, memberCommitWait)
				err := cl.CommitUncommittedOffsets(cctx)
				ccancel()
				if err == nil {
					tl.mu.Lock()
					tl.commitOK = append(tl.commitOK, time.Now())
					tl.mu.Unlock()
				} else {
					t.Logf("%s: commit: %v", name, err)
				}
			}
			cl.AllowRebalance()
		}
	}()
	return done
}

// waitAll waits until every record was processed and the committed
// offsets reached the ends.
func (tl *tally) waitAll(t *testing.T, ctx context.Context, committed func() map[int32]int64, ends map[int32]int64) {
	t.Helper()
	total := 0
	for p := range ends {
		total += int(ends[p])
	}
	for tl.count() < total {
		if ctx.Err() != nil {
			t.Fatalf("processed %d of %d records", tl.count(), total)
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
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("committed %v never reached the ends %v", cur, ends)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// watchCommitted reads group's committed offsets through agent i (nil on
// error), and polls them every 100 ms until stop is called: they must
// never go back.
func watchCommitted(t *testing.T, ctx context.Context, c *cluster.Cluster, i int, group string) (committed func() map[int32]int64, stop func()) {
	adm := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(cluster.DialTo(c.Addr(i)))))
	committed = func() map[int32]int64 {
		os, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return nil
		}
		out := map[int32]int64{}
		os.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
		return out
	}
	var last map[int32]int64
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
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
	return committed, func() { close(quit); <-done }
}

// coordinatorIndex asks a live agent (other than skip) which agent
// coordinates group, retrying until one that is not skip is named.
func coordinatorIndex(t *testing.T, ctx context.Context, c *cluster.Cluster, group string, skip int) int {
	t.Helper()
	ask := (skip + 1) % len(c.Addrs())
	if skip < 0 {
		ask = 0
	}
	cl := c.Client(t, kgo.SeedBrokers(c.Addr(ask)), kgo.Dialer(cluster.DialTo(c.Addr(ask))))
	for ctx.Err() == nil {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorKeys = group, []string{group}
		raw, err := cl.SeedBrokers()[0].Request(ctx, req)
		if err == nil {
			resp := raw.(*kmsg.FindCoordinatorResponse)
			code, host, port := resp.ErrorCode, resp.Host, resp.Port
			if len(resp.Coordinators) > 0 {
				code, host, port = resp.Coordinators[0].ErrorCode, resp.Coordinators[0].Host, resp.Coordinators[0].Port
			}
			addr := fmt.Sprintf("%s:%d", host, port)
			if code != 0 {
				addr = ""
			}
			for i, a := range c.Addrs() {
				if a == addr && i != skip {
					return i
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no coordinator for %s named by agent %d", group, ask)
	return -1
}
