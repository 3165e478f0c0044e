package reliability

import (
	"fmt"
	"testing"
	"time"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestGracefulShutdown proves SIGTERM is a clean hand-over: while two
// idempotent and one non-idempotent acks=all producer run against two
// agents, each agent in turn is sent SIGTERM (three times in all, restarted
// in between). Each exits cleanly and promptly; it stops reading requests,
// flushes its buffer and answers the produces it had read before closing
// their connections, so no produce hangs and none fails: whatever a
// stopping agent did not answer, the client retries through the other
// agent, and since nothing written goes unanswered, even the non-idempotent
// producer has no duplicate. The audit then finds every acknowledged record
// in place, no gap.
func TestGracefulShutdown(t *testing.T) {
	const (
		stops     = 3
		exitBound = 10 * time.Second
	)
	c := cluster.Start(t, cluster.Options{Agents: 2, Args: []string{"--flush-interval", "200ms"}})
	const topic = "sigterm"
	c.CreateTopic(t, 0, topic, 4)
	a := NewAuditor()
	load := a.StartLoad(t, c.Addrs(), topic, []ProducerSpec{{"idem-a", true}, {"idem-b", true}, {"plain", false}}, 5_000_000)
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
	}()
	waitAcks(t, a, 500, 30*time.Second)
	var exits []time.Duration
	for k := range stops {
		i := k % 2
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		c.Stop(i) // SIGTERM; fails the test on a non-zero exit or a needed SIGKILL
		took := time.Since(start)
		exits = append(exits, took.Round(time.Millisecond))
		if took > exitBound {
			t.Errorf("agent %d took %v to exit after SIGTERM", i, took)
		}
		// Production continues through the other agent meanwhile.
		waitAcks(t, a, a.Acked()+300, 30*time.Second)
		c.Restart(i)
	}
	waitAcks(t, a, a.Acked()+300, 30*time.Second)
	load.Stop()
	stopped = true
	rep := a.Verify(t, c.Addrs(), topic)
	summary := fmt.Sprintf("graceful shutdown: %d SIGTERMs, exit times %v; %s", stops, exits, rep)
	t.Log(summary)
	fmt.Println(summary)
	for msg, n := range rep.FailedBy {
		t.Errorf("produce failed x%d (want none: a stopping agent answers or the retry succeeds elsewhere): %s", n, msg)
	}
	// Before graceful shutdown, a stopping agent dropped produces it had
	// written but not answered, and non-idempotent retries duplicated them.
	if rep.DupPlain > 0 {
		t.Errorf("%d records of the non-idempotent producer duplicated: a stopping agent dropped answers", rep.DupPlain)
	}
	if !rep.OK() {
		t.Errorf("audit failed: %s", rep)
	}
}
