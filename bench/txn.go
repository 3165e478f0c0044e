package main

// The transactions scenario (-scenarios txn): on one agent, in one run,
// the same producers write as fast as acknowledged first without
// transactions (idempotent, acks=all), then in transactions committed
// every -txn-interval (each: begin, produce, flush, EndTxn commit), and
// the ratio of committed records/s to plain records/s is the cost of
// transactions at that commit interval: the median over the txnRuns
// pairs of runs, each pair a plain run then a transactional one (the 2
// cores are shared with whatever else runs, and a burst of it during one
// run would otherwise decide the figure). Part of the cost is the
// client's: all producers commit at the same instants, and each
// commit's Flush waits for every record the producer buffered (franz-go
// keeps up to 10,000) to be acknowledged, so the agent's pipeline
// drains and refills once per commit. EndTxn latency is each commit's
// EndTransaction call (its markers written and the transaction complete,
// see agent/end_txn.go). etcd operations per transaction come from a
// fixed-work loop, one producer, sequential rounds of txnRoundRecords
// records over txnRoundPartitions partitions: etcd's own mvcc counters
// (txn, range, put, delete) over the rounds of a transactional producer,
// divided by its rounds, beside the same for a plain producer writing the
// same rounds (the data's own commits); the difference is what the
// transaction protocol adds.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// txnRuns is how many plain and transactional runs alternate.
	txnRuns            = 3
	txnRoundRecords    = 10
	txnRoundPartitions = 4
)

// TxnResult is one target's transaction figures.
type TxnResult struct {
	Target     string  `json:"target"`
	FlushMs    float64 `json:"flush_interval_ms"` // the agent's --flush-interval, 0: its default
	Partitions int     `json:"partitions"`
	Producers  int     `json:"producers"`
	IntervalMs float64 `json:"txn_interval_ms"`
	// Saturated produce, records/s acknowledged (plain) or committed (txn).
	PlainRecPerS float64 `json:"plain_records_per_s"`
	TxnRecPerS   float64 `json:"txn_records_per_s"`
	// Ratio is the median of the pairs' ratios (PairRatios: each
	// transactional run's records/s over the plain run's before it), so
	// that a burst of load from elsewhere on the machine during one run
	// does not decide it; TotalRatio is over all runs together.
	Ratio       float64   `json:"txn_to_plain_ratio"`
	PairRatios  []float64 `json:"txn_to_plain_pair_ratios"`
	TotalRatio  float64   `json:"txn_to_plain_total_ratio"`
	Txns        int64     `json:"txns_committed"`
	TxnErrors   int64     `json:"txn_errors"`
	EndTxnP50ms float64   `json:"end_txn_p50_ms"`
	EndTxnP99ms float64   `json:"end_txn_p99_ms"`
	// Records written: acknowledged in the warm-up and the plain run,
	// committed in the transactional run.
	WarmupRecords int64 `json:"warmup_records"`
	PlainRecords  int64 `json:"plain_records"`
	TxnRecords    int64 `json:"txn_records"`
	// etcd operations per round of the fixed-work loop, over Rounds
	// rounds of the transactional producer and PlainRounds of the plain
	// one (each also ran one round before counting).
	Rounds      int                `json:"rounds"`
	PlainRounds int                `json:"plain_rounds"`
	EtcdPerTxn  map[string]float64 `json:"etcd_ops_per_txn"`
	EtcdPerRnd  map[string]float64 `json:"etcd_ops_per_plain_round"`
}

// measureTxn runs the transactions scenario against t.
func measureTxn(ctx context.Context, t target, o options, dir string) (TxnResult, error) {
	res := TxnResult{Target: t.name, FlushMs: float64(t.flush) / float64(time.Millisecond), Partitions: o.partitions,
		Producers: o.producers, IntervalMs: float64(o.txnInterval) / float64(time.Millisecond)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	inst, err := t.start(ctx, dir, o.partitions)
	if err != nil {
		return res, err
	}
	defer inst.stop()
	adm, err := kgo.NewClient(kgo.SeedBrokers(inst.addr))
	if err != nil {
		return res, err
	}
	_, err = kadm.NewClient(adm).CreateTopic(ctx, int32(o.partitions), -1, nil, benchTopic)
	adm.Close()
	if err != nil {
		return res, fmt.Errorf("create topic: %w", err)
	}
	val := make([]byte, o.recordSize)

	// A warm-up, so that neither run pays for the first connections and
	// the topic's first writes.
	var err2 error
	if res.WarmupRecords, _, _, _, _, err2 = txnLoad(ctx, inst.addr, o, val, 0, min(time.Second, o.duration)); err2 != nil {
		return res, err2
	}
	// Plain and transactional runs alternate, txnRuns of each, so that a
	// drift of the machine's load weighs on both alike.
	var plainTime, txnTime time.Duration
	ends := &latencies{}
	var txns, txnErrs int64
	for range txnRuns {
		n, _, _, took, _, err := txnLoad(ctx, inst.addr, o, val, 0, o.duration/txnRuns)
		if err != nil {
			return res, err
		}
		res.PlainRecords, plainTime = res.PlainRecords+n, plainTime+took
		plainRate := float64(n) / took.Seconds()
		n, tx, errs, took, e, err := txnLoad(ctx, inst.addr, o, val, o.txnInterval, o.duration/txnRuns)
		if err != nil {
			return res, err
		}
		if plainRate > 0 {
			res.PairRatios = append(res.PairRatios, float64(n)/took.Seconds()/plainRate)
		}
		res.TxnRecords, txnTime, txns, txnErrs = res.TxnRecords+n, txnTime+took, txns+tx, txnErrs+errs
		ends.d = append(ends.d, e.d...)
	}
	res.PlainRecPerS = float64(res.PlainRecords) / plainTime.Seconds()
	res.TxnRecPerS = float64(res.TxnRecords) / txnTime.Seconds()
	if res.PlainRecPerS > 0 {
		res.TotalRatio = res.TxnRecPerS / res.PlainRecPerS
	}
	if len(res.PairRatios) > 0 {
		r := slices.Sorted(slices.Values(res.PairRatios))
		res.Ratio = r[len(r)/2]
		if len(r)%2 == 0 {
			res.Ratio = (r[len(r)/2-1] + r[len(r)/2]) / 2
		}
	}
	res.Txns, res.TxnErrors = txns, txnErrs
	res.EndTxnP50ms, res.EndTxnP99ms = ends.pct(0.50), ends.pct(0.99)

	if inst.etcdURL != "" {
		rounds, perTxn, err := etcdPerRound(ctx, inst, val, true, o.txnEtcdTime)
		if err != nil {
			return res, err
		}
		plainRounds, perPlain, err := etcdPerRound(ctx, inst, val, false, o.txnEtcdTime)
		if err != nil {
			return res, err
		}
		res.Rounds, res.PlainRounds, res.EtcdPerTxn, res.EtcdPerRnd = rounds, plainRounds, perTxn, perPlain
	}
	return res, nil
}

// txnLoad runs o.producers producers for d, as fast as
// acknowledged: plain (interval 0; n counts acknowledged records) or in
// transactions committed every interval (n counts records of committed
// transactions; ends holds each commit's EndTransaction latency), and
// the time they took (the last transaction ends after d).
func txnLoad(ctx context.Context, addr string, o options, val []byte, interval, d time.Duration) (n, txns, errs int64, took time.Duration, ends *latencies, err error) {
	ends = &latencies{}
	start := time.Now()
	var total, ntx, nerr atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	for p := range o.producers {
		opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(benchTopic), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerBatchCompression(kgo.NoCompression())}
		if interval > 0 {
			opts = append(opts, kgo.TransactionalID(fmt.Sprintf("bench-txn-%d-%d", p, time.Now().UnixNano())))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return 0, 0, 0, 0, nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.Close()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if interval > 0 {
					if err := cl.BeginTransaction(); err != nil {
						errOnce.Do(func() { firstErr = fmt.Errorf("begin transaction: %w", err) })
						return
					}
				}
				var acked atomic.Int64
				end := time.Now().Add(interval)
				if interval == 0 {
					end = deadline
				}
				for time.Now().Before(end) && ctx.Err() == nil {
					cl.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
						if err == nil {
							acked.Add(1)
						}
					})
				}
				ferr := cl.Flush(ctx)
				if interval == 0 {
					total.Add(acked.Load())
					return
				}
				t0 := time.Now()
				if ferr == nil {
					ferr = cl.EndTransaction(ctx, kgo.TryCommit)
				}
				if ferr != nil {
					nerr.Add(1)
					log.Printf("bench: transaction failed: %v", ferr)
					_ = cl.AbortBufferedRecords(ctx)
					_ = cl.EndTransaction(ctx, kgo.TryAbort)
					continue
				}
				ends.add(time.Since(t0))
				ntx.Add(1)
				total.Add(acked.Load())
			}
		}()
	}
	wg.Wait()
	return total.Load(), ntx.Load(), nerr.Load(), time.Since(start), ends, firstErr
}

// etcdPerRound runs sequential rounds of txnRoundRecords records for d,
// in transactions or plain, and returns the rounds and etcd's mvcc
// operations per round.
func etcdPerRound(ctx context.Context, inst *instance, val []byte, txn bool, d time.Duration) (int, map[string]float64, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(inst.addr), kgo.DefaultProduceTopic(benchTopic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner())}
	if txn {
		opts = append(opts, kgo.TransactionalID(fmt.Sprintf("bench-etcd-%d", time.Now().UnixNano())))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, nil, err
	}
	defer cl.Close()
	round := func() error {
		if txn {
			if err := cl.BeginTransaction(); err != nil {
				return err
			}
		}
		for i := range txnRoundRecords {
			cl.Produce(ctx, &kgo.Record{Value: val, Partition: int32(i % txnRoundPartitions)}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		if txn {
			return cl.EndTransaction(ctx, kgo.TryCommit)
		}
		return nil
	}
	// One round first: the producer ID, the coordinator's claim.
	if err := round(); err != nil {
		return 0, nil, err
	}
	before, err := etcdOps(inst.etcdURL)
	if err != nil {
		return 0, nil, err
	}
	rounds := 0
	for end := time.Now().Add(d); time.Now().Before(end); rounds++ {
		if err := round(); err != nil {
			return 0, nil, err
		}
	}
	after, err := etcdOps(inst.etcdURL)
	if err != nil {
		return 0, nil, err
	}
	per := map[string]float64{}
	for k, v := range after {
		per[k] = float64(v-before[k]) / float64(rounds)
	}
	return rounds, per, nil
}

// etcdOpNames are etcd's mvcc counters etcdOps reads, by short name.
var etcdOpNames = map[string]string{"etcd_mvcc_txn_total": "txn", "etcd_mvcc_range_total": "range",
	"etcd_mvcc_put_total": "put", "etcd_mvcc_delete_total": "delete"}

// etcdOps reads etcd's mvcc operation counters from its /metrics.
func etcdOps(endpoint string) (map[string]int64, error) {
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	out := map[string]int64{}
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if short, known := etcdOpNames[name]; ok && known {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Errorf("%s/metrics: %s: %w", endpoint, name, err)
			}
			out[short] = int64(f)
		}
	}
	if len(out) != len(etcdOpNames) {
		return nil, fmt.Errorf("%s/metrics: found %d of etcd's %d mvcc counters", endpoint, len(out), len(etcdOpNames))
	}
	return out, sc.Err()
}

// txnTable prints the transactions scenario.
func txnTable(w io.Writer, rs []TxnResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "transactions: %d producers, %d partitions, saturated, a commit every %gms; txn/plain: median of the pairs (plain run, then transactional); etcd ops per round of %d records over %d partitions\n",
		rs[0].Producers, rs[0].Partitions, rs[0].IntervalMs, txnRoundRecords, txnRoundPartitions)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tplain rec/s\ttxn rec/s\ttxn/plain\tpairs\ttxns\terrors\tEndTxn p50 ms\tp99 ms\tetcd txn/range/put per txn\tper plain round\t")
	ops := func(m map[string]float64) string {
		if m == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f/%.1f/%.1f", m["txn"], m["range"], m["put"])
	}
	for _, r := range rs {
		label := r.Target
		if r.FlushMs > 0 {
			label += fmt.Sprintf("@%gms", r.FlushMs)
		}
		pairs := make([]string, len(r.PairRatios))
		for i, p := range r.PairRatios {
			pairs[i] = fmt.Sprintf("%.2f", p)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%s\t%d\t%d\t%.1f\t%.1f\t%s\t%s\t\n", label, r.PlainRecPerS, r.TxnRecPerS, r.Ratio, strings.Join(pairs, " "),
			r.Txns, r.TxnErrors, r.EndTxnP50ms, r.EndTxnP99ms, ops(r.EtcdPerTxn), ops(r.EtcdPerRnd))
	}
	tw.Flush()
	fmt.Fprintln(w)
}
