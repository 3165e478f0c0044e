package interop

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestGroupMigrationKillDuringRevocation proves a rolling upgrade from
// the classic protocol to KIP-848 (agent/consumer_group.go, Online
// migration between the protocols) survives SIGKILL of the coordinator at
// its most dangerous instant, on two agent processes: two classic
// (cooperative-sticky) franz-go consumers share a 6-partition topic while
// a steady producer writes through the agent that is not the group's
// coordinator; one consumer is restarted as a KIP-848 member, which
// converts the live group, and the remaining classic member, whose
// revocation of half its partitions the coordinator now holds pending, is
// inside its first OnPartitionsRevoked since then when the coordinator is
// killed: franz-go's cooperative consumer calls it (with nothing in it) at
// the end of the session the upgrade's REBALANCE_IN_PROGRESS ended, before
// the JoinGroup that tells it which 3 to give up, so it still owns all 6.
// (A kill at the next call, revoking the 3, passed 3 of 3 runs, but also 2
// of 2 without adoptOwned below: this instant is the harder one.) The
// classic member then rejoins the survivor under its old member ID, still
// owning what it had, and reads that
// JoinGroup's answer late (1.5 s, slowJoinRead), while the KIP-848 member
// heartbeats. The group carries on through the survivor: the KIP-848
// member ends owning partitions beside the classic one; then it leaves,
// the group is classic again and the classic member owns all 6. The
// audit: no partition owned by two members at once (the members' assign,
// revoke and lost callbacks), committed offsets (polled through the
// survivor throughout) never go back and none committed before the kill
// is lost, every record produced is consumed and committed, and no client
// ever sees GROUP_ID_NOT_FOUND. Before the survivor kept what a classic
// member new to it reports owning (adoptOwned, agent/consumer_group_migration.go),
// it gave the KIP-848 member partitions 3-5 while classic-1 still owned
// them, or the group never returned the 6 to classic-1 after the
// downgrade: 3 of 3 runs failed. Then 2 of 11 runs failed alike (the
// KIP-848 member given all 6 at once, committed offsets moving back when
// classic-1 committed again): two requests claimed the group at the
// survivor at once, and the one that built it had read no records
// (metastore.ClaimGroup of a key the agent held already), so no grace.
func TestGroupMigrationKillDuringRevocation(t *testing.T) {
	t.Parallel() // with the other long failover tests (doc.go)
	c := cluster.Start(t, cluster.Options{Agents: 2, Args: []string{"--group-consumer-heartbeat-interval", "500ms", "--group-consumer-session-timeout", "6s"}})
	const topic, group, parts = "grp-mig-kill", "grp-mig-kill-g", 6
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	c.CreateTopic(t, 0, topic, parts)
	coord := coordinatorIndex(t, ctx, c, group, -1)
	survivor := 1 - coord
	committed, stopWatch := watchCommitted(t, ctx, c, survivor, group)

	// The steady producer, bounded: 10 records every 40 ms, at most 6,000,
	// every connection to the survivor.
	prod := c.Client(t, kgo.SeedBrokers(c.Addr(survivor)), kgo.Dialer(cluster.DialTo(c.Addr(survivor))),
		kgo.DefaultProduceTopic(topic))
	var ends sync.Map // partition -> end offset acknowledged
	prodCtx, stopProd := context.WithCancel(ctx)
	defer stopProd()
	prodDone := make(chan error, 1)
	go func() {
		var err error
		defer func() { prodDone <- err }()
		for i := 0; i < 600 && prodCtx.Err() == nil; i++ {
			var rs []*kgo.Record
			for j := range 10 {
				rs = append(rs, &kgo.Record{Key: []byte(strconv.Itoa(i*10 + j)), Value: []byte("v")})
			}
			if err = prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				return
			}
			for _, r := range rs {
				if e, ok := ends.Load(r.Partition); !ok || e.(int64) < r.Offset+1 {
					ends.Store(r.Partition, r.Offset+1)
				}
			}
			time.Sleep(40 * time.Millisecond)
		}
	}()

	tl := &tally{processed: map[int32]map[int64]bool{}}
	own := newOwnership()
	defer own.check(t) // after the members stopped (deferred below)
	logs := &notFoundLog{}
	var armed atomic.Bool           // set just before the KIP-848 member starts
	revoking := make(chan struct{}) // closed when classic-1 starts that revocation
	killed := make(chan struct{})   // closed once the coordinator is dead
	var revokeOnce sync.Once
	// classic-1's first JoinGroup answer after the kill reaches it 1.5 s
	// late (a pause between its JoinGroup and SyncGroup), so the KIP-848
	// member heartbeats while classic-1 still owns what it reported in
	// that JoinGroup.
	slow := &slowJoinRead{delay: 1500 * time.Millisecond}
	member := func(name string, kip848 bool, stop <-chan struct{}) <-chan struct{} {
		opts := []kgo.Opt{
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ClientID(name),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
			kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(500 * time.Millisecond),
			kgo.RebalanceTimeout(10 * time.Second), kgo.RetryTimeout(30 * time.Second),
			kgo.MetadataMaxAge(time.Second), kgo.MetadataMinAge(100 * time.Millisecond),
			kgo.WithLogger(logs.logger(name)),
		}
		if kip848 {
			// As in TestConsumerGroup848KillDuringRevocation: franz-go
			// retries a KIP-848 heartbeat against the dead coordinator
			// until a metadata refresh drops it. The classic member keeps
			// franz-go's default retries: its JoinGroup after the
			// revocation then reaches the next coordinator under its old
			// member ID still owning what it kept (adoptOwned in
			// agent/consumer_group_migration.go), instead of failing and
			// dropping everything.
			opts = append(opts, kgo.ServerSideBalancer(), kgo.RequestRetries(3))
		} else {
			opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
		}
		if name == "classic-1" {
			opts = append(opts, kgo.WithHooks(slow))
		}
		opts = append(opts, own.opts(name, func() {
			if name != "classic-1" || !armed.Load() {
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
		})...)
		return tl.consume(ctx, t, name, c.Client(t, opts...), stop)
	}
	waitFor := func(what string, d time.Duration, ok func() bool) time.Duration {
		t.Helper()
		from := time.Now()
		for !ok() {
			if time.Since(from) > d || ctx.Err() != nil {
				t.Fatalf("%s: not within %v (owners %v, %d records processed)", what, d, own.counts(), tl.count())
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s: %.2f s (%.2f s into the test)", what, time.Since(from).Seconds(), time.Since(start).Seconds())
		return time.Since(from)
	}
	counts := func(want map[string]int) func() bool {
		return func() bool {
			n := own.counts()
			for m, w := range want {
				if n[m] != w {
					return false
				}
			}
			return true
		}
	}

	stop1, stop2, stopK := make(chan struct{}), make(chan struct{}), make(chan struct{})
	d1, d2 := member("classic-1", false, stop1), member("classic-2", false, stop2)
	defer func() { close(stop1); <-d1 }()
	waitFor("classic members own 3 partitions each", 30*time.Second, counts(map[string]int{"classic-1": 3, "classic-2": 3}))
	waitFor("both classic members processed records", 10*time.Second, func() bool { return tl.count() >= 200 })

	// The rolling upgrade: classic-2 stops, and starts again as a KIP-848
	// member.
	close(stop2)
	<-d2
	waitFor("classic-1 owns the 6 after classic-2 left", 20*time.Second, counts(map[string]int{"classic-1": parts}))
	armed.Store(true)
	upgradeAt := time.Now()
	dk := member("kip848", true, stopK)
	var stopKOnce sync.Once
	leaveK := func() { stopKOnce.Do(func() { close(stopK); <-dk }) }
	defer leaveK()
	select {
	case <-revoking:
	case <-time.After(20 * time.Second):
		t.Fatal("classic-1 never started revoking partitions for the KIP-848 member")
	}
	before := committed()
	t.Logf("classic-1 revoking %.2f s after the KIP-848 member started; killing coordinator agent %d; committed before: %v",
		time.Since(upgradeAt).Seconds(), coord, before)
	c.Kill(coord)
	killedAt := time.Now() // the process is gone: later commits are the survivor's
	slow.armed.Store(true)
	close(killed)

	waitFor("a commit after the kill moves an offset past its value at the kill", 30*time.Second, func() bool {
		for p, o := range committed() {
			if o > before[p] {
				return true
			}
		}
		return false
	})
	waitFor("the KIP-848 member owns partitions beside classic-1", 30*time.Second, func() bool {
		n := own.counts()
		return n["kip848"] > 0 && n["kip848"]+n["classic-1"] == parts
	})
	t.Logf("takeover: the KIP-848 member owned partitions beside classic-1 %.2f s after the kill; owners %v", time.Since(killedAt).Seconds(), own.counts())
	adm := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(survivor)), kgo.Dialer(cluster.DialTo(c.Addr(survivor)))))
	if ls, err := adm.ListGroups(ctx); err != nil || ls[group].GroupType != "consumer" {
		t.Errorf("after the kill the group is listed as %+v (%v), want a consumer group", ls[group], err)
	}
	time.Sleep(time.Second) // both consume for a while

	// The KIP-848 member leaves: classic again.
	downgradeAt := time.Now()
	leaveK()
	waitFor("classic-1 owns the 6 after the KIP-848 member left", 20*time.Second, counts(map[string]int{"classic-1": parts}))
	waitFor("the group is listed classic again", 10*time.Second, func() bool {
		ls, err := adm.ListGroups(ctx)
		return err == nil && ls[group].GroupType == "classic"
	})
	t.Logf("downgrade: classic-1 owned the 6 %.2f s after the KIP-848 member closed", time.Since(downgradeAt).Seconds())

	stopProd()
	if err := <-prodDone; err != nil {
		t.Fatalf("produce through the survivor: %v", err)
	}
	want := map[int32]int64{}
	total := int64(0)
	ends.Range(func(k, v any) bool {
		want[k.(int32)] = v.(int64)
		total += v.(int64)
		return true
	})
	tl.waitAll(t, ctx, committed, want)
	after := committed()
	for p, o := range before {
		if after[p] < o {
			t.Errorf("partition %d: committed %d before the kill, %d at the end", p, o, after[p])
		}
	}
	stopWatch()
	if n, l := logs.seen(); n > 0 {
		t.Errorf("clients saw GROUP_ID_NOT_FOUND %d times: %v", n, l)
	}
	t.Logf("%d records produced and consumed; %.1f s in all", total, time.Since(start).Seconds())
}

// notFoundLog collects the client log lines that mention
// GROUP_ID_NOT_FOUND.
type notFoundLog struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func (l *notFoundLog) logger(name string) kgo.Logger { return notFoundLogger{l, name} }

func (l *notFoundLog) seen() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.lines
}

type notFoundLogger struct {
	l    *notFoundLog
	name string
}

func (g notFoundLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (g notFoundLogger) Log(_ kgo.LogLevel, msg string, kv ...any) {
	s := fmt.Sprint(append([]any{g.name, ": ", msg, " "}, kv...)...)
	if !strings.Contains(s, "GROUP_ID_NOT_FOUND") {
		return
	}
	g.l.mu.Lock()
	defer g.l.mu.Unlock()
	g.l.n++
	if len(g.l.lines) < 10 {
		g.l.lines = append(g.l.lines, s)
	}
}

// slowJoinRead delays, once armed, the first JoinGroup response a client
// reads (kgo.HookBrokerRead runs before the client sees the response).
type slowJoinRead struct {
	armed atomic.Bool
	once  sync.Once
	delay time.Duration
}

func (h *slowJoinRead) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 11 && err == nil && h.armed.Load() { // JoinGroup
		h.once.Do(func() { time.Sleep(h.delay) })
	}
}
