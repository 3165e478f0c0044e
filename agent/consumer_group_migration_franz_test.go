package agent_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// migAudit follows a migrating group from its members' side: who owns
// each partition (from the rebalance callbacks), every record read, and
// the errors the clients reported.
type migAudit struct {
	mu        sync.Mutex
	owner     map[int32]string
	read      map[int32]map[int64]bool
	byMember  map[string]int
	problems  []string
	notFound  atomic.Int64 // GROUP_ID_NOT_FOUND seen by any client
	errorsLog []string
}

func (a *migAudit) fail(format string, args ...any) {
	a.problems = append(a.problems, fmt.Sprintf(format, args...))
}

func (a *migAudit) assigned(name string, parts []int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range parts {
		if o, ok := a.owner[p]; ok && o != name {
			a.fail("partition %d assigned to %s while %s owns it", p, name, o)
		}
		a.owner[p] = name
	}
}

func (a *migAudit) gone(name string, parts []int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range parts {
		if a.owner[p] == name {
			delete(a.owner, p)
		}
	}
}

func (a *migAudit) owns(name string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, o := range a.owner {
		if o == name {
			n++
		}
	}
	return n
}

// migLogger counts GROUP_ID_NOT_FOUND in a client's log.
type migLogger struct{ a *migAudit }

func (l migLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }
func (l migLogger) Log(_ kgo.LogLevel, msg string, kv ...any) {
	s := fmt.Sprint(append([]any{msg}, kv...)...)
	if strings.Contains(s, "GROUP_ID_NOT_FOUND") {
		l.a.notFound.Add(1)
		l.a.mu.Lock()
		l.a.errorsLog = append(l.a.errorsLog, s)
		l.a.mu.Unlock()
	}
}

// TestConsumerGroupMigrationFranz proves a rolling upgrade of franz-go
// consumers from the classic protocol to KIP-848 and back, under a steady
// producer: two classic (cooperative-sticky) consumers of a 6-partition
// topic; one is restarted as a KIP-848 member, which joins the live group
// (no GROUP_ID_NOT_FOUND) and gets partitions, the group listed as
// "consumer" with a classic and a KIP-848 member; then it leaves and the
// group is classic again, the classic member owning all 6. At every step
// no partition is owned by two members (client callbacks, and every
// ConsumerGroupDescribe or DescribeGroups polled), committed offsets never
// go backwards, and every record produced is read.
func TestConsumerGroupMigrationFranz(t *testing.T) {
	cl := agenttest.Start(t, agenttest.Options{Agents: 1, Agent: func(_ int, cfg *agent.Config) {
		cfg.ConsumerHeartbeatInterval = 300 * time.Millisecond
	}})
	ctx := testCtx(t, 120*time.Second)
	const topic, group, parts = "mig-t", "mig-g", 6
	adm := cl.Admin(t)
	if tps, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil || tps.Err != nil {
		t.Fatal(err, tps.Err)
	}
	start := time.Now()
	a := &migAudit{owner: map[int32]string{}, read: map[int32]map[int64]bool{}, byMember: map[string]int{}}
	type consumer struct {
		name string
		cl   *kgo.Client
		done chan struct{}
	}
	newConsumer := func(name string, kip848 bool) *consumer {
		opts := []kgo.Opt{kgo.SeedBrokers(cl.Addrs()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ClientID(name),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(8 << 10),
			kgo.HeartbeatInterval(300 * time.Millisecond), kgo.SessionTimeout(10 * time.Second), kgo.AutoCommitInterval(300 * time.Millisecond),
			kgo.WithLogger(migLogger{a}),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { a.assigned(name, m[topic]) }),
			kgo.OnPartitionsRevoked(func(ctx context.Context, c *kgo.Client, m map[string][]int32) {
				_ = c.CommitUncommittedOffsets(ctx)
				a.gone(name, m[topic])
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { a.gone(name, m[topic]) }),
		}
		if kip848 {
			opts = append(opts, kgo.ServerSideBalancer())
		} else {
			opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
		}
		c, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		k := &consumer{name: name, cl: c, done: make(chan struct{})}
		go func() {
			defer close(k.done)
			for {
				fs := c.PollRecords(ctx, 100)
				if fs.IsClientClosed() || ctx.Err() != nil {
					return
				}
				fs.EachError(func(_ string, _ int32, err error) {
					if errors.Is(err, kerr.GroupIDNotFound) {
						a.notFound.Add(1)
					}
				})
				a.mu.Lock()
				fs.EachRecord(func(r *kgo.Record) {
					if a.read[r.Partition] == nil {
						a.read[r.Partition] = map[int64]bool{}
					}
					a.read[r.Partition][r.Offset] = true
					a.byMember[name]++
				})
				a.mu.Unlock()
			}
		}()
		return k
	}
	stop := func(k *consumer) {
		k.cl.Close() // leaves the group
		<-k.done
	}
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) || ctx.Err() != nil {
				a.mu.Lock()
				t.Fatalf("%s: not within %v (owners %v, problems %v)", what, d, a.owner, a.problems)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s: %.2f s into the test", what, time.Since(start).Seconds())
	}

	// A steady producer, bounded: 10 records every 20 ms, at most 6,000.
	prod := cl.Client(t, kgo.DefaultProduceTopic(topic))
	var produced atomic.Int64
	prodCtx, stopProd := context.WithCancel(ctx)
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for i := 0; i < 600 && prodCtx.Err() == nil; i++ {
			var rs []*kgo.Record
			for j := range 10 {
				rs = append(rs, &kgo.Record{Key: []byte{byte(i), byte(j)}, Value: []byte("v")})
			}
			if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				return
			}
			produced.Add(10)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// The auditor: committed offsets never go backwards, and no describe
	// shows a partition in two members' assignments.
	auditCtx, stopAudit := context.WithCancel(ctx)
	auditDone := make(chan struct{})
	var describes atomic.Int64
	go func() {
		defer close(auditDone)
		last := map[int32]int64{}
		br := cl.Client(t).SeedBrokers()[0]
		for auditCtx.Err() == nil {
			if os, err := adm.FetchOffsets(auditCtx, group); err == nil {
				os.Each(func(o kadm.OffsetResponse) {
					if o.Err == nil && o.Topic == topic {
						if o.At < last[o.Partition] {
							a.mu.Lock()
							a.fail("committed offset of partition %d went back from %d to %d", o.Partition, last[o.Partition], o.At)
							a.mu.Unlock()
						}
						last[o.Partition] = max(last[o.Partition], o.At)
					}
				})
			}
			d := kmsg.NewPtrConsumerGroupDescribeRequest()
			d.Groups = []string{group}
			if r, err := br.Request(auditCtx, d); err == nil && r.(*kmsg.ConsumerGroupDescribeResponse).Groups[0].ErrorCode == 0 {
				owner := map[int32]string{}
				for _, m := range r.(*kmsg.ConsumerGroupDescribeResponse).Groups[0].Members {
					for _, tp := range m.Assignment.TopicPartitions {
						for _, p := range tp.Partitions {
							if o, ok := owner[p]; ok {
								a.mu.Lock()
								a.fail("describe: partition %d owned by %s and %s", p, o, m.MemberID)
								a.mu.Unlock()
							}
							owner[p] = m.MemberID
						}
					}
				}
				describes.Add(1)
			} else if ds, err := adm.DescribeGroups(auditCtx, group); err == nil && ds[group].Err == nil {
				owner := map[int32]string{}
				for _, m := range ds[group].Members {
					ca, ok := m.Assigned.AsConsumer()
					if !ok {
						continue
					}
					for _, t := range ca.Topics {
						for _, p := range t.Partitions {
							if o, ok := owner[p]; ok && ds[group].State == "Stable" {
								a.mu.Lock()
								a.fail("describe groups: partition %d owned by %s and %s", p, o, m.MemberID)
								a.mu.Unlock()
							}
							owner[p] = m.MemberID
						}
					}
				}
				describes.Add(1)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	c1, c2 := newConsumer("classic-1", false), newConsumer("classic-2", false)
	waitFor("classic members own 3 partitions each", 30*time.Second, func() bool { return a.owns("classic-1") == 3 && a.owns("classic-2") == 3 })
	time.Sleep(time.Second)
	stop(c2)
	waitFor("classic-1 owns the 6 after classic-2 left", 30*time.Second, func() bool { return a.owns("classic-1") == parts })
	upgradeAt := time.Now()
	k := newConsumer("kip848", true)
	waitFor("the KIP-848 member owns partitions beside classic-1", 30*time.Second, func() bool {
		return a.owns("kip848") > 0 && a.owns("kip848")+a.owns("classic-1") == parts
	})
	t.Logf("upgrade: the KIP-848 member owned partitions %.2f s after it started", time.Since(upgradeAt).Seconds())
	ls, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l := ls[group]; l.GroupType != "consumer" {
		t.Fatalf("listed as %q after the upgrade, want consumer", l.GroupType)
	}
	d := kmsg.NewPtrConsumerGroupDescribeRequest()
	d.Groups = []string{group}
	dr, err := cl.Client(t).SeedBrokers()[0].Request(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	var types []int8
	for _, m := range dr.(*kmsg.ConsumerGroupDescribeResponse).Groups[0].Members {
		types = append(types, m.MemberType)
	}
	slices.Sort(types)
	if !slices.Equal(types, []int8{0, 1}) {
		t.Fatalf("member types %v, want a classic (0) and a KIP-848 (1) member", types)
	}
	time.Sleep(2 * time.Second) // both consume for a while
	downgradeAt := time.Now()
	stop(k)
	waitFor("classic-1 owns the 6 after the KIP-848 member left", 30*time.Second, func() bool { return a.owns("classic-1") == parts })
	t.Logf("downgrade: classic-1 owned the 6 partitions %.2f s after the KIP-848 member closed", time.Since(downgradeAt).Seconds())
	waitFor("the group is listed classic again", 10*time.Second, func() bool {
		ls, err := adm.ListGroups(ctx)
		return err == nil && ls[group].GroupType == "classic"
	})
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil || ds[group].Err != nil {
		t.Fatal(err, ds[group].Err)
	}
	if g := ds[group]; g.ProtocolType != "consumer" || len(g.Members) != 1 {
		t.Fatalf("described after the downgrade: protocol type %q, %d members", g.ProtocolType, len(g.Members))
	}
	stopProd()
	<-prodDone
	total := produced.Load()
	waitFor("every produced record read", 30*time.Second, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		n := int64(0)
		for _, m := range a.read {
			n += int64(len(m))
		}
		return n >= total
	})
	stopAudit()
	<-auditDone
	stop(c1)
	a.mu.Lock()
	defer a.mu.Unlock()
	t.Logf("%d records produced, read by member %v; %d describes audited", total, a.byMember, describes.Load())
	if n := a.notFound.Load(); n > 0 {
		t.Errorf("clients saw GROUP_ID_NOT_FOUND %d times: %v", n, a.errorsLog)
	}
	if len(a.problems) > 0 {
		t.Fatalf("%d problems: %v", len(a.problems), a.problems)
	}
	if a.byMember["kip848"] == 0 {
		t.Errorf("the KIP-848 member read nothing")
	}
}
