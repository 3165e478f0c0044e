package agent_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
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
	lc, err := s3tier.NewLifecycle(s3tier.LifecycleConfig{GroupOffsetRetention: time.Millisecond,
		Observe: func(_ string, s any) { stats = s.(metastore.GroupExpiryStats) }}, c.Store, c.Meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.RunOnce(ctx, s3tier.JobGroupExpiry); err != nil {
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
	for w := range 4 {
		adm := c.Admin(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				g := groups[(w+i)%len(groups)]
				offs := kadm.Offsets{}
				offs.Add(kadm.Offset{Topic: topic, Partition: int32(w), At: int64(i), LeaderEpoch: -1})
				resp, err := adm.CommitOffsets(ctx, g, offs)
				if err == nil {
					err = resp.Error()
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
