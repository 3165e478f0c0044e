package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
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

// TestCompactedTopicWithKcat proves cleanup.policy=compact end to end on
// an agent whose lifecycle runs the key-compaction job, switching a topic
// delete -> compact -> compact,delete as an operator would: keys and
// tombstones produced with `kcat -P -K: -Z` into a topic created with the
// default policy (delete); after `shale topic alter -c
// cleanup.policy=compact`, `kcat -C` from the beginning soon reads only the
// latest record of each key (the tombstone as a null value) at the offsets
// first assigned, through the very agent that served the produce and cached
// the replaced index entry, and so do `shale consume -o json` and `shale
// replay` (read from etcd and the bucket); `shale topic describe` shows
// the cleaner checkpoint, nothing dirty, the dirty ratio and the bytes the
// pass rewrote, before and after; `shale consume` ends on a log ending in a
// transaction's commit marker; a keyless record is refused; after
// switching to compact,delete with a short retention.ms, retention still
// deletes the old records (the log start advances past them).
func TestCompactedTopicWithKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is missing (%v): run `make test-deps` to install it", err)
	}
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	st, err := StartStack(context.Background(), StackOptions{
		DataDir: dir, EtcdEndpoints: endpoints, EtcdNamespace: "/compacted", Bucket: filepath.Join(dir, "bucket"),
		Engine: engine.Config{FlushInterval: 20 * time.Millisecond},
		Agent:  agent.Config{Listen: "127.0.0.1:0", DefaultPartitions: 1, AgentTTL: 5 * time.Second},
		Lifecycle: lifecycle.Config{Interval: 200 * time.Millisecond, LeaseTTL: time.Second,
			Compaction: lifecycle.CompactConfig{Settle: 100 * time.Millisecond, MinEntries: 1000}},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		st.Close(ctx)
	})
	addr := st.Agent.Addr().String()
	etcdFlags := []string{"--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-namespace", "/compacted"}
	if _, errs, code := run(t, "", "topic", "create", "kc", "-b", addr, "-p", "1"); code != 0 {
		t.Fatalf("topic create: %s", errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kc := func(stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", addr, "-t", "kc"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			return out.String(), err
		}
		return out.String() + errb.String(), nil
	}
	// One record per kcat run, so one batch each (the four superseded ones
	// then read as one emptied batch spanning offsets 0..3); "b:" is a
	// tombstone (-Z: empty is NULL).
	for _, line := range []string{"a:1", "b:1", "c:1", "a:2", "b:", "c:2", "a:3"} {
		if out, err := kc(line+"\n", "-P", "-K:", "-Z", "-p", "0"); err != nil {
			t.Fatalf("kcat produce %s: %v %s", line, err, out)
		}
	}
	const all = "0 a 1\n1 b 1\n2 c 1\n3 a 1\n4 b -1\n5 c 1\n6 a 1\n" // offset, key, value length (-1: null)
	read := func() (string, error) {
		return kc("", "-C", "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o %k %S\n")
	}
	if got, err := read(); err != nil || got != all {
		t.Fatalf("kcat read %q (%v) under cleanup.policy=delete, want every record %q", got, err, all)
	}

	// delete -> compact.
	if _, errs, code := run(t, "", "topic", "alter", "kc", "-b", addr, "-c", "cleanup.policy=compact",
		"-c", "segment.ms=1", "-c", "min.cleanable.dirty.ratio=0"); code != 0 {
		t.Fatalf("topic alter: %s", errs)
	}
	want := "4 b -1\n5 c 1\n6 a 1\n"
	var got string
	for ctx.Err() == nil {
		got, err = read()
		if err == nil && got == want {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("kcat read %q, want %q (the latest record of each key)", got, want)
	}
	// shale consume (through the agent) and shale replay (from etcd and
	// the bucket) read the same gaps.
	jsonl := func(out string) string {
		var b strings.Builder
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var r struct {
				Offset int64
				Key    string
				Value  *string
			}
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			n := -1
			if r.Value != nil {
				n = len(*r.Value)
			}
			fmt.Fprintf(&b, "%d %s %d\n", r.Offset, r.Key, n)
		}
		return b.String()
	}
	if out, errs, code := run(t, "", "consume", "-b", addr, "-t", "kc", "-o", "json"); code != 0 || jsonl(out) != want {
		t.Errorf("shale consume read %q (exit %d, %s), want %q", jsonl(out), code, errs, want)
	}
	if out, errs, code := run(t, "", append([]string{"replay", "-t", "kc", "--quiet"}, etcdFlags...)...); code != 0 || jsonl(out) != want {
		t.Errorf("shale replay read %q (exit %d, %s), want %q", jsonl(out), code, errs, want)
	}
	out, errs, code := run(t, "", append([]string{"topic", "describe", "kc", "-b", addr}, etcdFlags...)...)
	re := regexp.MustCompile(`(?m)^KEY COMPACTION\nPARTITION\s+CHECKPOINT\s+DIRTY OFFSETS\s+DIRTY BYTES\s+DIRTY RATIO\s+LAST PASS\s+REWROTE \(BEFORE -> AFTER\)\n` +
		`0\s+7\s+0\s+0 B\s+0\.00\s+\d{4}-\S+\s+(\d+) B -> (\d+) B\n`)
	m := re.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("topic describe: want partition 0 compacted up to checkpoint 7, nothing dirty, the bytes rewritten:\n%s%s", out, errs)
	}
	if before, _ := strconv.Atoi(m[1]); before == 0 || m[1] == m[2] {
		t.Errorf("topic describe: rewrote %s B -> %s B, want the bytes of the replaced entries, then fewer", m[1], m[2])
	}
	// A transaction's records end in its commit marker, which no record
	// reaches: shale consume still ends (before: the --timeout error).
	tx, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("kc-tx"), kgo.DefaultProduceTopic("kc"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Key: []byte("t"), Value: []byte("x"), Partition: 0}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := run(t, "", "consume", "-b", addr, "-t", "kc", "-o", "json", "--timeout", "5s"); code != 0 || jsonl(out) != want+"7 t 1\n" {
		t.Errorf("shale consume of a log ending in a commit marker read %q (exit %d, %s), want %q", jsonl(out), code, errs, want+"7 t 1\n")
	}
	if out, err := kc("novalue\n", "-P", "-p", "0", "-X", "message.send.max.retries=0"); err == nil && !strings.Contains(out, "INVALID_RECORD") && !strings.Contains(out, "nvalid record") {
		t.Errorf("keyless record: %q, want refused", out)
	}

	// compact -> compact,delete: retention applies again.
	if _, errs, code := run(t, "", "topic", "alter", "kc", "-b", addr, "-c", "cleanup.policy=compact,delete", "-c", "retention.ms=1"); code != 0 {
		t.Fatalf("topic alter: %s", errs)
	}
	for ctx.Err() == nil {
		got, err = read()
		if err == nil && got == "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != "" {
		t.Fatalf("after compact,delete with retention.ms=1: kcat read %q, want nothing", got)
	}
}
