package interop

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestExactlyOnceChain is make soak's exactly-once chain: runExactlyOnceChain
// with SHALE_EOS_KILLS coordinator kills. make test runs the chain with one
// kill inside TestTxnCoordinatorKills, on that test's cluster.
func TestExactlyOnceChain(t *testing.T) {
	v := os.Getenv("SHALE_EOS_KILLS")
	if v == "" {
		t.Skip("run by make soak (SHALE_EOS_KILLS); make test runs the chain with one kill in TestTxnCoordinatorKills")
	}
	kills, err := strconv.Atoi(v)
	if err != nil || kills < 0 {
		t.Fatalf("SHALE_EOS_KILLS=%q: want a count", v)
	}
	runExactlyOnceChain(t, cluster.Start(t, cluster.Options{Agents: 3}), kills)
}

// runExactlyOnceChain proves exactly-once consume → transform → produce
// across agent kills and group rebalances on c (three agents): workers in
// one group (franz-go GroupTransactSession: the output records and the
// group's offsets in one transaction) copy every input record to an
// output topic, while the agent coordinating a worker's transactional ID
// is SIGKILLed and restarted (kills times), and a worker leaves and
// another joins (two rebalances). A worker whose session fails is
// replaced by a new one of the same transactional ID, as an application
// would. Afterwards a read_committed consumer reads each input record in
// the output exactly once, and nothing else.
func runExactlyOnceChain(t *testing.T, c *cluster.Cluster, kills int) {
	t0 := time.Now()
	const in, out, group, partitions = "eos-in", "eos-out", "eos-group", 4
	n := 1500 + 1000*kills
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(3+kills)*time.Minute)
	defer cancel()
	c.CreateTopic(t, 0, in, partitions)
	c.CreateTopic(t, 0, out, partitions)
	adm := kadm.NewClient(c.Client(t))

	prod := c.Client(t, kgo.DefaultProduceTopic(in))
	for i := range n {
		prod.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%05d", i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce input %d: %v", i, err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil || t.Failed() {
		t.Fatalf("produce input: %v", err)
	}

	// worker copies in to out in transactions under transactional ID id
	// until stop closes, replacing its session when one fails.
	var commits, aborts, restarts atomic.Int64
	worker := func(id string, stop <-chan struct{}, wg *sync.WaitGroup) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.Addrs()...), kgo.TransactionalID(id),
				kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.DefaultProduceTopic(out),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets(),
				kgo.TransactionTimeout(30*time.Second), kgo.SessionTimeout(10*time.Second),
				kgo.RetryTimeout(30*time.Second))
			if err != nil {
				t.Errorf("%s: session: %v", id, err)
				return
			}
			failed := false
			for !failed {
				select {
				case <-stop:
					s.Close()
					return
				default:
				}
				pctx, pcancel := context.WithTimeout(ctx, time.Second)
				fs := s.PollRecords(pctx, 50)
				pcancel()
				if fs.IsClientClosed() || ctx.Err() != nil {
					s.Close()
					return
				}
				if fs.NumRecords() == 0 {
					continue
				}
				if err := s.Begin(); err != nil {
					t.Logf("%s: begin: %v; a new session", id, err)
					failed = true
					break
				}
				fs.EachRecord(func(r *kgo.Record) {
					s.Produce(ctx, &kgo.Record{Value: append([]byte("out-"), r.Value...)}, nil)
				})
				committed, err := s.End(ctx, kgo.TryCommit)
				switch {
				case err != nil:
					t.Logf("%s: end: %v; a new session", id, err)
					failed = true
				case committed:
					commits.Add(1)
				default:
					aborts.Add(1)
				}
			}
			s.Close()
			restarts.Add(1)
		}
	}

	// done reports how many input records the group has committed.
	done := func() int64 {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return 0
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == in && o.Err == nil {
				sum += o.At
			}
		})
		return sum
	}
	waitDone := func(what string, atLeast int64) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); done() < atLeast; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				t.Fatalf("%s: the group committed %d of %d input records in 2 minutes (%d commits, %d aborts, %d sessions replaced)",
					what, done(), atLeast, commits.Load(), aborts.Load(), restarts.Load())
			}
		}
	}

	var wg sync.WaitGroup
	stops := map[string]chan struct{}{}
	start := func(id string) {
		stops[id] = make(chan struct{})
		wg.Add(1)
		go worker(id, stops[id], &wg)
	}
	defer func() {
		for _, s := range stops {
			select {
			case <-s:
			default:
				close(s)
			}
		}
		wg.Wait()
	}()
	t.Logf("%v: input written", time.Since(t0).Round(time.Millisecond))
	start("eos-a")
	start("eos-b")
	step := int64(n) / int64(kills+3)
	waitDone("start", step)
	for k := range kills {
		// The coordinator of a worker's transactional ID that has one yet
		// (a worker starts its first transaction once assigned input).
		id := "eos-a"
		for _, cand := range []string{"eos-a", "eos-b", "eos-c"} {
			if ds, err := adm.DescribeTransactions(ctx, cand); err == nil && ds[cand].Err == nil {
				id = cand
				break
			}
		}
		coord := txnCoordinatorIndex(t, ctx, c, adm, id)
		t.Logf("%v: kill %d: agent %d (coordinating %s) at %d of %d records", time.Since(t0).Round(time.Millisecond), k+1, coord, id, done(), n)
		c.Kill(coord)
		time.Sleep(time.Second)
		c.Restart(coord)
		waitDone(fmt.Sprintf("after kill %d", k+1), int64(k+2)*step)
	}
	t.Logf("%v: eos-b leaves, eos-c joins at %d of %d records", time.Since(t0).Round(time.Millisecond), done(), n)
	close(stops["eos-b"])
	start("eos-c")
	waitDone("all input", int64(n))
	for _, s := range stops {
		select {
		case <-s:
		default:
			close(s)
		}
	}
	wg.Wait()
	t.Logf("%v: %d transactions committed, %d aborted, %d sessions replaced", time.Since(t0).Round(time.Millisecond), commits.Load(), aborts.Load(), restarts.Load())

	// The audit: one read_committed read of the whole output.
	got := readCommitted(t, ctx, c.Addr(1), []string{out}, n)
	seen := make(map[string]int, n)
	for _, v := range got {
		seen[v]++
	}
	var missing, dup, extra int
	for i := range n {
		switch seen[fmt.Sprintf("out-%05d", i)] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
		delete(seen, fmt.Sprintf("out-%05d", i))
	}
	extra = len(seen)
	if missing+dup+extra > 0 || len(got) != n {
		t.Errorf("output read_committed: %d records for %d inputs: %d missing, %d more than once, %d not from the input", len(got), n, missing, dup, extra)
	}
}
