package cli

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newPerfCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "perf-produce",
		Short: "Measure produce throughput and latency against any Kafka-compatible cluster",
		Long: `Produce records as fast as the cluster acknowledges them (bounded by --records and
--duration, whichever comes first) and report MiB/s, records/s and acknowledgement latency
percentiles, like kafka-producer-perf-test. Half of each value is random bytes, half zeros.
When --duration ends the run before --records are sent, the report says so; pass
--duration 0 to run until every record is sent.`,
		Example: "  shale perf-produce -t perf --records 200000 --record-size 1KiB --acks all",
		Args:    cobra.NoArgs,
	}
	addBootstrapFlag(cmd)
	recordSize := ByteSize(1024)
	f := cmd.Flags()
	f.StringP("topic", "t", "perf", "topic (created if the cluster auto-creates)")
	f.Int64("records", 100000, "records to produce at most")
	f.Duration("duration", 30*time.Second, "stop sending after this long at most (0: until --records are sent)")
	f.Var(&recordSize, "record-size", "value size")
	f.String("acks", "all", "all or 1")
	f.Int("max-inflight", 5, "produce requests in flight per agent (acks=1 only; the idempotent acks=all producer keeps 5)")
	f.Duration("linger", 0, "client-side batching delay")
	f.Float64("rate", 0, "records per second to offer (0: as fast as acknowledged)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		size, err := ParseByteSize(v.GetString("record-size"))
		if err != nil || size <= 0 {
			return fmt.Errorf("bad --record-size: %v", err)
		}
		opts := []kgo.Opt{kgo.DefaultProduceTopic(v.GetString("topic")),
			kgo.ProducerLinger(v.GetDuration("linger")), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.AllowAutoTopicCreation()}
		if v.GetString("acks") == "1" {
			opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
				kgo.MaxProduceRequestsInflightPerBroker(v.GetInt("max-inflight")))
		}
		cl, err := kafkaClient(v, opts...)
		if err != nil {
			return err
		}
		defer cl.Close()
		n, d := v.GetInt64("records"), v.GetDuration("duration")
		res, err := perfProduce(cmd.Context(), cl, n, int(size), d, v.GetFloat64("rate"))
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), res)
		if res.Sent < n {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: --duration %s ended the run after %d of --records %d (pass --duration 0 to send them all)\n", d, res.Sent, n)
		}
		return nil
	}
	return cmd
}

// PerfResult is what perf-produce measured.
type PerfResult struct {
	Records          int64 // acknowledged
	Sent             int64 // produced (acknowledged or failed)
	Bytes            int64
	Elapsed          time.Duration
	P50, P99, P999   time.Duration
	Errors           int64
	FirstError       error
	RecordsPerSecond float64
	MiBPerSecond     float64
}

func (r PerfResult) String() string {
	s := fmt.Sprintf("%s (%s) in %s: %.0f records/s, %.2f MiB/s; ack latency p50 %s p99 %s p99.9 %s",
		plural(r.Records, "record"), HumanBytes(r.Bytes), r.Elapsed.Round(time.Millisecond), r.RecordsPerSecond, r.MiBPerSecond,
		r.P50.Round(100*time.Microsecond), r.P99.Round(100*time.Microsecond), r.P999.Round(100*time.Microsecond))
	if r.Errors > 0 {
		s += fmt.Sprintf("; %s, first: %v", plural(r.Errors, "error"), r.FirstError)
	}
	return s
}

func perfProduce(ctx context.Context, cl *kgo.Client, n int64, size int, d time.Duration, rate float64) (PerfResult, error) {
	val := make([]byte, size)
	_, _ = rand.Read(val[:size/2])
	cancel := context.CancelFunc(func() {})
	if d > 0 {
		ctx, cancel = context.WithTimeout(ctx, d)
	}
	defer cancel()
	var (
		mu       sync.Mutex
		lats     = make([]time.Duration, 0, min(n, 1<<20))
		errs     atomic.Int64
		firstErr error
		acked    atomic.Int64
	)
	start := time.Now()
	var sent int64
	for sent = 0; sent < n && ctx.Err() == nil; sent++ {
		if rate > 0 {
			// Open-loop pacing: latency is measured from the intended send
			// time, so a stalled cluster cannot hide its queueing.
			due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
			if w := time.Until(due); w > 0 {
				time.Sleep(w)
			}
		}
		t0 := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
			lat := time.Since(t0)
			if err != nil {
				if errs.Add(1) == 1 {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
				return
			}
			acked.Add(1)
			mu.Lock()
			lats = append(lats, lat)
			mu.Unlock()
		})
	}
	fctx, fcancel := context.WithTimeout(context.Background(), time.Minute)
	defer fcancel()
	_ = cl.Flush(fctx)
	el := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lats)
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(len(lats)-1, int(float64(len(lats))*p))]
	}
	r := PerfResult{Records: acked.Load(), Bytes: acked.Load() * int64(size), Elapsed: el,
		P50: pct(0.50), P99: pct(0.99), P999: pct(0.999), Errors: errs.Load(), FirstError: firstErr, Sent: sent}
	r.RecordsPerSecond = float64(r.Records) / el.Seconds()
	r.MiBPerSecond = float64(r.Bytes) / el.Seconds() / (1 << 20)
	if r.Records == 0 {
		return r, fmt.Errorf("no record was acknowledged: %v", firstErr)
	}
	return r, nil
}
