package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/tests/cluster"
)

// compactedKills is the number of kills of TestCrashCampaignCompacted:
// $SHALE_SOAK_KILLS (make soak). Without it the test is skipped: it takes
// about 20 s even at 3 kills; make test covers killed key compaction with
// lifecycle's TestKilledKeyCompactionKeepsLatest (a child process running
// the job SIGKILLed 20 times) and the refused-swap case with
// TestCompactKeysConflictKeepsCheckpoint.
func compactedKills(t *testing.T) int {
	t.Helper()
	if os.Getenv("SHALE_SOAK_KILLS") == "" {
		t.Skip("agent-level kill campaign of key compaction: run by make soak (SHALE_SOAK_KILLS=n)")
	}
	return campaignKills(t)
}

// TestCrashCampaignCompacted SIGKILLs the agent running the key-compaction
// job: two agent processes (lifecycle every 100 ms, objects compactable
// 10 ms after their commit, GC grace 5 s) serve an idempotent producer of
// keyed records and tombstones into a cleanup.policy=compact topic
// (delete.retention.ms 0: tombstones go too), while the agent leading the
// key-compaction job in etcd is SIGKILLed at a random instant and
// restarted, again and again (the other agent takes the job over). At the
// end, once a pass has run after the load: every record read through
// either agent is the one acknowledged at its offset; for every key the
// last record read is its latest acknowledged one when that is a value (a
// live value is never lost) and never an older one (nothing deleted comes
// back); the whole log reads through both agents (no referenced object
// deleted); and the pass left at most one record per key.
func TestCrashCampaignCompacted(t *testing.T) {
	kills := compactedKills(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0xc0c0))
	c := cluster.Start(t, cluster.Options{Agents: 2, Args: []string{"--lifecycle-interval", "100ms", "--compaction-settle", "10ms",
		"--gc-grace", "5s", "--flush-interval", "10ms"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(60+5*kills)*time.Second)
	defer cancel()
	const topic = "compacted-crash"
	adm := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(cluster.DialTo(c.Addr(0)))))
	cfg := map[string]*string{}
	for k, v := range map[string]string{"cleanup.policy": "compact", "segment.ms": "1", "min.cleanable.dirty.ratio": "0", "delete.retention.ms": "0"} {
		cfg[k] = kadm.StringPtr(v)
	}
	if resp, err := adm.CreateTopic(ctx, 1, 1, cfg, topic); err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, resp.Err)
	}
	etcd, err := clientv3.New(clientv3.Config{Endpoints: c.EtcdEndpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	meta := metastore.New(etcd, metastore.DefaultNamespace)

	// The producer: keys k00..k29, one in five records a tombstone.
	type rec struct {
		key, value string
		tomb       bool
	}
	acked := map[int64]rec{}       // offset -> record acknowledged there
	uncertain := map[string]bool{} // keys with a produce of unknown outcome
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		p := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(20*time.Second))
		prng := rand.New(rand.NewPCG(seed, 1))
		for n := 0; loadCtx.Err() == nil && n < 1_000_000; n++ {
			r := rec{key: fmt.Sprintf("k%02d", prng.IntN(30)), value: fmt.Sprintf("v%06d", n), tomb: prng.IntN(5) == 0}
			kr := &kgo.Record{Key: []byte(r.key), Value: []byte(r.value)}
			if r.tomb {
				kr.Value = nil
			}
			if err := p.ProduceSync(loadCtx, kr).FirstErr(); err != nil {
				uncertain[r.key] = true
				continue
			}
			acked[kr.Offset] = r
			time.Sleep(2 * time.Millisecond)
		}
	}()

	leaderKills := 0
	for k := range kills {
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		holder, err := meta.JobLeader(ctx, lifecycle.JobKeyCompaction)
		if err != nil {
			t.Fatal(err)
		}
		victim := rng.IntN(2)
		for i := range 2 {
			if strings.Contains(holder, c.Addr(i)) {
				victim = i
				leaderKills++
			}
		}
		c.Kill(victim)
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		c.Restart(victim)
		if (k+1)%10 == 0 || k+1 == kills {
			t.Logf("kill %d/%d: agent %d (key-compaction leader %q)", k+1, kills, victim, holder)
		}
	}
	stopLoad()
	<-loadDone
	if len(acked) == 0 {
		t.Fatal("nothing acknowledged")
	}
	end := int64(0)
	for off := range acked {
		end = max(end, off+1)
	}
	tp, err := meta.GetTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	// A pass after the load: the cleaner checkpoint reaches the end.
	for {
		st, err := meta.GetCleanerState(ctx, tp.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.Checkpoint >= end {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("cleaner checkpoint %d, never reached the end %d", st.Checkpoint, end)
		}
		time.Sleep(100 * time.Millisecond)
	}
	last := map[string]int64{}
	for off, r := range acked {
		if off >= last[r.key] {
			last[r.key] = off
		}
	}
	stored := 0
	for i := range 2 {
		cl := c.Client(t, kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(cluster.DialTo(c.Addr(i))),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		seen := map[string]int64{}
		n, maxOff := 0, int64(-1)
		for maxOff < end-1 {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("agent %d: read up to %d of %d: %v", i, maxOff, end, ctx.Err())
			}
			for _, fe := range fs.Errors() {
				t.Fatalf("agent %d: fetch: %v (an object referenced but deleted?)", i, fe.Err)
			}
			fs.EachRecord(func(kr *kgo.Record) {
				maxOff = max(maxOff, kr.Offset)
				n++
				r, ok := acked[kr.Offset]
				if !ok {
					if !uncertain[string(kr.Key)] {
						t.Errorf("agent %d: offset %d holds %s=%q, never acknowledged", i, kr.Offset, kr.Key, kr.Value)
					}
					return
				}
				if r.key != string(kr.Key) || r.tomb != (kr.Value == nil) || !r.tomb && r.value != string(kr.Value) {
					t.Errorf("agent %d: offset %d holds %s=%q, acknowledged %+v", i, kr.Offset, kr.Key, kr.Value, r)
				}
				seen[string(kr.Key)] = kr.Offset
			})
		}
		cl.Close()
		for key, off := range last {
			if uncertain[key] {
				continue
			}
			got, ok := seen[key]
			switch {
			case !acked[off].tomb && got != off:
				t.Errorf("agent %d: key %s: latest value at %d lost (last read %d, present %v)", i, key, off, got, ok)
			case acked[off].tomb && ok && got != off:
				t.Errorf("agent %d: key %s: deleted at %d, but its record at %d is back", i, key, off, got)
			}
		}
		stored = n
	}
	t.Logf("%d SIGKILLs (%d of the key-compaction leader), seed %d: %d records acknowledged, %d keys of unknown outcome, %d read back after compaction",
		kills, leaderKills, seed, len(acked), len(uncertain), stored)
	if stored > len(last)+len(uncertain) {
		t.Errorf("%d records read after a pass over the whole log, want at most one per key (%d keys, %d of unknown outcome)", stored, len(last), len(uncertain))
	}
}
