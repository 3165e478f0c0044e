package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metrics"
	"github.com/shale-dev/shale/s3tier"
)

// scrape returns every sample of an admin server's /metrics, summed per
// metric name (labels folded) and also per labelled series (its name with
// labels as printed), and checks /healthz and /readyz.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		name := line[:i]
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		if j := strings.IndexByte(name, '{'); j >= 0 {
			out[name] += v
			name = name[:j]
		}
		out[name] += v
	}
	return out
}

// TestMetricsFamilies proves /metrics shows non-zero values for every
// family operators need after real work: two agents sharing etcd and a
// bucket produce to the same partitions (commit conflicts), one has a
// failing first upload (a retry), reads hit and miss the cache, the
// lifecycle compacts, applies retention and collects garbage, and a
// consumer group has lag; every stage of the ack budget was observed.
func TestMetricsFamilies(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	bucket := t.TempDir()
	var failedPut atomic.Bool
	start := func(name string, lifecycle bool) *Stack {
		dir := filepath.Join(t.TempDir(), name)
		o := StackOptions{
			DataDir: dir, AdminListen: "127.0.0.1:0", EtcdEndpoints: endpoints, Bucket: bucket, NoLifecycle: !lifecycle,
			Engine: engine.Config{FlushInterval: 10 * time.Millisecond},
			Agent:  agent.Config{Listen: "127.0.0.1:0", AgentTTL: 5 * time.Second, NodeID: -1},
		}
		if lifecycle {
			o.Lifecycle.Interval = 200 * time.Millisecond
			o.Lifecycle.GCGrace = 2 * time.Second
			o.Lifecycle.Compaction.CommitDeadline = 500 * time.Millisecond
			o.Lifecycle.Compaction.Settle = time.Millisecond
			o.Lifecycle.Compaction.MinEntries = 2
			o.WrapStore = func(s s3tier.Store) s3tier.Store {
				return s3tier.Faulty(s, func(op, key string) error {
					// The first upload of records (not a manifest's PUT).
					if op == s3tier.OpPut && strings.HasPrefix(key, "wal/") && failedPut.CompareAndSwap(false, true) {
						return errors.New("injected: first upload fails")
					}
					return nil
				})
			}
		}
		st := startStack(t, o)
		return st
	}
	a, b := start("a", true), start("b", false)
	addrA, addrB := a.Agent.Addr().String(), b.Agent.Addr().String()
	ctx := context.Background()
	adm := kadm.NewClient(mustClient(t, addrA))
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, "kept"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"retention.ms": ptr("1000")}, "brief"); err != nil {
		t.Fatal(err)
	}
	// Both agents write the same partitions, in many small flushes.
	for round := 0; round < 10; round++ {
		for _, addr := range []string{addrA, addrB} {
			cl := mustClient(t, addr, kgo.DefaultProduceTopic("kept"))
			for i := 0; i < 20; i++ {
				cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%s-%d-%d", addr, round, i)), Partition: int32(i % 2)}, nil)
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "brief", Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Read through A twice: the first read misses the cache for what B
	// wrote (or compaction rewrote), the second hits.
	for pass := 0; pass < 2; pass++ {
		cons := mustClient(t, addrA, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"kept": {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}}))
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		for got := 0; got < 400; {
			fs := cons.PollFetches(fctx)
			if fctx.Err() != nil {
				t.Fatalf("pass %d: consumed %d of 400 records", pass, got)
			}
			got += fs.NumRecords()
		}
		cancel()
		cons.Close()
	}
	if _, _, code := run(t, "", "group", "reset-offsets", "analytics", "-b", addrA, "--topic", "kept", "--to-offset", "0", "--execute"); code != 0 {
		t.Fatal("reset-offsets failed")
	}
	// One committed transaction (its coordinator is A or B).
	txc := mustClient(t, addrA, kgo.DefaultProduceTopic("kept"), kgo.TransactionalID("metrics-txn"))
	if err := txc.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txc.ProduceSync(ctx, &kgo.Record{Value: []byte("txn")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txc.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// And one left open, for txn_open.
	open := mustClient(t, addrA, kgo.DefaultProduceTopic("kept"), kgo.TransactionalID("metrics-open"))
	if err := open.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := open.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"shale_txn_ended_total", "shale_txn_end_duration_seconds_count", "shale_txn_open",
		"shale_requests_total", "shale_request_duration_seconds_count", "shale_bytes_in_total", "shale_bytes_out_total",
		"shale_flush_bytes_sum", "shale_flush_duration_seconds_count", "shale_uploads_total", "shale_upload_retries_total",
		"shale_s3_requests_total", "shale_etcd_commit_duration_seconds_count", "shale_etcd_commit_conflicts_total",
		"shale_cache_hits_total", "shale_cache_misses_total", "shale_compaction_segments_total", "shale_compaction_entries_replaced_total",
		"shale_gc_objects_deleted_total", "shale_retention_offsets_dropped_total", "shale_manifests_written_total", "shale_manifest_last_written_timestamp_seconds",
	}
	deadline := time.Now().Add(30 * time.Second)
	var missing []string
	for {
		ma, mb := scrape(t, a.Admin.Addr().String()), scrape(t, b.Admin.Addr().String())
		missing = missing[:0]
		for _, name := range want {
			if ma[name]+mb[name] <= 0 {
				missing = append(missing, name)
			}
		}
		if ma["shale_group_lag"]+mb["shale_group_lag"] <= 0 {
			missing = append(missing, "shale_group_lag")
		}
		for _, st := range metrics.Stages {
			series := `shale_produce_stage_seconds_count{stage="` + st + `"}`
			if ma[series]+mb[series] <= 0 {
				missing = append(missing, series)
			}
		}
		for _, name := range []string{"shale_buffer_bytes", "shale_upload_hedges_total"} { // zero on a healthy store
			if _, ok := ma[name]; !ok {
				missing = append(missing, name+" (absent)")
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("families still zero after 30s: %v", missing)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// mustClient returns a client whose every connection goes to addr, whatever
// broker Metadata names: any agent serves any partition.
func mustClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	pin := kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), pin}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ptr(s string) *string { return &s }
