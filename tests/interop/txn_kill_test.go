package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/tests/cluster"
)

// TestTxnCoordinatorKills proves that SIGKILLing a transaction's
// coordinator agent at each dangerous instant loses no committed
// transaction and exposes no partial one: after AddPartitions (records
// written, nothing decided), right after PrepareCommit (decided, no marker
// written: the markers wait in a slow latency class), and midway through
// the markers (those of a fast topic committed, those of a slow one not),
// the last both for a commit and for an abort. Each time the producer's
// EndTxn is retried by the client against the agent that takes the
// transactional ID over, which finishes the end; should the client give
// up on the dead agent first, a new producer of the same ID takes over,
// as an application would. Afterwards a read_committed consumer on every agent reads
// every record of each transaction acknowledged or seen decided
// (PrepareCommit) as committed, each once, none of the aborted ones, and
// of an undecided one all records or none. Then, on the same cluster, the
// exactly-once chain with one coordinator kill (runExactlyOnceChain).
// SHALE_TXN_VERSION=2 runs it with the agents at --transaction-version 2
// (the clients then run KIP-890 part 2).
func TestTxnCoordinatorKills(t *testing.T) {
	t.Parallel() // with the other long failover tests (doc.go)
	var args []string
	if v := os.Getenv("SHALE_TXN_VERSION"); v != "" {
		args = []string{"--transaction-version", v}
	}
	c := cluster.Start(t, cluster.Options{Agents: 3, Args: args})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const fast, slow, parts, perTopic = "txn-kill-fast", "txn-kill-slow", 3, 12
	adm := kadm.NewClient(c.Client(t))
	for _, tc := range []struct {
		name    string
		flushMs string
	}{{fast, ""}, {slow, "3000"}} {
		cfg := map[string]*string{}
		if tc.flushMs != "" {
			cfg["shale.flush.ms"] = &tc.flushMs
		}
		if r, err := adm.CreateTopic(ctx, parts, 1, cfg, tc.name); err != nil || r.Err != nil {
			t.Fatalf("create %s: %v %v", tc.name, err, r.Err)
		}
	}
	meta := metastore.New(testenv.EtcdClient(t, c.EtcdEndpoints()), metastore.DefaultNamespace)

	// SHALE_TXN_KILL_LOG=<file> keeps the producers' kgo log there.
	var logOpt []kgo.Opt
	if path := os.Getenv("SHALE_TXN_KILL_LOG"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		logOpt = append(logOpt, kgo.WithLogger(kgo.BasicLogger(f, kgo.LogLevelInfo, nil)))
	}
	// committed: transactions acknowledged (or decided: PrepareCommit
	// seen in etcd) as committed, every record of which must be read;
	// unknown: transactions whose EndTxn failed before a decision, each
	// all read or none.
	var committed, aborted []string
	unknown := map[string][]string{}
	// runTxn produces perTopic records to each of topics in a transaction
	// of a fresh producer for id, then ends it. killBefore SIGKILLs the
	// coordinator before EndTxn; during (nil: none) runs beside EndTxn
	// and kills it at its instant. The killed agent is restarted after.
	runTxn := func(id string, topics []string, commit, killBefore bool, during func(coord int) (decided bool)) {
		t.Helper()
		t0 := time.Now()
		defer func() { t.Logf("%s: %v", id, time.Since(t0).Round(time.Millisecond)) }()
		cl := c.Client(t, append([]kgo.Opt{kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			// A coordinator's death takes its lease (3 s) and the marker
			// writes of the agent taking over to heal: retry that long.
			kgo.TransactionTimeout(time.Minute), kgo.RequestRetries(1000), kgo.RetryTimeout(2 * time.Minute)}, logOpt...)...)
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("%s: begin: %v", id, err)
		}
		var vals []string
		for _, topic := range topics {
			for i := range perTopic {
				v := fmt.Sprintf("%s/%s/%d", id, topic, i)
				vals = append(vals, v)
				r := &kgo.Record{Topic: topic, Partition: int32(i % parts), Value: []byte(v)}
				cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Errorf("%s: produce: %v", id, err)
					}
				})
			}
		}
		if err := cl.Flush(ctx); err != nil || t.Failed() {
			t.Fatalf("%s: flush: %v", id, err)
		}
		t.Logf("%s: produced after %v", id, time.Since(t0).Round(time.Millisecond))
		done := make(chan error, 1)
		coord := txnCoordinatorIndex(t, ctx, c, adm, id)
		if killBefore {
			c.Kill(coord)
		}
		go func() {
			end := kgo.TryAbort
			if commit {
				end = kgo.TryCommit
			}
			done <- cl.EndTransaction(ctx, end)
		}()
		decided := false
		if during != nil {
			decided = during(coord)
		}
		err := <-done
		if err != nil {
			// The client gave up on the dead coordinator: as an
			// application would, a new producer of the same ID takes
			// over (InitProducerId finishes a decided end, aborts an
			// undecided one).
			t.Logf("%s: end transaction: %v; a new producer takes over", id, err)
			recoverTxnID(t, ctx, c, id)
		}
		if killBefore || during != nil {
			c.Restart(coord)
		}
		switch {
		case commit && (err == nil || decided):
			committed = append(committed, vals...)
		case commit:
			unknown[id] = vals
		default:
			aborted = append(aborted, vals...)
		}
	}
	state := func(id string) metastore.TxnPhase {
		st, _, err := meta.GetTxnState(ctx, id)
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		return st.Phase
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("30s waiting for %s", what)
			}
		}
	}

	// After AddPartitions: the records are in, nothing is decided.
	runTxn("after-add", []string{fast, slow}, true, true, nil)

	// Right after PrepareCommit: every marker waits 3 s in the slow class.
	runTxn("after-prepare", []string{slow}, true, false, func(coord int) bool {
		waitFor("PrepareCommit", func() bool { return state("after-prepare") == metastore.TxnPrepareCommit })
		c.Kill(coord)
		return true
	})

	// Midway through the markers: the fast topic's are written (its
	// partitions' last stable offset moved), the slow topic's are not. An
	// abort first: its fast records must stay invisible once the agent
	// taking over writes the slow topic's abort markers.
	fastID := topicID(t, ctx, adm, fast)
	midMarkers := func(id string, commit bool) {
		phase := metastore.TxnPrepareAbort
		if commit {
			phase = metastore.TxnPrepareCommit
		}
		runTxn(id, []string{fast, slow}, commit, false, func(coord int) bool {
			waitFor("the fast topic's markers", func() bool {
				if state(id) != phase {
					return false
				}
				for p := range int32(parts) {
					st, err := meta.PartitionState(ctx, fastID, p)
					if err != nil || len(st.Txns) > 0 {
						return false
					}
				}
				return true
			})
			c.Kill(coord)
			return true
		})
	}
	midMarkers("abort-mid-markers", false)
	midMarkers("mid-markers", true)

	// Every agent reads exactly the committed records, and of each
	// undecided transaction all records or none.
	for i := range 3 {
		got := readCommitted(t, ctx, c.Addr(i), []string{fast, slow}, len(committed))
		want := append([]string(nil), committed...)
		for id, vals := range unknown {
			n := 0
			for _, v := range vals {
				if slices.Contains(got, v) {
					n++
				}
			}
			switch n {
			case len(vals):
				want = append(want, vals...)
			case 0:
			default:
				t.Errorf("agent %d: transaction %s half visible: %d of %d records", i, id, n, len(vals))
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			var extra, missing []string
			for _, v := range got {
				if _, ok := slices.BinarySearch(want, v); !ok {
					extra = append(extra, v)
				}
			}
			for _, v := range want {
				if _, ok := slices.BinarySearch(got, v); !ok {
					missing = append(missing, v)
				}
			}
			t.Errorf("agent %d read_committed: %d records, want %d; missing %.300q, not committed %.300q",
				i, len(got), len(want), missing, extra)
		}
	}
	t.Run("exactly-once chain", func(t *testing.T) { runExactlyOnceChain(t, c, 1) })
}

// recoverTxnID initializes a new producer of transactional ID id, as an
// application restarting after an unconfirmed EndTxn does, and waits
// until its coordinator reports no transaction in progress.
func recoverTxnID(t *testing.T, ctx context.Context, c *cluster.Cluster, id string) {
	t.Helper()
	cl := c.Client(t, kgo.RetryTimeout(2*time.Minute))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = &id, 60000
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: a new producer could not initialize for a minute: %v %v", id, err, resp)
		}
	}
}

// txnCoordinatorIndex returns which agent process coordinates transactional ID id.
func txnCoordinatorIndex(t *testing.T, ctx context.Context, c *cluster.Cluster, adm *kadm.Client, id string) int {
	t.Helper()
	// The admin client may hold a connection to an agent killed and
	// restarted by an earlier phase: its first request there gets EOF.
	ds, err := adm.DescribeTransactions(ctx, id)
	for deadline := time.Now().Add(15 * time.Second); (err != nil || ds[id].Err != nil) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		ds, err = adm.DescribeTransactions(ctx, id)
	}
	if err != nil || ds[id].Err != nil {
		t.Fatalf("describe %s: %v %v", id, err, ds[id].Err)
	}
	bs, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.NodeID != ds[id].Coordinator {
			continue
		}
		addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		for i := range 3 {
			if c.Addr(i) == addr {
				return i
			}
		}
	}
	t.Fatalf("coordinator %d of %s is no agent of the cluster", ds[id].Coordinator, id)
	return -1
}

func topicID(t *testing.T, ctx context.Context, adm *kadm.Client, topic string) metastore.TopicID {
	t.Helper()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return metastore.TopicID(md.Topics[topic].ID)
}

// readCommitted reads topics from the start through the agent at addr,
// read_committed, until want records or 30 s of nothing new.
func readCommitted(t *testing.T, ctx context.Context, addr string, topics []string, want int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.Dialer(cluster.DialTo(addr)), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	idle := time.Now()
	for time.Since(idle) < 30*time.Second && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		n := len(got)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		if len(got) > n {
			idle = time.Now()
		}
		if len(got) >= want {
			// Give a read past the committed ones a chance to show up.
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
			cancel()
			break
		}
	}
	return got
}
