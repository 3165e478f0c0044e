package reliability

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/faultproxy"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/tests/cluster"
)

// campaignKills is the number of agent kills of the crash campaign:
// $SHALE_SOAK_KILLS (make soak) or a short default for make test.
func campaignKills(t *testing.T) int {
	t.Helper()
	if v := os.Getenv("SHALE_SOAK_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("SHALE_SOAK_KILLS=%q: want a positive number", v)
		}
		return n
	}
	return 10
}

// TestCrashCampaign proves DESIGN invariants 1-3 under repeated SIGKILLs:
// three agent processes serve two idempotent and two non-idempotent
// acks=all producers while a random agent is SIGKILLed at a random instant
// and restarted, over and over, and etcd itself (a child process) is
// SIGKILLed and restarted once half-way. PUTs are slowed at random and
// objects kept small so every kill lands with several uploads and commits
// in flight (the pipelined write path). Afterwards the auditor reads the
// whole log through every agent: no acknowledged record lost or moved, no
// gap, the same bytes from every agent, no duplicate from an idempotent
// producer, every producer's order kept.
func TestCrashCampaign(t *testing.T) {
	kills := campaignKills(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0x5ea1e))
	t.Logf("crash campaign: %d kills, seed %d", kills, seed)

	etcd := testenv.StartEtcdProcess(t)
	// Small objects (sealed at 16 KiB or every 10 ms) and PUTs
	// delayed at random (up to 300 ms, so they finish out of seal order)
	// keep several uploads and commits in flight at each kill: the
	// pipelined path, commit passes of several objects.
	s3 := testenv.S3(t)
	proxy, err := faultproxy.Start("127.0.0.1:0", s3.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	proxy.SetRates(faultproxy.Rates{P: map[faultproxy.Kind]float64{faultproxy.Delay: 1}, DelayUpTo: 300 * time.Millisecond,
		Match: func(r *http.Request) bool { return r.Method == http.MethodPut }})
	viaProxy := s3
	viaProxy.Endpoint = proxy.URL()
	c := cluster.Start(t, cluster.Options{Agents: 3, EtcdEndpoints: etcd.Endpoints(), S3: &viaProxy,
		Args: []string{"--flush-bytes", "16KiB", "--flush-interval", "10ms"}})
	const topic = "crash"
	c.CreateTopic(t, 0, topic, 6)

	a := NewAuditor()
	specs := []ProducerSpec{{"idem-a", true}, {"idem-b", true}, {"plain-a", false}, {"plain-b", false}}
	load := a.StartLoad(t, c.Addrs(), topic, specs, 5_000_000)
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
	}()

	waitAcks(t, a, 200, 30*time.Second)
	etcdAt := kills / 2
	var pipe pipelineCounts
	start := time.Now()
	perAgent := make([]int, 3)
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond)
		i := rng.IntN(3)
		before := a.Acked()
		pipe.add(c, i) // what this incarnation committed, before it dies
		c.Kill(i)
		perAgent[i]++
		victims := []int{i}
		if rng.IntN(5) == 0 && k+1 < kills {
			// Now and then two agents are down at once: one survivor
			// serves everything meanwhile.
			j := (i + 1 + rng.IntN(2)) % 3
			time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
			pipe.add(c, j)
			c.Kill(j)
			perAgent[j]++
			victims = append(victims, j)
			k++
		}
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		for _, v := range victims {
			c.Restart(v)
		}
		if k >= etcdAt && etcd.Restarts == 0 {
			etcd.Kill()
			time.Sleep(time.Duration(200+rng.IntN(500)) * time.Millisecond)
			etcd.Restart()
			t.Logf("etcd SIGKILLed and restarted after kill %d", k+1)
		}
		if (k+1)%25 == 0 || k+1 == kills {
			t.Logf("kill %d/%d (agent %d) after %v: %d acknowledged (%d before this kill), %d failed",
				k+1, kills, i, time.Since(start).Round(time.Second), a.Acked(), before, a.Failed())
		}
	}
	// The cluster must still make progress after the last kill.
	waitAcks(t, a, a.Acked()+200, 60*time.Second)
	load.Stop()
	stopped = true
	for i := range 3 {
		pipe.add(c, i)
	}
	t.Logf("agents committed %d objects in %d commit passes", pipe.objects, pipe.passes)
	if pipe.objects <= pipe.passes {
		t.Errorf("%d objects in %d commit passes: no pass carried several objects, the pipelined path was not exercised", pipe.objects, pipe.passes)
	}

	rep := a.Verify(t, c.Addrs(), topic)
	summary := fmt.Sprintf("crash campaign: %d agent kills (per agent %v), %d etcd kill(s); %s", kills, perAgent, etcd.Restarts, rep)
	t.Log(summary)
	fmt.Println(summary)
	for msg, n := range rep.FailedBy {
		t.Logf("  failed (allowed: never acknowledged) x%d: %s", n, msg)
	}
	if !rep.OK() {
		t.Errorf("audit failed: %s", rep)
	}
	if l := rep.FirstLost; l != nil {
		dumpIndex(t, etcd.Endpoints(), topic, l.Partition, l.Offset)
	}
}

// dumpIndex logs the etcd index entries around offset, to diagnose a loss.
func dumpIndex(t *testing.T, endpoints []string, topic string, partition int32, offset int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	meta := metastore.New(testenv.EtcdClient(t, endpoints), "/shale")
	tp, err := meta.GetTopic(ctx, topic)
	if err != nil {
		t.Logf("dump index: %v", err)
		return
	}
	entries, err := meta.FindEntries(ctx, tp.ID, partition, max(0, offset-2000), 20)
	if err != nil {
		t.Logf("dump index: %v", err)
		return
	}
	for _, e := range entries {
		t.Logf("index %d/[%d, %d] object %s pos %d size %d batches %d committed %d", partition, e.BaseOffset, e.LastOffset, e.ObjectKey, e.Pos, e.Size, e.Batches, e.CommittedMs)
	}
}

// waitAcks waits until at least n records are acknowledged.
func waitAcks(t *testing.T, a *Auditor, n int, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for a.Acked() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d acknowledgements within %v (%d failed)", a.Acked(), n, bound, a.Failed())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pipelineCounts sums agents' committed objects and commit passes
// (shale_committed_objects_total, shale_commit_passes_total): more objects
// than passes means passes carried several objects.
type pipelineCounts struct{ objects, passes int64 }

// add reads agent i's counters (its current incarnation's lifetime); an
// agent that does not answer adds nothing.
func (pc *pipelineCounts) add(c *cluster.Cluster, i int) {
	cl := &http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + c.AdminAddr(i) + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		n, _ := strconv.ParseFloat(v, 64)
		switch {
		case ok && name == "shale_committed_objects_total":
			pc.objects += int64(n)
		case ok && name == "shale_commit_passes_total":
			pc.passes += int64(n)
		}
	}
}
