package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
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

// TestCompactedTopicWithKcat proves cleanup.policy=compact end to end on
// an agent whose lifecycle runs the key-compaction job: a topic created
// with `shale topic create -c cleanup.policy=compact`, keys and tombstones
// produced with `kcat -P -K: -Z`, and `kcat -C` from the beginning soon
// reads only the latest record of each key (the tombstone as a null value)
// at the offsets first assigned, through the very agent that served the
// produce and cached the replaced index entry; `shale topic describe`
// shows the cleaner checkpoint; a keyless record is refused; after
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
	if _, errs, code := run(t, "", "topic", "create", "kc", "-b", addr, "-p", "1", "-c", "cleanup.policy=compact",
		"-c", "segment.ms=1", "-c", "min.cleanable.dirty.ratio=0"); code != 0 {
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
	// One record per line; "b:" is a tombstone (-Z: empty is NULL).
	if out, err := kc("a:1\nb:1\nc:1\na:2\nb:\nc:2\na:3\n", "-P", "-K:", "-Z", "-p", "0"); err != nil {
		t.Fatalf("kcat produce: %v %s", err, out)
	}
	want := "4 b -1\n5 c 1\n6 a 1\n" // offset, key, value length (-1: null)
	var got string
	for ctx.Err() == nil {
		got, err = kc("", "-C", "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o %k %S\n")
		if err == nil && got == want {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("kcat read %q, want %q (the latest record of each key)", got, want)
	}
	out, errs, code := run(t, "", "topic", "describe", "kc", "-b", addr, "--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-namespace", "/compacted")
	if code != 0 || !regexp.MustCompile(`(?m)^KEY COMPACTION\nPARTITION\s+CHECKPOINT\s+DIRTY OFFSETS\s+LAST PASS\n0\s+7\s+0\s+\d{4}-`).MatchString(out) {
		t.Errorf("topic describe: want partition 0 compacted up to checkpoint 7, nothing dirty:\n%s%s", out, errs)
	}
	if out, err := kc("novalue\n", "-P", "-p", "0", "-X", "message.send.max.retries=0"); err == nil && !strings.Contains(out, "INVALID_RECORD") && !strings.Contains(out, "nvalid record") {
		t.Errorf("keyless record: %q, want refused", out)
	}

	// compact,delete: retention applies again.
	if _, errs, code := run(t, "", "topic", "alter", "kc", "-b", addr, "-c", "cleanup.policy=compact,delete", "-c", "retention.ms=1"); code != 0 {
		t.Fatalf("topic alter: %s", errs)
	}
	for ctx.Err() == nil {
		got, err = kc("", "-C", "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o %k %S\n")
		if err == nil && got == "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != "" {
		t.Fatalf("after compact,delete with retention.ms=1: kcat read %q, want nothing", got)
	}
}
