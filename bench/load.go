package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/s3tier"
)

const benchTopic = "bench"

// Result is one target's figures for one scenario. Figures that do not
// apply are -1.
type Result struct {
	Target          string  `json:"target"`
	Partitions      int     `json:"partitions"`
	OfferedRecPerS  float64 `json:"offered_records_per_s"` // 0: as fast as acknowledged
	ProduceMBps     float64 `json:"produce_mb_per_s"`
	ProduceRecPerS  float64 `json:"produce_records_per_s"`
	ProduceP50ms    float64 `json:"produce_p50_ms"`
	ProduceP99ms    float64 `json:"produce_p99_ms"`
	ProduceP999ms   float64 `json:"produce_p999_ms"`
	E2EP50ms        float64 `json:"e2e_p50_ms"`
	E2EP99ms        float64 `json:"e2e_p99_ms"`
	ConsumeMBps     float64 `json:"consume_mb_per_s"`
	S3PutsPerS      float64 `json:"s3_puts_per_s"`
	S3GetsPerS      float64 `json:"s3_gets_per_s"`
	EtcdTxnsPerS    float64 `json:"etcd_txns_per_s"`
	CPUCores        float64 `json:"server_cpu_cores"`
	PeakRSSMiB      float64 `json:"server_peak_rss_mib"`
	ProduceErrors   int64   `json:"produce_errors"`
	RecordsProduced int64   `json:"records_produced"`
	RecordsConsumed int64   `json:"records_consumed"`
	FlushMs         float64 `json:"flush_interval_ms,omitempty"` // shale's --flush-interval when set by the run
	Client          string  `json:"client,omitempty"`            // producing client when not franz-go
	// Stages is the agent's ack budget during the produce phase (shale only).
	Stages []StageStat `json:"stages,omitempty"`
}

// label names a result in tables: its target, its flush interval when the
// run set one, its client when not franz-go.
func (r Result) label() string {
	l := r.Target
	if r.FlushMs > 0 {
		l += fmt.Sprintf("@%gms", r.FlushMs)
	}
	if r.Client != "" {
		l += "/" + r.Client
	}
	return l
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	if len(l.d) < 4<<20 {
		l.d = append(l.d, d)
	}
	l.mu.Unlock()
}

func (l *latencies) pct(p float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return -1
	}
	slices.Sort(l.d)
	return float64(l.d[min(len(l.d)-1, int(float64(len(l.d))*p))]) / float64(time.Millisecond)
}

// measure runs one target: producers offer rate records/s in all (0: as
// fast as acknowledged), consumers tail from the start.
func measure(ctx context.Context, t target, o options, partitions int, rate float64, dir string) (Result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	inst, err := t.start(ctx, dir, partitions)
	if err != nil {
		return Result{}, err
	}
	defer inst.stop()
	res := Result{Target: t.name, Partitions: partitions, OfferedRecPerS: rate, S3PutsPerS: -1, S3GetsPerS: -1, EtcdTxnsPerS: -1,
		FlushMs: float64(t.flush) / float64(time.Millisecond)}
	if !inst.created {
		adm, err := kgo.NewClient(kgo.SeedBrokers(inst.addr))
		if err != nil {
			return res, err
		}
		_, err = kadm.NewClient(adm).CreateTopic(ctx, int32(partitions), -1, nil, benchTopic)
		adm.Close()
		if err != nil {
			return res, fmt.Errorf("create topic: %w", err)
		}
	}

	// Consumers tail the topic from the start, each a share of partitions.
	var consumed, consumedBytes atomic.Int64
	var lastConsume atomic.Int64
	e2e := &latencies{}
	cctx, stopConsumers := context.WithCancel(ctx)
	var cwg sync.WaitGroup
	for c := 0; c < o.consumers; c++ {
		parts := map[int32]kgo.Offset{}
		for p := c; p < partitions; p += o.consumers {
			parts[int32(p)] = kgo.NewOffset().AtStart()
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(inst.addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{benchTopic: parts}),
			kgo.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			stopConsumers()
			return res, err
		}
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			defer cl.Close()
			for cctx.Err() == nil {
				fs := cl.PollFetches(cctx)
				fs.EachRecord(func(r *kgo.Record) {
					e2e.add(time.Since(r.Timestamp))
					consumed.Add(1)
					consumedBytes.Add(int64(len(r.Value)))
					lastConsume.Store(time.Now().UnixNano())
				})
			}
		}()
	}

	val := make([]byte, o.recordSize)
	_, _ = rand.Read(val[:o.recordSize/2])
	cpu0, _ := procStats(inst.proc)
	var puts0, gets0, txn0 int64
	if inst.s3 != nil {
		puts0, gets0 = inst.s3()
	}
	if inst.etcdTxns != nil {
		txn0, _ = inst.etcdTxns()
	}
	var stages0 map[string]*stageHist
	if inst.admin != "" {
		if stages0, err = scrapeStages(inst.admin); err != nil {
			log.Printf("bench: %s: scrape stages: %v", t.name, err)
		}
	}
	start := time.Now()
	pctx, stopProducing := context.WithTimeout(ctx, o.duration)
	acks := &latencies{}
	var produced, errs atomic.Int64
	var pwg sync.WaitGroup
	for p := 0; p < o.producers; p++ {
		cl, err := kgo.NewClient(kgo.SeedBrokers(inst.addr), kgo.DefaultProduceTopic(benchTopic), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			stopProducing()
			stopConsumers()
			return res, err
		}
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			defer cl.Close()
			perProducer := rate / float64(o.producers)
			for i := 0; pctx.Err() == nil; i++ {
				t0 := time.Now()
				if perProducer > 0 {
					// Open loop: latency counts from the intended send time.
					t0 = start.Add(time.Duration(float64(i) / perProducer * float64(time.Second)))
					if w := time.Until(t0); w > 0 {
						time.Sleep(w)
					}
				}
				cl.Produce(pctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
					if err != nil {
						if pctx.Err() == nil {
							errs.Add(1)
						}
						return
					}
					produced.Add(1)
					acks.add(time.Since(t0))
				})
			}
			fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = cl.Flush(fctx)
		}()
	}
	pwg.Wait()
	stopProducing()
	elapsed := time.Since(start)
	cpu1, rss := procStats(inst.proc)
	if inst.s3 != nil {
		p1, g1 := inst.s3()
		res.S3PutsPerS = float64(p1-puts0) / elapsed.Seconds()
		res.S3GetsPerS = float64(g1-gets0) / elapsed.Seconds()
	}
	if inst.etcdTxns != nil {
		if t1, err := inst.etcdTxns(); err == nil {
			res.EtcdTxnsPerS = float64(t1-txn0) / elapsed.Seconds()
		}
	}
	if stages0 != nil {
		if stages1, err := scrapeStages(inst.admin); err == nil {
			res.Stages = stageStats(stages0, stages1)
		}
	}
	// Let the consumers catch up, bounded.
	deadline := time.Now().Add(60 * time.Second)
	for consumed.Load() < produced.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	stopConsumers()
	cwg.Wait()

	n := produced.Load()
	res.RecordsProduced, res.RecordsConsumed, res.ProduceErrors = n, consumed.Load(), errs.Load()
	res.ProduceRecPerS = float64(n) / elapsed.Seconds()
	res.ProduceMBps = float64(n*int64(o.recordSize)) / elapsed.Seconds() / 1e6
	res.ProduceP50ms, res.ProduceP99ms, res.ProduceP999ms = acks.pct(0.50), acks.pct(0.99), acks.pct(0.999)
	res.E2EP50ms, res.E2EP99ms = e2e.pct(0.50), e2e.pct(0.99)
	if last := lastConsume.Load(); last > 0 {
		res.ConsumeMBps = float64(consumedBytes.Load()) / time.Unix(0, last).Sub(start).Seconds() / 1e6
	}
	res.CPUCores = (cpu1 - cpu0) / elapsed.Seconds()
	res.PeakRSSMiB = float64(rss) / (1 << 20)
	if res.RecordsConsumed < n {
		log.Printf("bench: %s consumed %d of %d records", t.name, res.RecordsConsumed, n)
	}
	return res, nil
}

// rawS3 measures PUT and GET MB/s of a fresh S3 server at the flush object
// size with the engine's upload concurrency: the ceiling shale runs under.
func rawS3(ctx context.Context, startS3 s3Starter, dir string, size int, d time.Duration) (putMBps, getMBps float64, err error) {
	s3, stop, err := startS3(dir)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	st, err := s3tier.NewS3Store(ctx, s3tier.S3Config{Bucket: s3.Bucket, Endpoint: s3.Endpoint, Region: s3.Region,
		PathStyle: true, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		return 0, 0, err
	}
	data := make([]byte, size)
	_, _ = rand.Read(data[:size/2])
	const conc = 4
	var n atomic.Int64
	run := func(op func(i int64) error) (float64, error) {
		start := time.Now()
		var wg sync.WaitGroup
		var firstErr atomic.Value
		for w := 0; w < conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < d && ctx.Err() == nil {
					i := n.Add(1)
					if err := op(i); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if e, _ := firstErr.Load().(error); e != nil {
			return 0, e
		}
		return float64(n.Load()) * float64(size) / time.Since(start).Seconds() / 1e6, nil
	}
	if putMBps, err = run(func(i int64) error {
		return st.Put(ctx, fmt.Sprintf("raw/%d", i), bytes.NewReader(data), int64(size))
	}); err != nil {
		return 0, 0, err
	}
	objects := n.Load()
	n.Store(0)
	getMBps, err = run(func(i int64) error {
		rc, err := st.GetRange(ctx, fmt.Sprintf("raw/%d", 1+i%objects), 0, int64(size))
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err
	})
	return putMBps, getMBps, err
}
