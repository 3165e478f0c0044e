package reliability

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/internal/faultproxy"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/tests/cluster"
)

// TestS3Faults proves that a misbehaving object store costs errors and
// retries, never acknowledged records: two agents reach a real versitygw
// through faultproxy, which answers 500 and 503 SlowDown, hangs, resets
// connections (before or after the store applied the request), truncates
// and trickles bodies. Producers (idempotent and not) and a consumer reading
// through the other agent run meanwhile; every record the consumer sees is
// intact. Then requests hang far longer than an upload attempt may take:
// the agent races a hung PUT with a second one after the hedge delay and
// abandons attempts past their timeout, so production goes on.
// When the faults stop, production succeeds again, and the auditor finds
// every acknowledged record in place, no gap, no idempotent duplicate, the
// same bytes through both agents.
func TestS3Faults(t *testing.T) {
	const (
		faultyFor = 12 * time.Second
		rate      = 0.04 // per kind per request: about 22% of requests fail somehow
		hangFor   = 8 * time.Second
	)
	s3 := testenv.S3(t)
	proxy, err := faultproxy.Start("127.0.0.1:0", s3.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	viaProxy := s3
	viaProxy.Endpoint = proxy.URL()
	c := cluster.Start(t, cluster.Options{Agents: 2, S3: &viaProxy})
	const topic = "s3faults"
	c.CreateTopic(t, 0, topic, 4)

	a := NewAuditor()
	load := a.StartLoad(t, c.Addrs(), topic, []ProducerSpec{{"idem", true}, {"plain", false}}, 5_000_000)
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
	}()
	waitAcks(t, a, 100, 30*time.Second)

	// A consumer pinned to agent 1 reads during the faults: it may see
	// errors, never damaged records.
	rctx, rcancel := context.WithCancel(context.Background())
	readerDone := make(chan [3]int, 1)
	go func() {
		var n [3]int // records read, damaged records, fetch errors
		defer func() { readerDone <- n }()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(cluster.DialTo(c.Addr(1))),
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			return
		}
		defer cl.Close()
		for rctx.Err() == nil {
			fs := cl.PollFetches(rctx)
			n[2] += len(fs.Errors())
			fs.EachRecord(func(r *kgo.Record) {
				n[0]++
				if _, _, ok := parseValue(r.Value); !ok {
					n[1]++
				}
			})
		}
	}()

	proxy.SetRates(faultproxy.Rates{P: uniform(rate), HangFor: 2 * time.Second, SlowFor: 500 * time.Millisecond})
	faultStart := a.Acked()
	time.Sleep(faultyFor)
	hangStart := a.Acked()
	// Then requests that hang far longer than an upload attempt may take:
	// the agent hedges and retries rather than stall.
	proxy.SetRates(faultproxy.Rates{P: map[faultproxy.Kind]float64{faultproxy.Hang: 0.2}, HangFor: 25 * time.Second})
	time.Sleep(hangFor)
	proxy.SetRates(faultproxy.Rates{})
	duringFaults, duringHangs := a.Acked()-faultStart, a.Acked()-hangStart
	counts := proxy.Counts()
	rcancel()
	read := <-readerDone

	// Recovery: production goes on without faults.
	waitAcks(t, a, a.Acked()+500, 60*time.Second)
	load.Stop()
	stopped = true
	rep := a.Verify(t, c.Addrs(), topic)

	kinds := make([]string, 0, len(counts))
	total := int64(0)
	for k, n := range counts {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
		total += n
	}
	sort.Strings(kinds)
	summary := fmt.Sprintf("s3 faults: %d of %d S3 requests faulted %v; %d acknowledged during %v of faults (%d during the hangs); consumer during faults read %d records (%d damaged, %d fetch errors); %s",
		total, proxy.Requests(), kinds, duringFaults, faultyFor+hangFor, duringHangs, read[0], read[1], read[2], rep)
	t.Log(summary)
	fmt.Println(summary)
	for msg, n := range rep.FailedBy {
		t.Logf("  failed (allowed: never acknowledged) x%d: %s", n, msg)
	}
	if total == 0 {
		t.Errorf("no fault was injected")
	}
	if read[1] > 0 {
		t.Errorf("consumer read %d damaged records during faults", read[1])
	}
	if read[0] == 0 {
		t.Errorf("the consumer read no record during the faults: nothing was checked for damage")
	}
	if duringFaults-duringHangs == 0 || duringHangs == 0 {
		t.Errorf("production stopped during the faults: %d acknowledged while requests failed, %d while they hung; want some in each",
			duringFaults-duringHangs, duringHangs)
	}
	if !rep.OK() {
		t.Errorf("audit failed: %s", rep)
	}
}

func uniform(p float64) map[faultproxy.Kind]float64 {
	m := map[faultproxy.Kind]float64{}
	for _, k := range faultproxy.Kinds {
		m[k] = p
	}
	return m
}
