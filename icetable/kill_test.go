package icetable_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/engine/enginetest"
	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay/replaytest"
)

func TestMain(m *testing.M) {
	if os.Getenv("SHALE_ICE_CHILD") != "" {
		if args := os.Getenv("SHALE_ICE_REPLAY"); args != "" {
			os.Exit(replayChild(args))
		}
		os.Exit(materializeChild())
	}
	os.Exit(m.Run())
}

// materializeChild materializes SHALE_ICE_TOPIC in commits of 2 KiB until
// killed, printing READY once connected, BEGIN n and PASS n around each
// pass and SWAP before each pointer swap (stdout is unbuffered); with
// SHALE_ICE_ONCE, one pass in default commits, then HWM <peak RSS kB>.
func materializeChild() int {
	meta, store, err := enginetest.ChildStores(os.Getenv("SHALE_NS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	tp, err := meta.GetTopic(ctx, os.Getenv("SHALE_ICE_TOPIC"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if os.Getenv("SHALE_ICE_ONCE") != "" {
		// One pass in default commits, then the peak RSS (benchmark).
		if prof := os.Getenv("SHALE_ICE_PROFILE"); prof != "" {
			if out, err := os.Create(prof); err == nil {
				_ = pprof.StartCPUProfile(out)
				defer pprof.StopCPUProfile()
			}
		}
		cfg := icetable.Config{}
		// SHALE_ICE_COMMIT_BYTES: commits of that size (small files, then
		// the rewrite); SHALE_ICE_KV_REWRITE=0: iceberg-go's rewrite.
		cfg.CommitBytes, _ = strconv.ParseInt(os.Getenv("SHALE_ICE_COMMIT_BYTES"), 10, 64)
		if os.Getenv("SHALE_ICE_KV_REWRITE") == "0" {
			icetable.SetKVRewrite(false)
		}
		var st icetable.Stats
		start := time.Now()
		if err := icetable.MaterializeTopic(ctx, store, meta, tp, cfg, &st); err != nil {
			fmt.Fprintln(os.Stderr, "materialize:", err)
			return 2
		}
		fmt.Fprintf(os.Stderr, "pass %+v in %v\n", st, time.Since(start).Round(time.Millisecond))
		if prof := os.Getenv("SHALE_ICE_MEMPROFILE"); prof != "" {
			if out, err := os.Create(prof); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(out, 0)
				out.Close()
			}
		}
		status, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				fmt.Println("HWM", strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			}
		}
		return 0
	}
	// The pause makes a kill sent on seeing SWAP land before the swap.
	icetable.SetHookBeforeSwap(func() { fmt.Println("SWAP"); time.Sleep(20 * time.Millisecond) })
	fmt.Println("READY")
	for pass := 0; pass < 100000; pass++ {
		fmt.Println("BEGIN", pass)
		var st icetable.Stats
		if err := icetable.MaterializeTopic(ctx, store, meta, tp, icetable.Config{CommitBytes: 2 << 10}, &st); err != nil {
			fmt.Fprintln(os.Stderr, "materialize:", err)
			return 2
		}
		fmt.Println("PASS", pass)
	}
	return 0
}

// TestKilledMaterializationExactlyOnce SIGKILLs a process materializing a
// topic (many small commits) 12 times at random instants, most of them
// inside a commit, with new records produced before each run. After every kill the table (iceberg-go's scan) holds a
// prefix of each partition, each row once and equal to what the Kafka
// consumer read; at the end, after a pass in this process, iceberg-go's
// scan and DuckDB both read exactly the consumer's records: no row twice,
// none missing.
func TestKilledMaterializationExactlyOnce(t *testing.T) {
	f := replaytest.NewFixture(t, 60)
	ctx := replaytest.Ctx(t)
	tp := kvTopic(t, ctx, f.C.Meta, f.Topic)
	killedExactlyOnce(t, ctx, f, tp, 12, time.Time{}, func(j int) []byte { return bytes.Repeat([]byte{byte(j)}, 1000+j) })
}

// TestKilledJSONMaterializationExactlyOnce is the same in json mode, with
// 4 kills: JSON object values, rows compared by their columns, records
// of a closed day so that passes rewrite small files (kills may land in
// a rewrite; the last pass, in this process, commits one at least).
func TestKilledJSONMaterializationExactlyOnce(t *testing.T) {
	ctx := replaytest.Ctx(t)
	f, _ := jsonFixture(t, ctx, "json-kill")
	f.Parts = 3
	if _, err := f.C.Admin(t).CreatePartitions(ctx, 1, f.Topic); err != nil {
		t.Fatal(err)
	}
	tp, err := f.C.Meta.GetTopic(ctx, f.Topic)
	if err != nil {
		t.Fatal(err)
	}
	// Timestamps in a closed day: each pass ends by rewriting the small
	// files, so kills land in rewrites too.
	killedExactlyOnce(t, ctx, f, tp, 4, time.UnixMilli(1_764_064_800_000), func(j int) []byte {
		return fmt.Appendf(nil, `{"j":%d,"pad":%q,"f%d":true}`, j, strings.Repeat("x", 1000+j), j%4)
	})
}

// killedExactlyOnce SIGKILLs a child materializing tp kills times (see
// TestKilledMaterializationExactlyOnce), with 150 records of the given
// values produced before each run, and checks the table after each kill
// and at the end.
func killedExactlyOnce(t *testing.T, ctx context.Context, f *replaytest.Fixture, tp metastore.Topic, kills int, ts time.Time, value func(j int) []byte) {
	t.Helper()
	meta, store := f.C.Meta, f.C.Store
	jsonMode := icetable.ModeOf(tp.Configs) == icetable.ModeJSON
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	prod := f.C.Client(t, kgo.DefaultProduceTopic(f.Topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	mid, swaps := 0, 0
	for i := range kills {
		// New records for the child to materialize, about 80 commits' worth.
		var recs []*kgo.Record
		for j := range 150 {
			recs = append(recs, &kgo.Record{Partition: int32(j % 3), Key: fmt.Appendf(nil, "k%d-%d", i, j),
				Value: value(j), Timestamp: ts, Headers: []kgo.RecordHeader{{Key: "kill", Value: fmt.Appendf(nil, "%d", i)}}})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		want := map[[2]int64]replaytest.Rec{}
		for _, r := range canonical(t, jsonMode, consumeTopic(t, ctx, f, 3)) {
			want[[2]int64{int64(r.Partition), r.Offset}] = r
		}
		// Even kills land at a random commit's pointer swap (its metadata
		// file written, the pointer not moved), odd ones at a random time.
		atSwap, delay := 0, time.Duration(20+rng.IntN(200))*time.Millisecond
		if i%2 == 0 {
			atSwap = 1 + rng.IntN(3)
		}
		last := killMaterializer(t, i, f.C.Endpoints, f.C.BucketDir, f.C.Namespace, f.Topic, atSwap, delay)
		if last != "PASS" {
			mid++
		}
		if last == "SWAP" {
			swaps++
		}
		if tbl, err := icetable.Load(ctx, store, meta, tp); err == nil {
			got := tableRecs(t, ctx, tbl, jsonMode)
			next := map[int32]int64{}
			for _, r := range got {
				if r.Offset < next[r.Partition] {
					t.Fatalf("kill %d: row %d/%d twice", i, r.Partition, r.Offset)
				}
				w, ok := want[[2]int64{int64(r.Partition), r.Offset}]
				if !ok || !replaytest.EqualRec(r, w) {
					t.Fatalf("kill %d: row %v, consumer read %v", i, r, w)
				}
				next[r.Partition] = r.Offset + 1
			}
			t.Logf("kill %d: %d rows (last line %s)", i, len(got), last)
		}
	}
	if mid < kills/2 || swaps < kills/2 {
		t.Fatalf("%d of %d kills landed mid-pass, %d between a metadata write and its pointer swap: the kills missed the commits", mid, kills, swaps)
	}
	all := canonical(t, jsonMode, consumeTopic(t, ctx, f, 3))
	var st icetable.Stats
	// In a closed day, small commits as the child's: this last pass's
	// files are rewritten at its end whatever the kills left.
	last := icetable.Config{}
	if !ts.IsZero() {
		last.CommitBytes = 2 << 10
	}
	if err := icetable.MaterializeTopic(ctx, store, meta, tp, last, &st); err != nil {
		t.Fatal(err)
	}
	tbl, err := icetable.Load(ctx, store, meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	replaytest.CompareRecs(t, "iceberg-go scan after kills", tableRecs(t, ctx, tbl, jsonMode), all)
	duck := duckRows(t, ctx, store, tbl, jsonMode)
	replaytest.CompareRecs(t, "DuckDB after kills", canonicalRows(t, jsonMode, duck), all)
	rewrites := 0
	for _, s := range tbl.Metadata().Snapshots() {
		if s.Summary != nil && s.Summary.Operation == table.OpReplace {
			rewrites++
		}
	}
	if !ts.IsZero() && rewrites == 0 {
		t.Fatalf("records of a closed day: no rewrite committed")
	}
	t.Logf("%d rewrite snapshots", rewrites)
	t.Logf("%d rows, %d kills mid-pass, %d between a metadata write and its pointer swap", len(all), mid, swaps)
}

// tableRecs reads the table with iceberg-go's scan; in json mode, a row
// without _raw has as Value its columns as a JSON object (canonical:
// keys sorted), comparable with canonical's.
func tableRecs(t *testing.T, ctx context.Context, tbl *table.Table, jsonMode bool) []replaytest.Rec {
	t.Helper()
	if !jsonMode {
		return scanTable(t, ctx, tbl)
	}
	return canonicalRows(t, true, scanRows(t, ctx, tbl, jsonNames))
}

func canonicalRows(t *testing.T, jsonMode bool, rows []jsonRow) []replaytest.Rec {
	t.Helper()
	var out []replaytest.Rec
	for _, r := range rows {
		if jsonMode && r.Rec.Value == nil {
			b, err := json.Marshal(r.Cols)
			if err != nil {
				t.Fatal(err)
			}
			r.Rec.Value = b
		}
		out = append(out, r.Rec)
	}
	return out
}

// canonical re-encodes, in json mode, the consumer's values (JSON objects
// of booleans, numbers and strings) with sorted keys.
func canonical(t *testing.T, jsonMode bool, recs []replaytest.Rec) []replaytest.Rec {
	t.Helper()
	if !jsonMode {
		return recs
	}
	for i, r := range recs {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("consumed value %q: %v", r.Value, err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		recs[i].Value = b
	}
	return recs
}

// consumeTopic reads every record of the fixture's topic with a Kafka
// consumer (franz-go), in partition, offset order.
func consumeTopic(t *testing.T, ctx context.Context, f *replaytest.Fixture, parts int32) []replaytest.Rec {
	t.Helper()
	ends, err := f.C.Admin(t).ListEndOffsets(ctx, f.Topic)
	if err != nil {
		t.Fatal(err)
	}
	offs := map[int32]kgo.Offset{}
	pending := map[int32]int64{}
	for p := range parts {
		offs[p] = kgo.NewOffset().AtStart()
		if e, ok := ends.Lookup(f.Topic, p); ok && e.Offset > 0 {
			pending[p] = e.Offset
		}
	}
	cl := f.C.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{f.Topic: offs}))
	defer cl.Close()
	by := map[int32][]replaytest.Rec{}
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume: %v", ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("consume %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			c := replaytest.Rec{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value}
			for _, h := range r.Headers {
				c.Headers = append(c.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
			}
			by[r.Partition] = append(by[r.Partition], c)
			if r.Offset+1 >= pending[r.Partition] {
				delete(pending, r.Partition)
			}
		})
	}
	var out []replaytest.Rec
	for p := range parts {
		out = append(out, by[p]...)
	}
	return out
}

// killMaterializer runs materializeChild and SIGKILLs it on its atSwap-th
// SWAP line or, when atSwap is 0 or the child goes idle first, delay
// after it is READY; it returns the child's last line.
func killMaterializer(t *testing.T, i int, endpoints []string, bucket, ns, topic string, atSwap int, delay time.Duration) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHALE_ICE_CHILD=1", "SHALE_ETCD="+strings.Join(endpoints, ","),
		"SHALE_BUCKET="+bucket, "SHALE_NS="+ns, "SHALE_ICE_TOPIC="+topic)
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
	lines := make(chan string, 1<<16)
	swapSeen := make(chan struct{})
	go func() {
		n := 0
		for sc.Scan() {
			lines <- sc.Text()
			if sc.Text() == "SWAP" {
				if n++; n == atSwap {
					close(swapSeen)
				}
			}
		}
		close(lines)
	}()
	timer := time.NewTimer(delay)
	if atSwap > 0 {
		timer.Reset(2 * time.Second)
	}
	select {
	case <-swapSeen:
	case <-timer.C:
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child %d was not killed: %v; stderr: %s", i, cmd.ProcessState, stderr.String())
	}
	last := ""
	for l := range lines {
		last = strings.Fields(l)[0]
	}
	return last
}
