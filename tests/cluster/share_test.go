package cluster

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestShareWorkQueue proves a share group works as a queue over two agent
// processes, through a SIGKILL of the agent coordinating it: 3 partitions,
// 12 share consumers following Metadata to both agents (4 to a
// partition, each acquiring at most 50 records a fetch), every one of
// which receives work. Every record is
// delivered as new (delivery count 1) once only; records to accept are all
// accepted and the group ends with no lag; a record accepted or rejected
// is never delivered again (after the kill, acknowledgements made in the
// last 3 s may have died with the agent unapplied: those records come back,
// as Kafka would redeliver them; records a fetch acquired whose answer
// died with the agent first reach a worker with delivery count 2);
// released records come back; rejected ones are never accepted;
// always-released ones are archived after the delivery limit (5); records acquired by a member that vanished without
// a word come back once their lock (2 s) expires.
func TestShareWorkQueue(t *testing.T) {
	c := Start(t, Options{Agents: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic, group, n = "jobs", "workers", 3000
	c.CreateTopic(t, 0, topic, 3)
	adm := kadm.NewClient(c.Client(t))
	prod := c.Client(t, kgo.DefaultProduceTopic(topic))
	rs := make([]*kgo.Record, n)
	for i := range n {
		rs[i] = &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("job")}
	}
	if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Keys go by key%10: 1 rejected, 2 always released, 3 released on
	// first delivery, the rest accepted.
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for k, v := range map[string]string{"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": "2000"} {
		cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
		res.Configs = append(res.Configs, cfg)
	}
	req.Resources = append(req.Resources, res)
	if resp, err := req.RequestWith(ctx, c.Client(t)); err != nil || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("group configs: %v %v", err, resp)
	}

	// A member that acquires records and disappears: raw ShareFetch, no
	// acknowledgement, no close.
	ghost := ghostAcquire(ctx, t, c, group, topic)

	type seen struct {
		deliveries, firsts, accepted, acceptedBeforeKill int
		ghost                                            bool      // the vanished member had it first
		doneAt                                           time.Time // first accepted or rejected
		firstAt                                          time.Time // first delivered to a worker
		again                                            bool      // delivered after that, beyond what a kill excuses
	}
	var killAt time.Time
	ghostOff := map[int64]bool{}
	for _, o := range ghost {
		ghostOff[o] = true
	}
	// limit is how many deliveries reach workers before the delivery
	// limit archives a record: one fewer when its first went to the
	// vanished member or to a fetch answer lost with the killed agent.
	limit := func(s *seen, lostFetch bool) int {
		if s.ghost || lostFetch {
			return 4
		}
		return 5
	}
	var mu sync.Mutex
	keys := map[int]*seen{}
	keyAt := map[int64]int{} // partition 0's offsets' keys
	killed := false
	const workers = 12
	perWorker := make([]int, workers)
	var wg sync.WaitGroup
	cctx, ccancel := context.WithCancel(ctx)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics(topic), kgo.ShareGroup(group),
				kgo.ClientID("worker-"+strconv.Itoa(i)), kgo.FetchMaxWait(500*time.Millisecond), kgo.ShareMaxRecords(50))
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			for cctx.Err() == nil {
				fs := cl.PollFetches(cctx)
				for _, r := range fs.Records() {
					k, _ := strconv.Atoi(string(r.Key))
					mu.Lock()
					s := keys[k]
					if s == nil {
						s = &seen{}
						keys[k] = s
					}
					if r.Partition == 0 {
						keyAt[r.Offset] = k
						if ghostOff[r.Offset] {
							s.ghost = true
						}
					}
					if !s.doneAt.IsZero() && (killAt.IsZero() || s.doneAt.Before(killAt.Add(-3*time.Second))) {
						s.again = true
					}
					if s.deliveries == 0 {
						s.firstAt = time.Now()
					}
					s.deliveries++
					perWorker[i]++
					if r.DeliveryCount() == 1 {
						s.firsts++
					}
					switch {
					case k%10 == 1:
						r.Ack(kgo.AckReject)
						if s.doneAt.IsZero() {
							s.doneAt = time.Now()
						}
					case k%10 == 2, k%10 == 3 && r.DeliveryCount() == 1:
						r.Ack(kgo.AckRelease)
					default:
						r.Ack(kgo.AckAccept)
						s.accepted++
						if s.doneAt.IsZero() {
							s.doneAt = time.Now()
						}
						if !killed {
							s.acceptedBeforeKill++
						}
					}
					mu.Unlock()
				}
				fctx, fcancel := context.WithTimeout(cctx, 10*time.Second)
				_ = cl.FlushAcks(fctx) // acks lost with the killed agent are redelivered
				fcancel()
			}
		}()
	}
	done := func() (int, bool) {
		mu.Lock()
		ok := 0
		for k := range n {
			if s := keys[k]; s != nil && (k%10 == 1 || k%10 == 2 || s.accepted >= 1) {
				ok++
			}
		}
		mu.Unlock()
		if ok < n {
			return ok, false
		}
		// Everything acknowledged or archived: no lag left. Asked by a
		// fresh client of the live agents: one that knew the killed
		// coordinator keeps dialing it.
		var live []string
		for i, a := range c.Addrs() {
			if c.Running(i) {
				live = append(live, a)
			}
		}
		fresh, err := kgo.NewClient(kgo.SeedBrokers(live...))
		if err != nil {
			return ok, false
		}
		defer fresh.Close()
		offs, err := kadm.NewClient(fresh).DescribeShareGroupOffsets(ctx, group)
		if err != nil || offs.Error() != nil {
			return ok, false
		}
		for p := range int32(3) {
			if o, found := offs[group].Offsets.Lookup(topic, p); !found || o.Lag != 0 {
				return ok, false
			}
		}
		return ok, true
	}
	coord := coordinatorOf(ctx, t, adm, group)
	for {
		if ok, _ := done(); ok >= n/2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("half the work was never done")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, addr := range c.Addrs() {
		if agentNodeID(ctx, t, addr) == coord {
			mu.Lock()
			killed, killAt = true, time.Now()
			mu.Unlock()
			c.Kill(i)
			t.Logf("killed agent %d (node %d), the group's coordinator", i, coord)
		}
	}
	for {
		if _, all := done(); all {
			break
		}
		if ctx.Err() != nil {
			ok, _ := done()
			t.Fatalf("only %d of %d records done after the kill (or lag left)", ok, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ccancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	dups, lostFetches := 0, 0
	for k := range n {
		s := keys[k]
		// A record acquired by a ShareFetch whose answer died with the
		// killed agent reaches a worker first with delivery count 2,
		// once its lock expires: it was never delivered before.
		lostFetch := !s.ghost && s.firsts == 0 && !killAt.IsZero() && s.firstAt.After(killAt)
		if lostFetch {
			lostFetches++
		}
		switch {
		case s.ghost && s.firsts != 0:
			t.Errorf("key %d delivered as new though the vanished member had it", k)
		case !s.ghost && s.firsts != 1 && !lostFetch:
			t.Errorf("key %d delivered as new %d times", k, s.firsts)
		case s.again:
			t.Errorf("key %d delivered again after it was accepted or rejected (%d deliveries)", k, s.deliveries)
		case k%10 == 1 && s.accepted != 0:
			t.Errorf("rejected key %d accepted", k)
		case k%10 == 2 && (s.deliveries > limit(s, lostFetch) || s.accepted != 0):
			t.Errorf("always-released key %d delivered %d times (limit 5)", k, s.deliveries)
		case k%10 == 3 && !s.ghost && !lostFetch && s.deliveries < 2:
			t.Errorf("released key %d never came back", k)
		case s.acceptedBeforeKill > 1:
			t.Errorf("key %d accepted %d times before the kill", k, s.acceptedBeforeKill)
		}
		if s.accepted > 1 {
			dups++
		}
	}
	for i, got := range perWorker {
		if got == 0 {
			t.Errorf("worker %d of %d received no work", i, workers)
		}
	}
	for _, o := range ghost {
		k, ok := keyAt[o]
		if !ok {
			t.Errorf("offset %d of partition 0, held by the vanished member, never redelivered after its lock expired", o)
			continue
		}
		if !keys[k].ghost {
			t.Errorf("key %d at offset %d not marked", k, o)
		}
	}
	t.Logf("%d keys, %d held by a vanished member, %d accepted again after the kill (acks in flight to the killed agent), %d first delivered after the kill with count 2 (acquired by a fetch whose answer died with the agent), deliveries per worker %v", n, len(ghost), dups, lostFetches, perWorker)
}

// ghostAcquire acquires records of partition 0 as member "ghost" and
// returns their offsets, never acknowledging them.
func ghostAcquire(ctx context.Context, t *testing.T, c *Cluster, group, topic string) []int64 {
	t.Helper()
	cl := c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(DialTo(c.Addr(0))))
	hb := kmsg.NewPtrShareGroupHeartbeatRequest()
	hb.GroupID, hb.MemberID, hb.SubscribedTopicNames = group, "ghost", []string{topic}
	for { // the agent that claims the group answers (FindCoordinator's winner may be the other)
		resp, err := hb.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode == 0 {
			break
		}
		if resp.ErrorCode != kerr.NotCoordinator.Code || ctx.Err() != nil {
			t.Fatalf("ghost joins: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		cl = c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(DialTo(c.Addr(1))))
	}
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	f := kmsg.NewPtrShareFetchRequest()
	f.GroupID, f.MemberID, f.MaxRecords, f.BatchSize, f.MaxBytes, f.MaxWaitMillis = kmsg.StringPtr(group), kmsg.StringPtr("ghost"), 40, 40, 1<<20, 1000
	ft := kmsg.NewShareFetchRequestTopic()
	ft.TopicID = md.Topics[topic].ID
	ft.Partitions = append(ft.Partitions, kmsg.ShareFetchRequestTopicPartition{Partition: 0, PartitionMaxBytes: 1 << 20})
	f.Topics = append(f.Topics, ft)
	resp, err := f.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("ghost fetch: %v %v", err, resp)
	}
	var offsets []int64
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			for _, a := range p.AcquiredRecords {
				for o := a.FirstOffset; o <= a.LastOffset; o++ {
					offsets = append(offsets, o)
				}
			}
		}
	}
	if len(offsets) == 0 {
		t.Fatal("the vanished member acquired nothing")
	}
	return offsets
}
