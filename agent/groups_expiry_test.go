package agent_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
)

// waitReleased waits until no agent holds group's coordinator key and
// returns how long that took.
func waitReleased(t *testing.T, ctx context.Context, meta *metastore.Store, group string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		holder, err := meta.GroupCoordinator(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if holder < 0 {
			return time.Since(start)
		}
		if ctx.Err() != nil {
			t.Fatalf("group %q never released (held by %d)", group, holder)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGroupReleasedWhenEmptyThenExpired proves the life of an abandoned
// group: its coordinator keeps it while it has a member, releases it (the
// coordinator key leaves etcd) once it has been Empty for the idle
// threshold; a consumer of the same group then claims it again and resumes
// from the committed offsets; once released again and past the offset
// retention, the group-expiry job deletes its offsets and the next consumer
// of the group starts from its reset policy.
func TestGroupReleasedWhenEmptyThenExpired(t *testing.T) {
	const idle = 300 * time.Millisecond
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	for _, a := range c.Agents {
		agent.SetGroupIdleRelease(a.Server, idle)
	}
	ctx := testCtx(t, 60*time.Second)
	const topic, group = "expiring", "abandoned-group"
	if _, err := c.Admin(t).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	prod := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	produce := func(prefix string, n int) {
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// consume joins the group, reads want records, commits them, waits
	// hold with the member in the group, and leaves.
	consume := func(want int, hold time.Duration) []string {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var got []string
		for len(got) < want {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %v, want %d records", got, want)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(hold)
		if h, err := c.Meta.GroupCoordinator(ctx, group); err != nil || h < 0 {
			t.Fatalf("a group with a member was released (holder %d, %v)", h, err)
		}
		return got
	}
	count := func(recs []string, prefix string) int {
		n := 0
		for _, r := range recs {
			if strings.HasPrefix(r, prefix+"-") {
				n++
			}
		}
		return n
	}

	produce("first", 10)
	if got := consume(10, 3*idle); len(got) != 10 {
		t.Fatalf("first consumer read %v", got)
	}
	took := waitReleased(t, ctx, c.Meta, group)
	if took < idle {
		t.Fatalf("released %v after the last member left, before the %v threshold", took, idle)
	}
	t.Logf("released %v after the last member left (threshold %v)", took.Round(time.Millisecond), idle)
	if resp, err := c.Etcd.Get(ctx, c.Namespace+"/groups/"+group+"/empty-since"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("no empty-since record after the release: %v", err)
	}

	// Claimed again: the committed offsets are still there.
	produce("second", 6)
	got := consume(6, 0)
	if n := count(got, "first"); n != 0 || count(got, "second") != 6 {
		t.Fatalf("rejoining consumer read %v: committed offsets lost", got)
	}
	waitReleased(t, ctx, c.Meta, group)

	// Past the retention: the job expires the offsets of the released group.
	time.Sleep(5 * time.Millisecond)
	var stats metastore.GroupExpiryStats
	lc, err := lifecycle.New(lifecycle.Config{GroupOffsetRetention: time.Millisecond,
		Observe: func(_ string, s any) { stats = s.(metastore.GroupExpiryStats) }}, c.Store, c.Meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.RunOnce(ctx, lifecycle.JobGroupExpiry); err != nil {
		t.Fatal(err)
	}
	if stats.Groups != 1 || stats.Offsets != 2 {
		t.Fatalf("expiry stats %+v, want the group's 2 offsets", stats)
	}
	if offs, err := c.Meta.FetchGroupOffsets(ctx, group); err != nil || len(offs) != 0 {
		t.Fatalf("offsets after expiry: %+v %v", offs, err)
	}
	got = consume(16, 0)
	if count(got, "first") != 10 || count(got, "second") != 6 {
		t.Fatalf("consumer after expiry read %v, want every record again (reset to the start)", got)
	}
}

// TestGroupReleaseRacesRequests hammers idle releases (a 5ms threshold)
// with standalone offset commits and describes from several clients on two
// agents, so requests keep arriving while groups are released and
// reclaimed. Every commit must succeed (clients retry NOT_COORDINATOR and
// COORDINATOR_NOT_AVAILABLE), the last commit of each partition must be
// the one read back, and, once quiet, an agent holds a group in memory
// exactly when etcd names it as the coordinator (no split brain).
func TestGroupReleaseRacesRequests(t *testing.T) {
	const idle = 5 * time.Millisecond
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	for _, a := range c.Agents {
		agent.SetGroupIdleRelease(a.Server, idle)
	}
	ctx := testCtx(t, 60*time.Second)
	const topic = "racing"
	if _, err := c.Admin(t).CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	groups := []string{"race-a", "race-b"}
	const rounds = 40
	var wg sync.WaitGroup
	var retried atomic.Int64
	for w := range 4 {
		adm := c.Admin(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				g := groups[(w+i)%len(groups)]
				offs := kadm.Offsets{}
				offs.Add(kadm.Offset{Topic: topic, Partition: int32(w), At: int64(i), LeaderEpoch: -1})
				// A commit that lands while the group is being released may
				// be told COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR, which
				// a Kafka consumer retries; a few retries are allowed, a
				// group that stays unavailable fails the test.
				var err error
				for attempt := 0; attempt < 5; attempt++ {
					var resp kadm.OffsetResponses
					resp, err = adm.CommitOffsets(ctx, g, offs)
					if err == nil {
						err = resp.Error()
					}
					if !errors.Is(err, kerr.CoordinatorNotAvailable) && !errors.Is(err, kerr.NotCoordinator) {
						break
					}
					retried.Add(1)
					time.Sleep(idle)
				}
				if err != nil {
					t.Errorf("worker %d round %d: commit to %s: %v", w, i, g, err)
					return
				}
				if i%5 == 0 {
					if _, err := adm.DescribeGroups(ctx, g); err != nil {
						t.Errorf("describe %s: %v", g, err)
						return
					}
				}
				time.Sleep(time.Duration(rand.IntN(int(4 * idle))))
			}
		}()
	}
	wg.Wait()
	t.Logf("commits retried on a coordinator error: %d", retried.Load())
	if t.Failed() {
		return
	}
	for w := range 4 {
		last, lastGroup := int64(rounds-1), groups[(w+rounds-1)%len(groups)]
		fetched, err := c.Admin(t).FetchOffsets(ctx, lastGroup)
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := fetched.Lookup(topic, int32(w)); !ok || o.At != last {
			t.Errorf("%s partition %d: committed %+v, want %d", lastGroup, w, o, last)
		}
	}
	// Quiesce: no more releases, then memory and etcd must agree.
	for _, a := range c.Agents {
		agent.SetGroupIdleRelease(a.Server, time.Hour)
	}
	time.Sleep(100 * time.Millisecond)
	check := func(when string) {
		for _, g := range groups {
			holder, err := c.Meta.GroupCoordinator(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range c.Agents {
				if held, named := agent.HoldsGroup(a.Server, g), holder == a.Server.NodeID(); held != named {
					t.Errorf("%s: agent %d holds %s in memory: %v, etcd names it: %v (holder %d)", when, a.Server.NodeID(), g, held, named, holder)
				}
			}
		}
	}
	check("quiet")
	for _, a := range c.Agents {
		agent.SetGroupIdleRelease(a.Server, idle)
	}
	for _, g := range groups {
		waitReleased(t, ctx, c.Meta, g)
	}
	time.Sleep(50 * time.Millisecond)
	check("released")
}

// dialGate is a kgo dialer that can cut a client off from one agent: it
// closes the client's connections to that address and refuses new ones.
type dialGate struct {
	mu      sync.Mutex
	blocked string
	conns   map[net.Conn]string
}

func (d *dialGate) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if host == d.blocked {
		return nil, fmt.Errorf("dial %s: blocked by the test", host)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil {
		d.conns[conn] = host
	}
	return conn, err
}

func (d *dialGate) block(host string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.blocked = host
	for conn, h := range d.conns {
		if h == host {
			conn.Close()
			delete(d.conns, conn)
		}
	}
}

// TestGroupOffsetsSurviveCoordinatorDeath proves a group's offsets are
// not expired while it still has a member, in the window after its
// coordinator died and before the member rejoined on another agent, even
// though the commits and an empty-since record of an earlier release are
// past the retention: the claim by the member's rejoin consumed that
// record, and the expiry job, finding the group uncoordinated without a
// record, only starts counting.
func TestGroupOffsetsSurviveCoordinatorDeath(t *testing.T) {
	const idle = 300 * time.Millisecond
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	for _, a := range c.Agents {
		agent.SetGroupIdleRelease(a.Server, idle)
	}
	ctx := testCtx(t, 60*time.Second)
	const topic, group = "survivor", "survivor-group"
	if _, err := c.Admin(t).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	prod := c.Client(t, kgo.DefaultProduceTopic(topic))
	for i := range 5 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A first consumer commits everything and leaves; the group is
	// released (an empty-since record).
	first, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 5; {
		fs := first.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("first consumer read nothing")
		}
		n += fs.NumRecords()
	}
	if err := first.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	first.Close()
	waitReleased(t, ctx, c.Meta, group)
	recordKey := c.Namespace + "/groups/" + group + "/empty-since"
	if resp, err := c.Etcd.Get(ctx, recordKey); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("no empty-since record after the release: %v", err)
	}

	// A second consumer joins: a member, idle (nothing new to read, so
	// nothing committed).
	gate := &dialGate{conns: map[net.Conn]string{}}
	second, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.Dialer(gate.dial))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	go func() {
		for pollCtx.Err() == nil {
			second.PollFetches(pollCtx)
		}
	}()
	// stable reports whether the group has its one member, Stable (asked
	// through a client that has not known the dead agent).
	stable := func(adm *kadm.Client) bool {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		ds, err := adm.DescribeGroups(dctx, group)
		if err != nil {
			return false
		}
		d := ds[group]
		return d.Err == nil && d.State == "Stable" && len(d.Members) == 1
	}
	for adm := c.Admin(t); !stable(adm); {
		if ctx.Err() != nil {
			t.Fatal("the second consumer never joined")
		}
		time.Sleep(20 * time.Millisecond)
	}
	holder, err := c.Meta.GroupCoordinator(ctx, group)
	if err != nil || holder < 0 {
		t.Fatalf("holder %d %v", holder, err)
	}
	var coord, other *agenttest.Agent
	for _, a := range c.Agents {
		if a.Server.NodeID() == holder {
			coord = a
		} else {
			other = a
		}
	}

	// The coordinator dies; the member cannot reach the other agent yet.
	gate.block(other.Addr)
	if err := coord.Stop(); err != nil {
		t.Fatal(err)
	}
	if h, err := c.Meta.GroupCoordinator(ctx, group); err != nil || h >= 0 {
		t.Fatalf("coordinator key still held by %d after its agent stopped (%v)", h, err)
	}
	// Two hours on, the commits and the earlier emptying are past a
	// one-hour retention; the member is alive all the same.
	lc, err := lifecycle.New(lifecycle.Config{GroupOffsetRetention: time.Hour,
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}, c.Store, c.Meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.RunOnce(ctx, lifecycle.JobGroupExpiry); err != nil {
		t.Fatal(err)
	}
	if offs, err := c.Meta.FetchGroupOffsets(ctx, group); err != nil || len(offs) != 1 || offs[0].Offset != 5 {
		t.Fatalf("offsets of a group with a live member after its coordinator died: %+v %v (expired)", offs, err)
	}

	// The member rejoins on the other agent; the group stays.
	gate.block("")
	for adm := c.Admin(t); ; {
		if h, _ := c.Meta.GroupCoordinator(ctx, group); h == other.Server.NodeID() && stable(adm) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the member never rejoined on the other agent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := lc.RunOnce(ctx, lifecycle.JobGroupExpiry); err != nil {
		t.Fatal(err)
	}
	if offs, err := c.Meta.FetchGroupOffsets(ctx, group); err != nil || len(offs) != 1 {
		t.Fatalf("offsets after the rejoin: %+v %v", offs, err)
	}
}
