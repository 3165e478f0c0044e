package lifecycle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// BenchmarkKeyCompaction measures key compaction on real S3 servers
// (versitygw and MinIO), run by `make bench`:
//
//   - throughput: $SHALE_KC_BENCH_MIB (default 32) MiB of 1 KiB values over
//     $SHALE_KC_BENCH_KEYS (default 20,000) keys, written as 256 KiB
//     objects, then compacted to the end by CompactKeys passes with a key
//     map of $SHALE_KC_BENCH_MAP_KIB (default 512) KiB, so several passes:
//     MB/s read and written (bytes of the entries read and of the segments
//     written, over the passes' time);
//   - memory: the RSS of the process running the passes (a child: the test
//     binary again, holding only an etcd client, an S3 client and the job)
//     once connected and at its peak (VmHWM), and its Go heap's peak
//     sampled every 10 ms, against the key map budget;
//   - etcd: index keys of the partition before and after;
//   - the time from a record going dirty to its compaction, with the job
//     run by a lifecycle Runner every 200 ms and max.compaction.lag.ms 2 s
//     (min.cleanable.dirty.ratio 1: only the lag forces a pass): three
//     samples, from the produce's acknowledgement to the cleaner checkpoint
//     passing the record.
func BenchmarkKeyCompaction(b *testing.B) {
	mib := envInt(b, "SHALE_KC_BENCH_MIB", 32)
	keys := envInt(b, "SHALE_KC_BENCH_KEYS", 20000)
	mapKiB := envInt(b, "SHALE_KC_BENCH_MAP_KIB", 512)
	for _, name := range []string{"versitygw", "minio"} {
		b.Run(name, func(b *testing.B) {
			srv := testenv.S3(b)
			if name == "minio" {
				srv = testenv.MinIO(b)
			}
			b.ResetTimer()
			for range b.N {
				benchKeyCompaction(b, srv, mib, keys, mapKiB)
			}
		})
	}
}

func benchKeyCompaction(b *testing.B, srv testenv.S3Server, mib, keys, mapKiB int) {
	b.StopTimer()
	cli, endpoints := testenv.Etcd(b)
	ctx := lcCtx(b)
	prefix := fmt.Sprintf("kcbench-%d", time.Now().UnixNano())
	store, err := s3tier.NewS3Store(ctx, s3Config(srv, prefix))
	if err != nil {
		b.Fatal(err)
	}
	meta := metastore.New(cli, lcNS)
	tp, err := meta.CreateTopic(ctx, fmt.Sprintf("kcbench-%d", time.Now().UnixNano()), 1,
		map[string]string{"cleanup.policy": "compact", "segment.ms": "1", "min.cleanable.dirty.ratio": "0"})
	if err != nil {
		b.Fatal(err)
	}
	w := newEngine(b, cli, store)
	rng := mrand.New(mrand.NewPCG(7, 8))
	value := []byte(strings.Repeat("v", 1000))
	ts := time.Now().Add(-time.Hour).UnixMilli()
	const perBatch, batchesPerObject = 32, 8 // ~256 KiB objects
	var records int
	for written := 0; written < mib<<20; {
		var pend []*engine.Pending
		for range batchesPerObject {
			o := segmenttest.BatchOptions{Timestamp: ts}
			for range perBatch {
				o.Keys, o.Values = append(o.Keys, fmt.Appendf(nil, "key-%07d", rng.IntN(keys))), append(o.Values, value)
			}
			raw := segmenttest.Batch(o)
			written += len(raw)
			records += perBatch
			pend = append(pend, w.Produce(ctx, tp.ID, 0, raw))
		}
		if err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		for _, p := range pend {
			if _, err := p.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	keysBefore := indexKeys(b, meta, tp)

	// The passes run in a child process (this test binary), so that its
	// peak RSS is the job's alone: no embedded etcd, no writing engine.
	b.StartTimer()
	res := runKeyCompactBenchChild(b, srv, prefix, endpoints, int64(mapKiB)<<10)
	b.StopTimer()
	total, passes, took, rss, heapPeak := res.Stats, res.Passes, time.Duration(res.TookNs), res.PeakRSS, res.PeakHeap
	b.ReportMetric(float64(res.BaseRSS)/(1<<20), "RSS-before-MiB")
	keysAfter := indexKeys(b, meta, tp)
	lag := dirtyToCompacted(b, store, cli, meta)

	secs := took.Seconds()
	b.ReportMetric(float64(total.BytesRead)/1e6/secs, "MB/s-read")
	b.ReportMetric(float64(total.BytesWritten)/1e6/secs, "MB/s-written")
	b.ReportMetric(float64(passes), "passes")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(heapPeak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(mapKiB)/(1<<10), "map-budget-MiB")
	b.ReportMetric(float64(keysBefore), "etcd-keys-before")
	b.ReportMetric(float64(keysAfter), "etcd-keys-after")
	b.ReportMetric(float64(lag.Milliseconds()), "dirty-to-compacted-ms")
	b.ReportMetric(2000, "max-compaction-lag-ms")
	b.Logf("%d MiB, %d records over %d keys: %d passes in %v read %d B, wrote %d B, removed %d records; etcd index keys %d -> %d; RSS %d MiB before the passes, peak %d MiB, peak heap %d MiB, key map budget %d KiB; dirty -> compacted %v at max.compaction.lag.ms 2000",
		mib, records, keys, passes, took.Round(time.Millisecond), total.BytesRead, total.BytesWritten, total.RecordsRemoved,
		keysBefore, keysAfter, res.BaseRSS>>20, rss>>20, heapPeak>>20, mapKiB, lag.Round(time.Millisecond))
}

// dirtyToCompacted runs the key-compaction job in a Runner (every 200 ms)
// over a topic with max.compaction.lag.ms 2000 and
// min.cleanable.dirty.ratio 1, and returns the longest of three times from
// a record's acknowledgement to the cleaner checkpoint passing it.
func dirtyToCompacted(b *testing.B, store s3tier.Store, cli *clientv3.Client, meta *metastore.Store) time.Duration {
	b.Helper()
	ctx := lcCtx(b)
	tp, err := meta.CreateTopic(ctx, fmt.Sprintf("kclag-%d", time.Now().UnixNano()), 1,
		map[string]string{"cleanup.policy": "compact", "max.compaction.lag.ms": "2000", "min.cleanable.dirty.ratio": "1"})
	if err != nil {
		b.Fatal(err)
	}
	lc, err := lifecycle.New(lifecycle.Config{Holder: "bench", Interval: 200 * time.Millisecond, ManifestInterval: -1,
		Compaction: lifecycle.CompactConfig{Settle: time.Millisecond, MinEntries: 1 << 20, TempDir: b.TempDir()}}, store, meta, nil)
	if err != nil {
		b.Fatal(err)
	}
	lc.Start()
	defer lc.Close()
	e := newEngine(b, cli, store)
	var worst time.Duration
	for i := range 3 {
		o := segmenttest.BatchOptions{Keys: [][]byte{[]byte("k")}, Values: [][]byte{fmt.Append(nil, i)}, Timestamp: time.Now().UnixMilli()}
		pend := e.Produce(ctx, tp.ID, 0, segmenttest.Batch(o))
		if err := e.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		res, err := pend.Wait(ctx)
		if err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for {
			st, err := meta.GetCleanerState(ctx, tp.ID, 0)
			if err != nil {
				b.Fatal(err)
			}
			if st.Checkpoint > res.BaseOffset {
				break
			}
			if time.Since(acked) > time.Minute {
				b.Fatalf("record %d not compacted within a minute at max.compaction.lag.ms 2000", res.BaseOffset)
			}
			time.Sleep(20 * time.Millisecond)
		}
		worst = max(worst, time.Since(acked))
	}
	return worst
}

// benchChildResult is what the benchmark's child process reports.
type benchChildResult struct {
	Stats    lifecycle.KeyCompactStats
	Passes   int
	TookNs   int64
	BaseRSS  int64 // VmRSS once connected, before the passes
	PeakRSS  int64
	PeakHeap int64
}

// runKeyCompactBenchChild runs keyCompactBenchChild in a child process
// over the bucket prefix of srv and returns what it reports.
func runKeyCompactBenchChild(b *testing.B, srv testenv.S3Server, prefix string, endpoints []string, mapBytes int64) benchChildResult {
	b.Helper()
	s3, err := json.Marshal(s3Config(srv, prefix))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHALE_LC_CHILD=kcbench", "SHALE_ETCD="+strings.Join(endpoints, ","), "SHALE_KC_S3="+string(s3),
		"SHALE_TMP="+b.TempDir(), fmt.Sprint("SHALE_KC_MAP=", mapBytes))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("key compaction child: %v: %s", err, stderr.String())
	}
	var res benchChildResult
	if err := json.Unmarshal(out, &res); err != nil {
		b.Fatalf("key compaction child printed %q: %v", out, err)
	}
	return res
}

// keyCompactBenchChild runs key-compaction passes until none advances,
// over the etcd and S3 bucket its parent names in the environment, and
// prints a benchChildResult as JSON.
func keyCompactBenchChild() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 2 }
	var s3 s3tier.S3Config
	if err := json.Unmarshal([]byte(os.Getenv("SHALE_KC_S3")), &s3); err != nil {
		return fail(err)
	}
	mapBytes, err := strconv.ParseInt(os.Getenv("SHALE_KC_MAP"), 10, 64)
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(os.Getenv("SHALE_ETCD"), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		return fail(err)
	}
	store, err := s3tier.NewS3Store(ctx, s3)
	if err != nil {
		return fail(err)
	}
	meta := metastore.New(cli, lcNS)
	if _, err := meta.ListTopics(ctx); err != nil { // connected
		return fail(err)
	}
	var res benchChildResult
	res.BaseRSS = procStatus("VmRSS:")
	var heapPeak atomic.Uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > heapPeak.Load() {
				heapPeak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	cfg := lifecycle.KeyCompactConfig{CompactConfig: lifecycle.CompactConfig{Settle: time.Nanosecond, MinEntries: 2, TempDir: os.Getenv("SHALE_TMP"),
		Now: func() time.Time { return time.Now().Add(time.Second) }}, MapBytes: mapBytes}
	start := time.Now()
	for res.Passes < 1000 {
		st, err := lifecycle.CompactKeys(ctx, store, meta, cfg, nil)
		if err != nil || st.Failed > 0 {
			return fail(fmt.Errorf("pass %d: %+v %v", res.Passes, st, err))
		}
		if st.Passes == 0 {
			break
		}
		res.Passes++
		res.Stats.BytesRead += st.BytesRead
		res.Stats.BytesWritten += st.BytesWritten
		res.Stats.RecordsRemoved += st.RecordsRemoved
	}
	res.TookNs = int64(time.Since(start))
	close(stop)
	<-sampled
	res.PeakHeap = int64(heapPeak.Load())
	res.PeakRSS = procStatus("VmHWM:")
	out, err := json.Marshal(res)
	if err != nil {
		return fail(err)
	}
	fmt.Println(string(out))
	return 0
}

// indexKeys counts the partition's index entries (etcd keys).
func indexKeys(b *testing.B, meta *metastore.Store, tp metastore.Topic) int {
	n := 0
	if _, _, err := meta.ScanIndex(context.Background(), tp.ID, 0, func(metastore.IndexEntry) bool { n++; return true }); err != nil {
		b.Fatal(err)
	}
	return n
}

// procStatus reads a size line of /proc/self/status (VmRSS:, VmHWM:) in
// bytes (0 if unavailable).
func procStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// envInt reads a positive integer from the environment, or def.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
