package engine

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shale-dev/shale/engine/enginetest"
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
	meta, store, err := enginetest.ChildStores(testNS)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if d, err := time.ParseDuration(os.Getenv("SHALE_CRASH_PUT_DELAY")); err == nil {
		// Slow PUTs of varied length: several uploads in flight, finishing
		// out of seal order, so commit passes take several objects.
		store = s3tier.Faulty(store, func(op, _ string) error {
			if op == s3tier.OpPut {
				time.Sleep(time.Duration(rand.Int64N(int64(d))))
			}
			return nil
		})
	}
	cfg := Config{DataDir: os.Getenv("SHALE_DATA"), FlushInterval: 5 * time.Millisecond}
	if n, err := strconv.ParseInt(os.Getenv("SHALE_CRASH_FLUSH_BYTES"), 10, 64); err == nil {
		cfg.FlushBytes = n // small objects: many in flight at once
	}
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
	writers, _ := strconv.Atoi(os.Getenv("SHALE_CRASH_WRITERS"))
	writers = max(writers, 1)
	window, _ := strconv.Atoi(os.Getenv("SHALE_CRASH_WINDOW"))
	window = max(window, 1)
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	failed := make(chan struct{}, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer keeps up to `window` produces in flight (as a
			// Kafka client pipelines requests) and reports them in order.
			type inflight struct {
				p    int32
				seq  int
				pend *Pending
			}
			var q []inflight
			for seq := 0; seq < 100000; seq++ {
				p := int32((seq + w) % 4)
				q = append(q, inflight{p, seq, e.Produce(context.Background(), tp.ID, p, segmenttest.Batch(segmenttest.BatchOptions{Records: 3, Value: value(w+1, seq)}))})
				if len(q) < window {
					continue
				}
				f := q[0]
				q = q[1:]
				res, err := f.pend.Wait(context.Background())
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					failed <- struct{}{}
					return
				}
				st := e.Snapshot()
				mu.Lock()
				fmt.Fprintf(out, "ACK %d %d %d %d %d %d\n", f.p, res.BaseOffset, f.seq, w+1, st.CommittedObjects, st.CommitPasses)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		return 2
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
	killedWriter(t, "killed", 200)
}

// TestKilledPipelinedWriterLosesNoAck is the same with the pipeline full:
// 16 concurrent producers with 4 produces in flight each, small objects
// (512 bytes: a few batches each), slow PUTs of varied length (several uploads in
// flight, finishing out of order, so commit passes carry several objects),
// killed at a random instant: no acknowledged batch lost, offsets dense,
// each producer's batches in its order within a partition.
func TestKilledPipelinedWriterLosesNoAck(t *testing.T) {
	killedWriter(t, "killed-pipelined", 300+rand.IntN(300), "SHALE_CRASH_WRITERS=16", "SHALE_CRASH_WINDOW=4", "SHALE_CRASH_FLUSH_BYTES=512", "SHALE_CRASH_PUT_DELAY=40ms")
}

func killedWriter(t *testing.T, topic string, kills int, env ...string) {
	cli, endpoints := testenv.Etcd(t)
	bucket := t.TempDir()
	tp := createTopic(t, cli, topic, 4)
	cmd, sc := startCrashChild(t, endpoints, bucket, topic, env...)
	type ack struct{ p, off, seq, w int64 }
	var acks []ack
	var objects, passes int64
	for sc.Scan() && len(acks) < kills {
		f := strings.Fields(sc.Text())
		var a ack
		a.p, _ = strconv.ParseInt(f[1], 10, 64)
		a.off, _ = strconv.ParseInt(f[2], 10, 64)
		a.seq, _ = strconv.ParseInt(f[3], 10, 64)
		a.w, _ = strconv.ParseInt(f[4], 10, 64)
		objects, _ = strconv.ParseInt(f[5], 10, 64)
		passes, _ = strconv.ParseInt(f[6], 10, 64)
		acks = append(acks, a)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acks) < kills {
		t.Fatalf("child acknowledged only %d batches before exiting", len(acks))
	}
	store, _ := s3tier.NewDirStore(bucket)
	r := testEngine(t, cli, store, nil)
	parts := make([][][]byte, 4)
	for p := range parts {
		// readAll reads every offset from 0 to the end: a gap fails it.
		parts[p] = readAll(t, r, tp.ID, int32(p))
	}
	for _, a := range acks {
		want := segmenttest.Batch(segmenttest.BatchOptions{Records: 3, Value: value(int(a.w), int(a.seq))})
		i := a.off / 3
		if i >= int64(len(parts[a.p])) || !sameExceptBase(parts[a.p][i], want) {
			t.Fatalf("acknowledged batch of writer %d seq %d (p%d @%d) lost after kill", a.w, a.seq, a.p, a.off)
		}
	}
	// Each writer's batches keep its order within a partition.
	for p, batches := range parts {
		last := map[uint64]uint64{}
		for i, b := range batches {
			v := recordValue(t, b)
			w, seq := binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
			if prev, ok := last[w]; ok && seq <= prev {
				t.Fatalf("p%d offset %d: writer %d seq %d after seq %d", p, 3*i, w, seq, prev)
			}
			last[w] = seq
		}
	}
	t.Logf("%d acknowledged batches survived SIGKILL (%d objects committed in %d passes)", len(acks), objects, passes)
	if len(env) > 0 && objects <= passes {
		t.Fatalf("%d objects in %d commit passes: the pipelined path (several objects per pass) was not exercised", objects, passes)
	}
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

// recordValue is the value of a batch's first record.
func recordValue(t *testing.T, batch []byte) []byte {
	t.Helper()
	recs, err := segmenttest.Records(batch)
	if err != nil || len(recs) == 0 || len(recs[0].Value) < 16 {
		t.Fatalf("batch unreadable: %v", err)
	}
	return recs[0].Value
}
