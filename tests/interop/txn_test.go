package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestPythonTransactions proves, with confluent-kafka for Python
// (librdkafka) producing through agent A and consuming through agent B,
// that a transactional producer commits, aborts and commits again; that a
// read_committed consumer reads exactly the committed records and a
// read_uncommitted one every record (aborted included) and no marker;
// and that a second producer with the same transactional.id fences the
// first, whose next transaction fails with a fatal fenced error.
func TestPythonTransactions(t *testing.T) {
	python, script := pythonScript(t, "txn.py")

	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic, partitions, count = "python-txn", 3, 50
	c.CreateTopic(t, 0, topic, partitions)
	env := append(os.Environ(),
		"SHALE_PRODUCE_BOOTSTRAP="+c.Addr(0), "SHALE_CONSUME_BOOTSTRAP="+c.Addr(1),
		"SHALE_TOPIC="+topic, "SHALE_COUNT="+strconv.Itoa(count), "SHALE_PARTITIONS="+strconv.Itoa(partitions),
		"SHALE_TXN_ID=python-txn-1", "SHALE_READ_TIMEOUT="+strconv.Itoa(int(readTimeout.Seconds())))
	res := execTool(t, 2*toolTimeout, nil, env, python, script)
	if res.err != nil {
		t.Fatalf("txn.py: %v after %v\nstderr (first 4 KiB):\n%.4096s", res.err, res.elapsed, res.stderr)
	}
	var out struct {
		Committed, Uncommitted []struct {
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
			Value     string `json:"value"`
		}
		Fenced      *string  `json:"fenced"`
		FencedFatal bool     `json:"fenced_fatal"`
		Errors      []string `json:"errors"`
	}
	if err := json.Unmarshal(res.stdout, &out); err != nil {
		t.Fatalf("txn.py output: %v\n%.4096s\nstderr:\n%.4096s", err, res.stdout, res.stderr)
	}
	if len(out.Errors) > 0 {
		t.Errorf("txn.py errors: %q", out.Errors)
	}
	values := func(recs []struct {
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
		Value     string `json:"value"`
	}) []string {
		var vs []string
		for _, r := range recs {
			vs = append(vs, r.Value)
		}
		slices.Sort(vs)
		return vs
	}
	want := func(prefixes ...string) []string { return txnValues(count, prefixes...) }
	if got, w := values(out.Committed), want("c1", "c2", "c3"); !slices.Equal(got, w) {
		t.Errorf("read_committed read %d records, want the %d committed ones (c1, c2, c3): %.300q", len(got), len(w), got)
	}
	if got, w := values(out.Uncommitted), want("c1", "a", "c2", "c3"); !slices.Equal(got, w) {
		t.Errorf("read_uncommitted read %d records, want %d (c1, a, c2, c3): %.300q", len(got), len(w), got)
	}
	if out.Fenced == nil || !out.FencedFatal || !strings.Contains(strings.ToLower(*out.Fenced), "fenced") {
		t.Errorf("the first producer after the second's init: error %v (fatal %v), want a fatal fenced error", out.Fenced, out.FencedFatal)
	}
}

// TestTransactionsAcrossAgents proves that transactions written through
// agent A (franz-go, every connection pinned to A, so A coordinates them
// and writes their markers) read the same through both agents: a
// read_committed Fetch stops at the same last stable offset while a
// transaction is open, lists the same aborted transactions, and a
// read_committed consumer on agent B reads exactly the committed records,
// once the open transaction commits.
func TestTransactionsAcrossAgents(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2})
	const topic = "txn-agents"
	c.CreateTopic(t, 0, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	txnClient := func(id string) *kgo.Client {
		return c.Client(t, kgo.SeedBrokers(c.Addr(0)), kgo.Dialer(cluster.DialTo(c.Addr(0))),
			kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	// end nil leaves the transaction open.
	runTxn := func(cl *kgo.Client, prefix string, n int, end *kgo.TransactionEndTry) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("begin %s: %v", prefix, err)
		}
		for i := range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i)}).FirstErr(); err != nil {
				t.Fatalf("produce %s-%d: %v", prefix, i, err)
			}
		}
		if end == nil {
			return
		}
		if err := cl.EndTransaction(ctx, *end); err != nil {
			t.Fatalf("end %s: %v", prefix, err)
		}
	}
	p1, p2 := txnClient("agents-1"), txnClient("agents-2")
	commit, abort := kgo.TryCommit, kgo.TryAbort
	runTxn(p1, "c1", 10, &commit)
	runTxn(p1, "a", 10, &abort)
	runTxn(p2, "open", 5, nil) // offsets 22..26 after c1, its marker, a, its marker
	runTxn(p1, "c2", 10, &commit)

	// While "open" is open, both agents answer read_committed the same.
	type view struct {
		hwm, lso int64
		aborted  []int64 // first offsets
		values   []string
	}
	fetch := func(i int) view {
		t.Helper()
		// Fetch v12 names topics; newer versions need the topic ID.
		vs := kversion.Stable()
		vs.SetMaxKeyVersion(kmsg.Fetch.Int16(), 12)
		cl := c.Client(t, kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(cluster.DialTo(c.Addr(i))), kgo.MaxVersions(vs))
		req := kmsg.NewPtrFetchRequest()
		req.IsolationLevel, req.MaxBytes, req.MaxWaitMillis = 1, 1<<20, 100
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := cl.SeedBrokers()[0].Request(ctx, req)
		if err != nil {
			t.Fatalf("fetch via agent %d: %v", i, err)
		}
		p := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("fetch via agent %d: error %d", i, p.ErrorCode)
		}
		v := view{hwm: p.HighWatermark, lso: p.LastStableOffset}
		for _, a := range p.AbortedTransactions {
			v.aborted = append(v.aborted, a.FirstOffset)
		}
		fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: topic, Partition: 0, KeepControlRecords: true}, &p, kgo.DefaultDecompressor(), nil)
		for _, r := range fp.Records {
			v.values = append(v.values, string(r.Value))
		}
		return v
	}
	// An agent's view of a partition follows etcd's watch, so B may lag A
	// by a moment: both must agree once B has seen the last commit.
	a, b := fetch(0), fetch(1)
	for deadline := time.Now().Add(10 * time.Second); fmt.Sprint(a) != fmt.Sprint(b) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		a, b = fetch(0), fetch(1)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("read_committed differs between agents after 10s:\nA: %+v\nB: %+v", a, b)
	}
	if a.lso != 22 || a.hwm != 38 {
		t.Errorf("read_committed: last stable offset %d, high watermark %d; want 22 (the open transaction's first offset) and 38", a.lso, a.hwm)
	}
	if !slices.Equal(a.aborted, []int64{11}) {
		t.Errorf("aborted transactions %v, want one starting at 11", a.aborted)
	}
	if n := len(a.values); n > 22 {
		t.Errorf("read_committed returned %d records (markers included), none may be at or past the last stable offset 22", n)
	}

	// Once "open" commits, a read_committed consumer on B reads exactly
	// the committed records.
	if err := p2.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit open: %v", err)
	}
	cons := c.Client(t, kgo.SeedBrokers(c.Addr(1)), kgo.Dialer(cluster.DialTo(c.Addr(1))),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var got []string
	for len(got) < 25 && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		for _, err := range fs.Errors() {
			t.Fatalf("consume: %v after reading %q", err, got)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	var want []string
	for _, p := range []struct {
		prefix string
		n      int
	}{{"c1", 10}, {"open", 5}, {"c2", 10}} {
		for i := range p.n {
			want = append(want, fmt.Sprintf("%s-%d", p.prefix, i))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("read_committed consumer read %q, want %q", got, want)
	}
}

// txnValues is the sorted values "<prefix>-<i>", i below count, of each
// prefix: what the transaction tests' producers write per transaction.
func txnValues(count int, prefixes ...string) []string {
	var vs []string
	for _, p := range prefixes {
		for i := range count {
			vs = append(vs, fmt.Sprintf("%s-%d", p, i))
		}
	}
	slices.Sort(vs)
	return vs
}
