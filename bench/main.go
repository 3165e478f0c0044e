// Command bench is `make bench`: one run drives the same franz-go load
// (OpenMessaging-style: 1 KiB records half random bytes, 4 producers, 4
// consumers, acks=all, bounded duration) against franz-go's kfake (an
// in-memory Kafka, run as its own process) and against shale twice — dev
// mode (embedded etcd, local-directory bucket) and S3 mode (a versitygw S3
// server behind a counting proxy, plus etcd) — and prints one table with the
// ratio shale/kfake for each figure. It also measures raw PUT and GET MB/s of
// the same S3 server at the flush object size, and repeats the S3 run at
// 1,000 partitions to show whether PUTs/s stay flat as partitions grow, and
// draws shale's latency curve: produce p50/p99 at 2,000 records/s for each
// --flush-interval of -curve, dev and S3. Every shale run also reports its
// ack budget per stage (buffer, seal, upload queue, PUT, commit queue,
// commit, reply) from the agent's shale_produce_stage_seconds histograms.
// A librdkafka producer (confluent-kafka for Python) repeats the 2,000
// records/s run at the default flush beside franz-go, since clients
// pipeline differently. With MinIO installed (make test-deps), shale on
// MinIO is measured too: saturated produce beside MinIO's raw PUT, and
// latency at 50 and 250 ms. Transactions (txn.go): transactional producers
// against plain ones in the same run, EndTxn latency, etcd operations per
// transaction, in dev mode and on S3 at flush 250 ms.
// -scenarios picks which parts run. Results are written as JSON and as an
// SVG plot of latency percentiles.
//
// Every figure is measured in this one run on this machine; compare ratios,
// not absolute numbers, across machines.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
)

type options struct {
	duration   time.Duration
	partitions int
	many       int
	producers  int
	consumers  int
	recordSize int
	rate       float64
	out        string
	skipMany   bool
	scenarios  map[string]bool
	// groupRecords is the groups scenario's topic size.
	groupRecords int
	curve        []time.Duration
	curveRate    float64
	// The transactions scenario (txn.go).
	txnInterval time.Duration
	txnEtcdTime time.Duration
}

func main() {
	var o options
	serveKfake := flag.String("serve-kfake", "", "internal: run kfake on this port with -partitions partitions of topic bench")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "produce duration per run")
	flag.IntVar(&o.partitions, "partitions", 64, "partitions of the main scenario")
	flag.IntVar(&o.many, "many-partitions", 1000, "partitions of the scaling scenario")
	flag.BoolVar(&o.skipMany, "skip-many", false, "skip the scaling scenario")
	flag.IntVar(&o.producers, "producers", 4, "producer clients")
	flag.IntVar(&o.consumers, "consumers", 4, "consumer clients")
	flag.IntVar(&o.recordSize, "record-size", 1024, "record value bytes (half random)")
	flag.StringVar(&o.out, "out", "bench-results", "directory for results.json and latency.svg")
	flag.Float64Var(&o.rate, "rate", 10000, "records/s offered in all by the producers in the latency runs")
	scen := flag.String("scenarios", "max,paced,many,curve,librdkafka,minio,raw,groups,txn", "which parts run: max (saturated produce), paced (-rate), many (-many-partitions), curve (latency per flush interval), librdkafka (a confluent-kafka producer at -curve-rate, default flush), minio (shale on MinIO: saturated, latency at 50 and 250 ms, raw PUT/GET; skipped without the binary of make test-deps), raw (raw S3 PUT/GET of versitygw), groups (a share group of 12 against a classic group of 3 on the same records, etcd transactions per record; KIP-848 against classic rebalance time, 10 members joining, 5 leaving), txn (transactional producers against plain ones, EndTxn latency, etcd operations per transaction; dev and S3 at flush 250ms)")
	flag.IntVar(&o.groupRecords, "group-records", 30000, "records the groups scenario consumes")
	curve := flag.String("curve", "10ms,20ms,50ms,100ms,250ms", "flush intervals of the latency curve")
	flag.Float64Var(&o.curveRate, "curve-rate", 2000, "records/s offered in all in the latency curve runs")
	flag.DurationVar(&o.txnInterval, "txn-interval", time.Second, "txn scenario: each producer commits a transaction this often")
	flag.DurationVar(&o.txnEtcdTime, "txn-etcd-time", 5*time.Second, "txn scenario: how long each etcd-operations loop runs")
	flag.Parse()
	o.scenarios = map[string]bool{}
	for _, sc := range strings.Split(*scen, ",") {
		o.scenarios[strings.TrimSpace(sc)] = true
	}
	if o.skipMany {
		delete(o.scenarios, "many")
	}
	for _, f := range strings.Split(*curve, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 {
			log.Fatalf("bench: -curve: bad flush interval %q", f)
		}
		o.curve = append(o.curve, d)
	}
	if *serveKfake != "" {
		runKfake(*serveKfake, int32(o.partitions))
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

// Report is everything one `make bench` run measured.
type Report struct {
	When        time.Time     `json:"when"`
	Options     string        `json:"options"`
	Max         []Result      `json:"max_throughput"`
	Paced       []Result      `json:"paced"`
	Many        []Result      `json:"many_partitions,omitempty"`
	Curve       []Result      `json:"latency_curve,omitempty"`
	Clients     []Result      `json:"librdkafka,omitempty"`
	Groups      []GroupResult `json:"groups,omitempty"`
	RawPutMBps  float64       `json:"raw_s3_put_mb_per_s"`
	RawGetMBps  float64       `json:"raw_s3_get_mb_per_s"`
	RawObjectMB float64       `json:"raw_object_mb"`
	// The same for MinIO (-scenarios minio), 0 when not run.
	RawMinIOPutMBps float64     `json:"raw_minio_put_mb_per_s,omitempty"`
	RawMinIOGetMBps float64     `json:"raw_minio_get_mb_per_s,omitempty"`
	Txn             []TxnResult `json:"transactions,omitempty"`
}

func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "shale-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	shale, err := buildShale(tmp)
	if err != nil {
		return err
	}
	rep := Report{When: time.Now().UTC(), Options: fmt.Sprintf("%d producers, %d consumers, %d B records, %s per run, acks=all",
		o.producers, o.consumers, o.recordSize, o.duration)}
	targets := []target{kfakeTarget(), shaleDevTarget(shale, 0), shaleS3Target(shale, 0)}
	for _, t := range targets {
		for _, rate := range []float64{0, o.rate} {
			if rate == 0 && !o.scenarios["max"] || rate != 0 && !o.scenarios["paced"] {
				continue
			}
			log.Printf("bench: %s, %d partitions, offered %s", t.name, o.partitions, offered(rate))
			r, err := measure(ctx, t, o, o.partitions, rate, filepath.Join(tmp, fmt.Sprintf("%s-%.0f", t.name, rate)))
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			if rate == 0 {
				rep.Max = append(rep.Max, r)
			} else {
				rep.Paced = append(rep.Paced, r)
			}
		}
	}
	if o.scenarios["many"] {
		for _, t := range []target{kfakeTarget(), shaleS3Target(shale, 0)} {
			log.Printf("bench: %s, %d partitions, offered %s", t.name, o.many, offered(o.rate))
			r, err := measure(ctx, t, o, o.many, o.rate, filepath.Join(tmp, t.name+"-many"))
			if err != nil {
				return fmt.Errorf("%s at %d partitions: %w", t.name, o.many, err)
			}
			rep.Many = append(rep.Many, r)
		}
	}
	if o.scenarios["curve"] {
		for _, fl := range o.curve {
			for _, t := range []target{shaleDevTarget(shale, fl), shaleS3Target(shale, fl)} {
				log.Printf("bench: %s, flush %s, %d partitions, offered %s", t.name, fl, o.partitions, offered(o.curveRate))
				r, err := measure(ctx, t, o, o.partitions, o.curveRate, filepath.Join(tmp, fmt.Sprintf("%s-curve-%s", t.name, fl)))
				if err != nil {
					return fmt.Errorf("%s at flush %s: %w", t.name, fl, err)
				}
				rep.Curve = append(rep.Curve, r)
			}
		}
	}
	if o.scenarios["librdkafka"] {
		for _, t := range []target{kfakeTarget(), shaleDevTarget(shale, 0), shaleS3Target(shale, 0)} {
			for _, idem := range []bool{false, true} {
				log.Printf("bench: %s, librdkafka producer (idempotent %v), %d partitions, offered %s", t.name, idem, o.partitions, offered(o.curveRate))
				r, err := measureRdkafka(ctx, t, o, o.partitions, o.curveRate, idem, filepath.Join(tmp, fmt.Sprintf("%s-rdkafka-%v", t.name, idem)))
				if err != nil {
					return fmt.Errorf("%s with librdkafka: %w", t.name, err)
				}
				rep.Clients = append(rep.Clients, r)
			}
		}
	}
	if o.scenarios["minio"] {
		// The same S3 figures on MinIO: saturated produce, latency at 50
		// and 250 ms, raw PUT/GET of the same server.
		if _, stop, err := testenv.StartMinIOProcess(filepath.Join(tmp, "minio-probe")); err != nil {
			log.Printf("bench: skipping MinIO: %v", err)
		} else {
			stop()
			for _, fl := range []time.Duration{0, 50 * time.Millisecond, 250 * time.Millisecond} {
				t := shaleMinIOTarget(shale, fl)
				rate := o.curveRate
				if fl == 0 {
					rate = 0
				}
				log.Printf("bench: %s, flush %s, %d partitions, offered %s", t.name, fl, o.partitions, offered(rate))
				r, err := measure(ctx, t, o, o.partitions, rate, filepath.Join(tmp, fmt.Sprintf("minio-%s", fl)))
				if err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
				if fl == 0 {
					rep.Max = append(rep.Max, r)
				} else {
					rep.Curve = append(rep.Curve, r)
				}
			}
			log.Printf("bench: raw MinIO PUT/GET")
			if rep.RawMinIOPutMBps, rep.RawMinIOGetMBps, err = rawS3(ctx, testenv.StartMinIOProcess, filepath.Join(tmp, "raw-minio"), 4<<20, 10*time.Second); err != nil {
				return fmt.Errorf("raw MinIO: %w", err)
			}
		}
	}
	if o.scenarios["groups"] {
		if rep.Groups, err = runGroups(ctx, shale, tmp, o.groupRecords); err != nil {
			return fmt.Errorf("groups: %w", err)
		}
	}
	if o.scenarios["txn"] {
		for _, t := range []target{shaleDevTarget(shale, 0), shaleS3Target(shale, 250*time.Millisecond)} {
			log.Printf("bench: %s, transactions every %s against plain, %d partitions", t.name, o.txnInterval, o.partitions)
			r, err := measureTxn(ctx, t, o, filepath.Join(tmp, t.name+"-txn"))
			if err != nil {
				return fmt.Errorf("%s transactions: %w", t.name, err)
			}
			rep.Txn = append(rep.Txn, r)
		}
	}
	if o.scenarios["raw"] {
		log.Printf("bench: raw S3 PUT/GET")
		if rep.RawPutMBps, rep.RawGetMBps, err = rawS3(ctx, testenv.StartS3Process, filepath.Join(tmp, "raw"), 4<<20, 10*time.Second); err != nil {
			return fmt.Errorf("raw S3: %w", err)
		}
	}
	rep.RawObjectMB = 4
	fmt.Println()
	printTable(os.Stdout, rep)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "results.json"), js, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "latency.svg"), latencySVG(rep), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s and %s\n", filepath.Join(o.out, "results.json"), filepath.Join(o.out, "latency.svg"))
	return nil
}

func offered(rate float64) string {
	if rate == 0 {
		return "as fast as acknowledged"
	}
	return fmt.Sprintf("%.0f records/s", rate)
}

func buildShale(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "shale")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build shale: %w", err)
	}
	return out, nil
}
