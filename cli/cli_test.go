package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
)

// startTestStack runs one agent in-process on a real embedded etcd and a
// local-directory bucket, and returns its Kafka address.
func startTestStack(t *testing.T) string {
	t.Helper()
	addr, _ := startTestStackEtcd(t)
	return addr
}

// startTestStackEtcd is startTestStack that also returns the etcd endpoints
// (the agent's namespace is the default /shale).
func startTestStackEtcd(t *testing.T) (string, []string) {
	t.Helper()
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	st := startStack(t, StackOptions{
		DataDir: dir, EtcdEndpoints: endpoints, Bucket: filepath.Join(dir, "bucket"),
		Engine: engine.Config{FlushInterval: 20 * time.Millisecond},
		Agent:  agent.Config{Listen: "127.0.0.1:0", AutoCreateTopics: true, DefaultPartitions: 1, AgentTTL: 5 * time.Second},
	})
	return st.Agent.Addr().String(), endpoints
}

// startStack starts a stack with o (logs discarded), fails t if it does
// not start, and closes it (10 s) when t ends.
func startStack(t *testing.T, o StackOptions) *Stack {
	t.Helper()
	st, err := StartStack(context.Background(), o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.Close(ctx)
	})
	return st
}

func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := Execute(ctx, args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// TestTopicProduceConsume proves the CLI round trip: create a topic, produce
// keyed lines with headers, and consume them back as text and JSON, from
// the start, from an offset and from a time.
func TestTopicProduceConsume(t *testing.T) {
	addr := startTestStack(t)
	if out, errs, code := run(t, "", "topic", "create", "events", "-b", addr, "-p", "3", "-c", "retention.ms=-1"); code != 0 {
		t.Fatalf("topic create: %s %s", out, errs)
	}
	out, _, code := run(t, "", "topic", "list", "-b", addr)
	if code != 0 || !strings.Contains(out, "events") || !strings.Contains(out, "3") {
		t.Fatalf("topic list: %q", out)
	}
	before := time.Now()
	var in strings.Builder
	for i := 0; i < 30; i++ {
		in.WriteString("k" + string(rune('a'+i%3)) + ":value-" + string(rune('A'+i%26)) + "\n")
	}
	if out, errs, code := run(t, in.String(), "produce", "-b", addr, "-t", "events", "-K", ":", "-H", "src=test"); code != 0 || !strings.Contains(errs, "produced 30 records") {
		t.Fatalf("produce: %d %s %s", code, out, errs)
	}
	out, errs, code := run(t, "", "consume", "-b", addr, "-t", "events", "-o", "json")
	if code != 0 {
		t.Fatalf("consume: %s", errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 30 {
		t.Fatalf("consumed %d records, want 30:\n%s", len(lines), out)
	}
	perKey := map[string]int{}
	for _, l := range lines {
		var r jsonLine
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		if r.Key == nil || len(r.Headers) != 1 || r.Headers[0].Key != "src" || *r.Headers[0].Value != "test" || !strings.HasPrefix(*r.Value, "value-") ||
			r.Topic != "events" || r.Timestamp < before.UnixMilli()-1000 {
			t.Fatalf("record %q lacks key, header or value", l)
		}
		perKey[*r.Key]++
	}
	if len(perKey) != 3 || perKey["ka"] != 10 {
		t.Fatalf("keys %v, want 10 each of ka, kb, kc", perKey)
	}
	out, _, _ = run(t, "", "consume", "-b", addr, "-t", "events", "--from", "5", "-n", "2")
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 2 {
		t.Fatalf("--from 5 -n 2 printed %d lines: %q", n, out)
	}
	out, _, _ = run(t, "", "consume", "-b", addr, "-t", "events", "--from", before.Add(-time.Minute).UTC().Format(time.RFC3339))
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 30 {
		t.Fatalf("--from <time before> printed %d lines, want 30", n)
	}
	out, _, code = run(t, "", "consume", "-b", addr, "-t", "events", "--from", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if code != 0 || strings.TrimSpace(out) != "" {
		t.Fatalf("--from <future> printed %q (code %d), want nothing", out, code)
	}
	out, _, code = run(t, "", "topic", "describe", "events", "-b", addr)
	if code != 0 || !strings.Contains(out, "retention.ms") || !strings.Contains(out, "LOG END") {
		t.Fatalf("describe: %s", out)
	}
	if _, errs, code := run(t, "", "topic", "delete", "events", "-b", addr); code != 0 {
		t.Fatalf("delete: %s", errs)
	}
}

// TestCLIErrorsSayWhatToDo proves bad input exits non-zero with a message
// that tells the user what to do.
func TestCLIErrorsSayWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "-b", "127.0.0.1:1", "-t", "x", "--timeout", "1s"}, "is `shale agent` running"},
		{[]string{"produce", "-b", "127.0.0.1:1"}, "--topic is required"},
		{[]string{"agent", "--flush-bytes", "lots"}, "e.g. 4MiB"},
		{[]string{"agent", "--etcd-endpoints", "", "--listen", "127.0.0.1:0"}, "--etcd-endpoints"},
		{[]string{"agent", "--config", "/nonexistent.yaml"}, "read config"},
		{[]string{"topic", "create", "t", "-c", "novalue"}, "key=value"},
	} {
		_, errs, code := run(t, "", tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error mentioning %q", tc.args, code, errs, tc.want)
		}
	}
	var out bytes.Buffer
	if code := Execute(context.Background(), []string{"agent", "--help"}, nil, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "SHALE_") {
		t.Errorf("agent --help does not explain SHALE_ variables")
	}
}

// jsonLine is one line of `consume -o json` and of replay's JSONL (one shape).
type jsonLine struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Timestamp int64   `json:"timestamp"` // Unix ms
	Key       *string `json:"key"`
	Value     *string `json:"value"`
	Headers   []struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	} `json:"headers"`
	Encoding string `json:"encoding"`
}
