package cli

import (
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
)

// TestDescribeShowsStorageAndLifecycleRuns proves that an agent started by
// StartStack runs the lifecycle jobs (here compaction, with a short settle
// time) and that `shale topic describe` shows per-partition bytes, objects
// and index entries read from etcd: ten produce runs make ten entries in ten
// objects, which the agent's compaction turns into one.
func TestDescribeShowsStorageAndLifecycleRuns(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	st := startStack(t, StackOptions{
		DataDir: dir, EtcdEndpoints: endpoints, EtcdNamespace: "/describe", Bucket: filepath.Join(dir, "bucket"),
		Engine: engine.Config{FlushInterval: 20 * time.Millisecond},
		Agent:  agent.Config{Listen: "127.0.0.1:0", AutoCreateTopics: true, DefaultPartitions: 1, AgentTTL: 5 * time.Second},
		Lifecycle: lifecycle.Config{Interval: 200 * time.Millisecond, LeaseTTL: time.Second,
			// MinEntries 1: a segment and one chunk entry after it merge
			// too. With 2, a slow machine (each produce run a process)
			// could settle and merge all but the last run, leaving a
			// segment and one entry that never merge (CI, under -race).
			Compaction: lifecycle.CompactConfig{Settle: 2 * time.Second, MinEntries: 1}},
	})
	addr := st.Agent.Addr().String()
	// Created first: a produce that auto-creates the topic waits out a
	// Metadata retry (LEADER_NOT_AVAILABLE, as Kafka answers; about 250 ms),
	// which spreads the commits over more than one compaction pass.
	if _, errs, code := run(t, "", "topic", "create", "logs", "-b", addr); code != 0 {
		t.Fatalf("topic create: %s", errs)
	}
	for i := range 10 {
		if _, errs, code := run(t, "line-"+string(rune('a'+i))+"\n", "produce", "-b", addr, "-t", "logs"); code != 0 {
			t.Fatalf("produce: %s", errs)
		}
	}
	row := regexp.MustCompile(`(?m)^0\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+ ?\S*?)\s+(\d+)\s+(\d+)\s*$`)
	describe := func() []string {
		out, errs, code := run(t, "", "topic", "describe", "logs", "-b", addr, "--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-namespace", "/describe")
		if code != 0 || !strings.Contains(out, "INDEX ENTRIES") {
			t.Fatalf("describe: %s %s", out, errs)
		}
		return row.FindStringSubmatch(out)
	}
	// Each produce run is one object and one entry. The agent's compaction
	// may already have merged the oldest ones when the machine is slow
	// (the settle time counts from each commit), so before compaction
	// describe must show all 10 records in as many objects as entries,
	// and more than one of each.
	m := describe()
	if m == nil || m[2] != "10" || m[5] != m[6] || m[6] == "1" {
		t.Fatalf("describe before compaction: %q, want 10 records in 2-10 objects, one entry each", m)
	}
	if n, _ := strconv.Atoi(m[6]); n < 2 || n > 10 {
		t.Fatalf("describe before compaction: %q, want 2-10 entries", m)
	}
	deadline := time.Now().Add(20 * time.Second)
	for m[6] != "1" && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		m = describe()
	}
	if m[6] != "1" || m[5] != "1" || m[2] != "10" {
		t.Fatalf("describe after the agent's compaction: %q, want 10 records in 1 object and 1 entry", m)
	}
	t.Logf("after compaction: %s", m[0])
	// Without etcd the storage columns are left out, with a note.
	out, _, code := run(t, "", "topic", "describe", "logs", "-b", addr, "--etcd-endpoints", "127.0.0.1:1")
	if code != 0 || !strings.Contains(out, "storage columns left out") {
		t.Fatalf("describe without etcd: %d %s", code, out)
	}
}

// TestDescribeShowsBytesSaved proves `shale topic describe` shows the bytes
// saved by recompressing produced batches into the topic's
// compression.type: an uncompressed producer writes compressible records
// to a zstd topic, the agent adds its counts to etcd when it stops, and
// describe (here from etcd, the agent being stopped) reports them.
func TestDescribeShowsBytesSaved(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	st, err := StartStack(context.Background(), StackOptions{
		DataDir: dir, EtcdEndpoints: endpoints, EtcdNamespace: "/saved", Bucket: filepath.Join(dir, "bucket"),
		Engine: engine.Config{FlushInterval: 20 * time.Millisecond},
		Agent:  agent.Config{Listen: "127.0.0.1:0", DefaultPartitions: 1, AgentTTL: 5 * time.Second},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr := st.Agent.Addr().String()
	if _, errs, code := run(t, "", "topic", "create", "packed", "-b", addr, "--partitions", "1", "--config", "compression.type=zstd"); code != 0 {
		t.Fatalf("create: %s", errs)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("packed"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	var rs []*kgo.Record
	for i := range 500 {
		rs = append(rs, &kgo.Record{Value: []byte(strings.Repeat("the same words again ", 20) + strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	out, errs, code := run(t, "", "topic", "describe", "packed", "-b", addr, "--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-namespace", "/saved")
	if code != 0 {
		t.Fatalf("describe: %s %s", out, errs)
	}
	m := regexp.MustCompile(`recompressed at produce into compression.type: (.+) as produced, (.+) stored, (.+) saved \((\d+\.\d)%\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("describe shows no bytes saved:\n%s", out)
	}
	if pct, _ := strconv.ParseFloat(m[4], 64); pct < 50 {
		t.Fatalf("describe shows %s%% saved for very compressible records:\n%s", m[4], out)
	}
	t.Logf("%s", m[0])
}
