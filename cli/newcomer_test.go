package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
)

// stalledAgent listens and accepts connections but never answers a byte:
// an agent stuck behind a dead bucket or network, from the client's side.
func stalledAgent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	return ln.Addr().String()
}

// regexpLine reports whether a line of out matches expr.
func regexpLine(out, expr string) bool {
	return regexp.MustCompile(`(?m)^` + expr + `\s*$`).MatchString(out)
}

// TestProduceEndsWithinTimeout proves `shale produce` gives up and fails
// once --timeout has passed when the agent never acknowledges, instead of
// blocking in the client's flush (it hung for ever before).
func TestProduceEndsWithinTimeout(t *testing.T) {
	addr := stalledAgent(t)
	start := time.Now()
	_, errs, code := run(t, "a:1\nb:2\n", "produce", "-b", addr, "-t", "demo", "--timeout", "1s")
	took := time.Since(start)
	if code == 0 {
		t.Fatalf("produce to a stalled agent succeeded: %s", errs)
	}
	// run's context ends at 60 s; a produce bounded by its 1 s timeout ends
	// long before (the bound here is generous, to stay clear of slow CI).
	if took > 30*time.Second {
		t.Fatalf("produce took %s with --timeout 1s", took)
	}
	t.Logf("produce ended after %s: %s", took.Round(time.Millisecond), strings.TrimSpace(errs))
}

// TestConfigErrorsShowTheAgentsReason proves topic create and alter print
// the agent's ErrorMessage (which config and why), not only the code.
func TestConfigErrorsShowTheAgentsReason(t *testing.T) {
	addr := startTestStack(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "create", "c1", "-c", "retention.ms=forever"}, `"forever"`},
		{[]string{"topic", "create", "c2", "-c", "retention.msec=1"}, `unknown topic config "retention.msec"`},
		{[]string{"topic", "alter", "c3", "-c", "retention.ms=soon"}, `"soon"`},
	} {
		if tc.args[1] == "alter" {
			if _, errs, code := run(t, "", "topic", "create", "c3", "-b", addr); code != 0 {
				t.Fatalf("create c3: %s", errs)
			}
		}
		_, errs, code := run(t, "", append(tc.args, "-b", addr)...)
		if code == 0 || !strings.Contains(errs, "INVALID_CONFIG") || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want INVALID_CONFIG and %q", tc.args, code, errs, tc.want)
		}
	}
}

// TestNewcomerOutputs proves the smaller fixes a new user asked for: usage
// on a missing name, "not found" for an unknown group, singular "1 record",
// ignored configs marked, Kafka's topic ID form, a date accepted by --from,
// and the version line.
func TestNewcomerOutputs(t *testing.T) {
	addr := startTestStack(t)
	if _, errs, code := run(t, "", "topic", "describe", "-b", addr); code == 0 || !strings.Contains(errs, "Usage: shale topic describe NAME") {
		t.Errorf("topic describe without a name: exit %d, %q; want the usage line", code, errs)
	}
	if _, errs, code := run(t, "", "group", "describe", "nobody", "-b", addr); code == 0 || !strings.Contains(errs, "group nobody not found") {
		t.Errorf("group describe of an unknown group: exit %d, %q; want not found", code, errs)
	}
	if out, errs, code := run(t, "", "topic", "create", "n1", "-b", addr, "-c", "min.insync.replicas=2"); code != 0 || !strings.Contains(out, "with 1 partition\n") {
		t.Fatalf("topic create: %q %q", out, errs)
	}
	if _, errs, code := run(t, "hello\n", "produce", "-b", addr, "-t", "n1"); code != 0 || !strings.Contains(errs, "produced 1 record to n1") {
		t.Errorf("produce one line: %q, want \"produced 1 record\"", errs)
	}
	out, _, code := run(t, "", "topic", "describe", "n1", "-b", addr, "--etcd-endpoints", "127.0.0.1:1")
	if code != 0 || !strings.Contains(out, "retention.ms") ||
		!regexpLine(out, `min.insync.replicas\s+2\s+\(dynamic_topic_config; ignored on shale\)`) ||
		strings.Contains(out, "flush.messages") || !strings.Contains(out, "accepted for compatibility but have no effect") {
		t.Errorf("topic describe configs: want applied configs, the set-but-ignored one marked, ignored defaults counted:\n%s", out)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tds, err := kadm.NewClient(cl).ListTopics(context.Background(), "n1")
	if err != nil {
		t.Fatal(err)
	}
	tid := tds["n1"].ID
	id := base64.RawURLEncoding.EncodeToString(tid[:])
	if out, _, _ := run(t, "", "topic", "list", "-b", addr); !strings.Contains(out, id) || strings.Contains(id, "=") {
		t.Errorf("topic list shows no %s (Kafka's URL-safe unpadded form):\n%s", id, out)
	}
	if out, errs, code := run(t, "", "consume", "-b", addr, "-t", "n1", "--from", "2026-01-01"); code != 0 || out != "hello\n" {
		t.Errorf("consume --from 2026-01-01: exit %d %q %q; want the record", code, out, errs)
	}
	if out, errs, code := run(t, "", "consume", "-b", addr, "-t", "n1", "--from", time.Now().AddDate(0, 0, 2).Format(time.DateOnly)); code != 0 || out != "" {
		t.Errorf("consume --from <the day after tomorrow>: exit %d %q %q; want nothing", code, out, errs)
	}
	if out, _, code := run(t, "", "--version"); code != 0 || !strings.Contains(out, "commit ") || !strings.Contains(out, "go1.") {
		t.Errorf("--version: %q, want the commit and the Go version", out)
	}
}

// TestPerfProduceSaysWhenDurationCutsRecords proves perf-produce reports in
// MiB/s and says so when --duration ends the run before --records are sent.
func TestPerfProduceSaysWhenDurationCutsRecords(t *testing.T) {
	addr := startTestStack(t)
	// Created first: an auto-created topic's first Metadata answer is
	// LEADER_NOT_AVAILABLE, and the client's retry could use up the 1 s
	// on a loaded machine before any record is acknowledged.
	if _, errs, code := run(t, "", "topic", "create", "perf", "-b", addr); code != 0 {
		t.Fatal(errs)
	}
	out, errs, code := run(t, "", "perf-produce", "-b", addr, "-t", "perf", "--records", "100000000", "--record-size", "100", "--duration", "1s")
	if code != 0 || !strings.Contains(out, "MiB/s") || strings.Contains(out, "MB/s") ||
		!strings.Contains(errs, "--duration 1s ended the run after") {
		t.Fatalf("perf-produce cut by --duration: exit %d\n%s\n%s", code, out, errs)
	}
	out, errs, code = run(t, "", "perf-produce", "-b", addr, "-t", "perf", "--records", "50", "--record-size", "100", "--duration", "0")
	if code != 0 || !strings.HasPrefix(out, "50 records") || strings.Contains(errs, "ended the run") {
		t.Fatalf("perf-produce --duration 0: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestConsumeJSONIsReplaysJSONL proves `consume -o json` and `replay`
// write the same line, byte for byte, for the same records (null key, null
// value, headers, binary bytes included).
func TestConsumeJSONIsReplaysJSONL(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	st := startStack(t, StackOptions{
		DataDir: dir, EtcdEndpoints: endpoints, Bucket: bucket,
		Engine: engine.Config{FlushInterval: 20 * time.Millisecond},
		Agent:  agent.Config{Listen: "127.0.0.1:0", DefaultPartitions: 1, AgentTTL: 5 * time.Second},
	})
	addr := st.Agent.Addr().String()
	if _, errs, code := run(t, "", "topic", "create", "shape", "-b", addr); code != 0 {
		t.Fatal(errs)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("shape"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := []*kgo.Record{
		{Key: []byte("k"), Value: []byte(`{"a":1}`), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}, {Key: "h", Value: nil}}},
		{Key: nil, Value: []byte("no key")},
		{Key: []byte("tombstone"), Value: nil},
		{Key: []byte{0xff, 0x00}, Value: []byte("binary key")},
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	consumed, errs, code := run(t, "", "consume", "-b", addr, "-t", "shape", "-o", "json")
	if code != 0 {
		t.Fatal(errs)
	}
	replayed, errs, code := run(t, "", "replay", "-t", "shape", "--etcd-endpoints", strings.Join(endpoints, ","), "--bucket", bucket, "--quiet")
	if code != 0 {
		t.Fatal(errs)
	}
	if consumed != replayed || strings.Count(consumed, "\n") != len(recs) {
		t.Fatalf("consume -o json:\n%s\nreplay:\n%s", consumed, replayed)
	}
	for _, want := range []string{`"topic":"shape"`, `"key":null,"value":"no key"`, `"value":null`, `{"key":"h","value":null}`, `"encoding":"base64"`} {
		if !strings.Contains(consumed, want) {
			t.Errorf("output lacks %s:\n%s", want, consumed)
		}
	}
}

// TestKVOnATerminalQuotesControlBytes proves text and kv output quote keys
// and values a terminal would interpret, and only on a terminal.
func TestKVOnATerminalQuotesControlBytes(t *testing.T) {
	r := &kgo.Record{Key: []byte("k\x1b[31m"), Value: []byte{0xff, 'v'}}
	for _, tc := range []struct {
		tty  bool
		want string
	}{
		{true, `"k\x1b[31m"` + "\t" + `"\xffv"` + "\n"},
		{false, "k\x1b[31m\t\xffv\n"},
	} {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		printRecord(w, "kv", r, tc.tty)
		w.Flush()
		if b.String() != tc.want {
			t.Errorf("tty=%v: %q, want %q", tc.tty, b.String(), tc.want)
		}
	}
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	printRecord(w, "kv", &kgo.Record{Key: []byte("user1"), Value: []byte("clicked\tok")}, true)
	w.Flush()
	if b.String() != "user1\tclicked\tok\n" {
		t.Errorf("printable kv on a terminal changed: %q", b.String())
	}
}

// TestConsumeEndsWithinTimeout proves `shale consume` (to the end, no
// --follow) fails once no record came for --timeout while records remain,
// here against an agent whose Fetch handler stalls, instead of waiting for
// ever.
func TestConsumeEndsWithinTimeout(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	stall := make(chan struct{})
	var stalling atomic.Bool
	st, _, err := startStackOpts(t, StackOptions{DataDir: dir, EtcdEndpoints: endpoints, Bucket: filepath.Join(dir, "bucket"),
		Engine: engine.Config{FlushInterval: 20 * time.Millisecond},
		Agent: agent.Config{AutoCreateTopics: true, DefaultPartitions: 1, FaultHook: func(key int16) error {
			if key == 1 && stalling.Load() { // Fetch
				<-stall
			}
			return nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(stall) }) // before the stack's cleanup stops it
	addr := st.Agent.Addr().String()
	if _, errs, code := run(t, "a\nb\n", "produce", "-b", addr, "-t", "slow"); code != 0 {
		t.Fatal(errs)
	}
	stalling.Store(true)
	start := time.Now()
	_, errs, code := run(t, "", "consume", "-b", addr, "-t", "slow", "--timeout", "1s")
	if code == 0 || !strings.Contains(errs, "no record for --timeout 1s") {
		t.Fatalf("consume from a stalled agent: exit %d: %s", code, errs)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("consume took %s with --timeout 1s", took)
	}
}

// TestPerfResultPlurals proves perf-produce's summary says "1 record" and
// "1 error", not "1 records" (a newcomer's complaint), and keeps the
// plural otherwise.
func TestPerfResultPlurals(t *testing.T) {
	one := PerfResult{Records: 1, Bytes: 100, Elapsed: time.Second, Errors: 1, FirstError: errors.New("boom")}.String()
	if !strings.HasPrefix(one, "1 record (") || !strings.Contains(one, "; 1 error, first: boom") {
		t.Errorf("one record, one error: %q", one)
	}
	many := PerfResult{Records: 50, Bytes: 5000, Elapsed: time.Second, Errors: 2, FirstError: errors.New("boom")}.String()
	if !strings.HasPrefix(many, "50 records (") || !strings.Contains(many, "; 2 errors, first: boom") {
		t.Errorf("50 records, 2 errors: %q", many)
	}
}
