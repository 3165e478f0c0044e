package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// rdkafkaScript is the librdkafka (confluent-kafka for Python) producer:
// clients pipeline differently, so the latency runs are repeated with it.
//
//go:embed rdkafka_produce.py
var rdkafkaScript []byte

// rdkafkaPython is the interpreter with confluent-kafka (Debian's
// python3-confluent-kafka, installed by scripts/test-deps.sh).
const rdkafkaPython = "/usr/bin/python3"

// measureRdkafka runs the librdkafka producer against a fresh instance of
// t: produce latency only (no consumers), at rate records/s, idempotent or
// not (librdkafka's default). librdkafka sends one partition per produce
// request, and an idempotent one keeps at most 5 requests in flight per
// connection: against an agent that answers after a flush interval, that
// bounds it to 5 partitions per interval.
func measureRdkafka(ctx context.Context, t target, o options, partitions int, rate float64, idempotent bool, dir string) (Result, error) {
	client, mode := "librdkafka", "plain"
	if idempotent {
		client, mode = "librdkafka-idempotent", "idempotent"
	}
	res := Result{Target: t.name, Partitions: partitions, OfferedRecPerS: rate, Client: client,
		FlushMs: float64(t.flush) / float64(time.Millisecond), S3PutsPerS: -1, S3GetsPerS: -1, EtcdTxnsPerS: -1,
		ProduceP999ms: -1, E2EP50ms: -1, E2EP99ms: -1, ConsumeMBps: -1}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	script := filepath.Join(dir, "rdkafka_produce.py")
	if err := os.WriteFile(script, rdkafkaScript, 0o644); err != nil {
		return res, err
	}
	inst, err := t.start(ctx, dir, partitions)
	if err != nil {
		return res, err
	}
	defer inst.stop()
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
	var stages0 map[string]*stageHist
	if inst.admin != "" {
		stages0, _ = scrapeStages(inst.admin)
	}
	cpu0, _ := procStats(inst.proc)
	start := time.Now()
	cmd := exec.CommandContext(ctx, rdkafkaPython, script, inst.addr, benchTopic,
		strconv.FormatFloat(rate, 'f', -1, 64), strconv.FormatFloat(o.duration.Seconds(), 'f', -1, 64), strconv.Itoa(o.recordSize), mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return res, fmt.Errorf("librdkafka producer: %w", err)
	}
	elapsed := time.Since(start)
	var r struct {
		Records int64   `json:"records"`
		Errors  int64   `json:"errors"`
		P50     float64 `json:"p50_ms"`
		P99     float64 `json:"p99_ms"`
		P999    float64 `json:"p999_ms"`
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return res, fmt.Errorf("librdkafka producer output %q: %w", out, err)
	}
	cpu1, rss := procStats(inst.proc)
	res.RecordsProduced, res.ProduceErrors = r.Records, r.Errors
	res.ProduceP50ms, res.ProduceP99ms, res.ProduceP999ms = r.P50, r.P99, r.P999
	res.ProduceRecPerS = float64(r.Records) / r.Seconds
	res.ProduceMBps = float64(r.Records*int64(o.recordSize)) / r.Seconds / 1e6
	res.CPUCores = (cpu1 - cpu0) / elapsed.Seconds()
	res.PeakRSSMiB = float64(rss) / (1 << 20)
	if stages0 != nil {
		if stages1, err := scrapeStages(inst.admin); err == nil {
			res.Stages = stageStats(stages0, stages1)
		}
	}
	return res, nil
}
