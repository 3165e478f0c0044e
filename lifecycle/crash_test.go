package lifecycle_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/engine/enginetest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// The crash test runs compaction and GC in a child process (this test
// binary in child mode) and kills it with SIGKILL: no deferred code runs.
func TestMain(m *testing.M) {
	if os.Getenv("SHALE_LC_CHILD") != "" {
		os.Exit(lifecycleChild())
	}
	os.Exit(m.Run())
}

// crashCompactCfg makes small segments of small chunks, so a pass does many
// uploads and swaps for a kill to land in.
func crashCompactCfg(tmp string) lifecycle.CompactConfig {
	return lifecycle.CompactConfig{TargetBytes: 24 << 10, ChunkBytes: 2 << 10, MinEntries: 2, Settle: time.Nanosecond,
		TempDir: tmp, Now: func() time.Time { return time.Now().Add(time.Second) }}
}

// lifecycleChild runs compaction (and, in mode "both", GC with no grace)
// passes until killed, printing READY once connected, then BEGIN n before
// and PASS n after each pass (stdout is unbuffered: a line printed is in
// the pipe when the kill lands).
func lifecycleChild() int {
	if os.Getenv("SHALE_LC_CHILD") == "kcbench" {
		return keyCompactBenchChild()
	}
	meta, store, err := enginetest.ChildStores(lcNS)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	fmt.Println("READY")
	for pass := 0; pass < 1000; pass++ {
		fmt.Println("BEGIN", pass)
		if os.Getenv("SHALE_LC_CHILD") == "manifest" {
			if _, err := lifecycle.WriteManifest(ctx, store, meta, "child", time.Now(), 3*time.Second, 0, nil); err != nil {
				fmt.Fprintln(os.Stderr, "manifest:", err)
				return 2
			}
			fmt.Println("PASS", pass)
			continue
		}
		if os.Getenv("SHALE_LC_CHILD") == "keys" {
			if _, err := lifecycle.CompactKeys(ctx, store, meta, crashKeyCfg(os.Getenv("SHALE_TMP")), nil); err != nil {
				fmt.Fprintln(os.Stderr, "key compaction:", err)
				return 2
			}
		}
		if _, err := lifecycle.Compact(ctx, store, meta, crashCompactCfg(os.Getenv("SHALE_TMP")), nil); err != nil {
			fmt.Fprintln(os.Stderr, "compact:", err)
			return 2
		}
		if mode := os.Getenv("SHALE_LC_CHILD"); mode == "both" || mode == "keys" {
			if _, err := lifecycle.CollectGarbage(ctx, store, meta, nil, time.Now(), 0, nil); err != nil {
				fmt.Fprintln(os.Stderr, "gc:", err)
				return 2
			}
		}
		fmt.Println("PASS", pass)
	}
	return 0
}

// TestKilledLifecycleLosesNothing kills a process running compaction and GC
// with SIGKILL 24 times at random delays while new data keeps arriving
// between kills. After every kill the index has no dangling entry (every
// entry's object exists and its CRCs verify, entries are dense); at the end
// every produced batch is read back exactly once, at its offset, and GC has
// removed every unreferenced object.
func TestKilledLifecycleLosesNothing(t *testing.T) {
	cli, endpoints := testenv.Etcd(t)
	bucket := t.TempDir()
	store, err := s3tier.NewDirStore(bucket)
	if err != nil {
		t.Fatal(err)
	}
	ctx := lcCtx(t)
	meta := metastore.New(cli, lcNS)
	tp, _ := meta.CreateTopic(ctx, "crashy", 2, nil)
	e := newEngine(t, cli, store)
	var want [2][][]byte
	round := 0
	produce := func(flushes int) {
		for range flushes {
			var pend []*engine.Pending
			for p := range want {
				for b := range 2 {
					raw := segmenttest.Batch(segmenttest.BatchOptions{Values: batchValues(round, b, 5), Timestamp: int64(round)})
					want[p] = append(want[p], raw)
					pend = append(pend, e.Produce(ctx, tp.ID, int32(p), raw))
				}
			}
			if err := e.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for _, pd := range pend {
				if _, err := pd.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			round++
		}
	}
	const kills = 24
	passesSeen, midPass := 0, 0
	for i := range kills {
		produce(6)
		mode := "compact"
		if i%2 == 1 {
			mode = "both"
		}
		passes, begun := killChild(t, i, mode, endpoints, bucket, time.Duration(rand.IntN(25))*time.Millisecond)
		passesSeen += passes
		if begun > passes {
			midPass++ // a pass had begun and not ended: the kill landed in it
		}
		checkIndex(t, meta, store, tp)
	}
	// A clean pass, then everything must be there exactly once.
	if _, err := lifecycle.Compact(ctx, store, meta, crashCompactCfg(t.TempDir()), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lifecycle.CollectGarbage(ctx, store, meta, nil, time.Now(), 0, nil); err != nil {
		t.Fatal(err)
	}
	entries, refs := checkIndex(t, meta, store, tp)
	r := newEngine(t, cli, store)
	for p := range want {
		got := readFrom(t, r, tp.ID, int32(p), 0)
		if len(got) != len(want[p]) {
			t.Fatalf("p%d: %d batches read, %d produced", p, len(got), len(want[p]))
		}
		for i := range got {
			if !bytes.Equal(got[i][8:], want[p][i][8:]) || int64(i)*5 != int64(bigEndian64(got[i])) {
				t.Fatalf("p%d: batch %d differs or is at the wrong offset", p, i)
			}
		}
	}
	all, _ := store.List(ctx, "")
	if len(all) != len(refs) {
		t.Fatalf("bucket holds %d objects, %d referenced: GC left garbage", len(all), len(refs))
	}
	t.Logf("%d SIGKILLs, %d of them mid-pass (%d whole passes completed in all); %d batches intact; %d entries in %d objects", kills, midPass, passesSeen, len(want[0])+len(want[1]), entries, len(refs))
	if midPass == 0 {
		t.Fatalf("none of the %d kills landed mid-pass: the test proved nothing about a pass cut short", kills)
	}
}

func bigEndian64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// killChild starts this test binary as a lifecycle child running mode
// (SHALE_LC_CHILD) on the given etcd and bucket, SIGKILLs it after delay
// once it is READY, and counts the passes it began (BEGIN lines) and
// finished (PASS lines): begun > passes means the kill landed mid-pass.
func killChild(t *testing.T, i int, mode string, endpoints []string, bucket string, delay time.Duration) (passes, begun int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHALE_LC_CHILD="+mode, "SHALE_ETCD="+strings.Join(endpoints, ","),
		"SHALE_BUCKET="+bucket, "SHALE_TMP="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "READY" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child %d did not start: %s", i, stderr.String())
	}
	lines := make(chan string, 1024)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child %d was not killed: %v; stderr: %s", i, cmd.ProcessState, stderr.String())
	}
	for l := range lines {
		switch {
		case strings.HasPrefix(l, "PASS"):
			passes++
		case strings.HasPrefix(l, "BEGIN"):
			begun++
		}
	}
	return passes, begun
}
