package engine

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// The crash tests run a writer in a child process (this test binary, in
// writer mode) and kill it with SIGKILL: no deferred code, no flush.
func TestMain(m *testing.M) {
	if os.Getenv("SHALE_CRASH_CHILD") != "" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}

// crashChild produces batches forever to partition 0..3 of the topic named
// in the environment and prints "ACK <partition> <offset> <seq>" for each
// acknowledged batch. With SHALE_CRASH_BEFORE_COMMIT it kills itself after
// its first upload, before the commit.
func crashChild() int {
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(os.Getenv("SHALE_ETCD"), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	store, err := s3tier.NewDirStore(os.Getenv("SHALE_BUCKET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	meta := metastore.New(cli, testNS)
	cfg := Config{DataDir: os.Getenv("SHALE_DATA"), FlushInterval: 5 * time.Millisecond}
	if os.Getenv("SHALE_CRASH_BEFORE_COMMIT") != "" {
		cfg.beforeCommit = func(string) { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	}
	e, err := New(cfg, store, meta, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tp, err := meta.GetTopic(context.Background(), os.Getenv("SHALE_TOPIC"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	for seq := 0; seq < 100000; seq++ {
		p := int32(seq % 4)
		pend := e.Produce(context.Background(), tp.ID, p, segmenttest.Batch(segmenttest.BatchOptions{Records: 3, Value: value(1, seq)}))
		res, err := pend.Wait(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Fprintf(out, "ACK %d %d %d\n", p, res.BaseOffset, seq)
		out.Flush()
	}
	return 0
}

func startCrashChild(t *testing.T, endpoints []string, bucket, topic string, extraEnv ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHALE_CRASH_CHILD=1", "SHALE_ETCD="+strings.Join(endpoints, ","),
		"SHALE_BUCKET="+bucket, "SHALE_DATA="+t.TempDir(), "SHALE_TOPIC="+topic)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewScanner(stdout)
}

// TestKilledWriterLosesNoAck proves invariant 1 with a real SIGKILL: every
// batch the writer process saw acknowledged is readable afterwards, through
// an engine that shares nothing with it, at the acknowledged offset.
func TestKilledWriterLosesNoAck(t *testing.T) {
	cli, endpoints := testenv.Etcd(t)
	bucket := t.TempDir()
	tp := createTopic(t, cli, "killed", 4)
	cmd, sc := startCrashChild(t, endpoints, bucket, "killed")
	type ack struct{ p, off, seq int64 }
	var acks []ack
	for sc.Scan() && len(acks) < 200 {
		f := strings.Fields(sc.Text())
		p, _ := strconv.ParseInt(f[1], 10, 64)
		off, _ := strconv.ParseInt(f[2], 10, 64)
		seq, _ := strconv.ParseInt(f[3], 10, 64)
		acks = append(acks, ack{p, off, seq})
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acks) < 200 {
		t.Fatalf("child acknowledged only %d batches before exiting", len(acks))
	}
	store, _ := s3tier.NewDirStore(bucket)
	r := testEngine(t, cli, store, nil)
	parts := make([][][]byte, 4)
	for p := range parts {
		parts[p] = readAll(t, r, tp.ID, int32(p))
	}
	for _, a := range acks {
		want := segmenttest.Batch(segmenttest.BatchOptions{Records: 3, Value: value(1, int(a.seq))})
		i := a.off / 3
		if i >= int64(len(parts[a.p])) || !sameExceptBase(parts[a.p][i], want) {
			t.Fatalf("acknowledged batch seq %d (p%d @%d) lost after kill", a.seq, a.p, a.off)
		}
	}
	t.Logf("%d acknowledged batches survived SIGKILL", len(acks))
}

// TestKilledBeforeCommitLeavesNoEntry proves a writer killed between upload
// and commit leaves no visible index entry and no offset consumed; its
// object is listed as unreferenced garbage.
func TestKilledBeforeCommitLeavesNoEntry(t *testing.T) {
	cli, endpoints := testenv.Etcd(t)
	bucket := t.TempDir()
	tp := createTopic(t, cli, "orphan", 4)
	cmd, sc := startCrashChild(t, endpoints, bucket, "orphan", "SHALE_CRASH_BEFORE_COMMIT=1")
	for sc.Scan() {
		t.Fatalf("child acknowledged %q although it dies before committing", sc.Text())
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child did not die by signal: %v", err)
	}
	ctx := context.Background()
	meta := metastore.New(cli, testNS)
	for p := int32(0); p < 4; p++ {
		st, err := meta.PartitionState(ctx, tp.ID, p)
		if err != nil || st.NextOffset != 0 {
			t.Fatalf("p%d: next offset %d (%v), want 0", p, st.NextOffset, err)
		}
		if n, _ := meta.CountEntries(ctx, tp.ID, p); n != 0 {
			t.Fatalf("p%d: %d index entries, want 0", p, n)
		}
	}
	store, _ := s3tier.NewDirStore(bucket)
	all, _ := store.List(ctx, "")
	garbage, err := lifecycle.Unreferenced(ctx, store, meta, "", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || len(garbage) != 1 || garbage[0].Key != all[0].Key {
		t.Fatalf("bucket holds %v, garbage %v: want the one uploaded object listed as garbage", all, garbage)
	}
}
