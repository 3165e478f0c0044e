package cli

import (
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
	st, err := StartStack(context.Background(), StackOptions{
		DataDir: dir, EtcdEndpoints: endpoints, EtcdNamespace: "/describe", Bucket: filepath.Join(dir, "bucket"),
		Engine: engine.Config{FlushInterval: 20 * time.Millisecond},
		Agent:  agent.Config{Listen: "127.0.0.1:0", AutoCreateTopics: true, DefaultPartitions: 1, AgentTTL: 5 * time.Second},
		Lifecycle: lifecycle.Config{Interval: 200 * time.Millisecond, LeaseTTL: time.Second,
			Compaction: lifecycle.CompactConfig{Settle: 300 * time.Millisecond, MinEntries: 2}},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.Close(ctx)
	})
	addr := st.Agent.Addr().String()
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
	m := describe()
	if m == nil || m[2] != "10" || m[5] != "10" || m[6] != "10" {
		t.Fatalf("describe before compaction: %q, want 10 records in 10 objects and 10 entries", m)
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
