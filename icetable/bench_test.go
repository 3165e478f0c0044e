package icetable_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/cli"
	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/lifecycle"
)

// BenchmarkIcebergMaterialize (make bench) measures, on one topic of
// SHALE_ICE_BENCH_MIB MiB (default 64; the figure is 1024) of
// 1 KiB values in 4 partitions (a key_value table; with
// SHALE_ICE_BENCH_MODE=json, a json table of 1 KiB JSON objects with
// three fields), on the local-directory bucket:
//   - `shale replay --format parquet` of the topic (a child process, run
//     before and after the materialization; the faster run counts), and
//     the first materialization of its table (a child process, whose
//     peak RSS is reported; SHALE_ICE_PROFILE=file and SHALE_ICE_MEMPROFILE=file
//     keep its CPU and allocation profiles; SHALE_ICE_COMMIT_BYTES=n
//     makes it commit every n stored bytes, so that it rewrites the small
//     files at the end, and SHALE_ICE_KV_REWRITE=0 rewrites them with
//     iceberg-go instead of parquet-go), and the ratio of their
//     throughputs;
//   - the lag between producing one record and its row being in the
//     table, with the iceberg job at a 1 s interval (median of 5).
func BenchmarkIcebergMaterialize(b *testing.B) {
	mib := 64
	if s := os.Getenv("SHALE_ICE_BENCH_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("SHALE_ICE_BENCH_MIB=%q: want a positive integer", s)
		}
		mib = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute) // a 1 GiB topic on a busy machine
	defer cancel()
	c := agenttest.Start(b, agenttest.Options{})
	const name = "bench"
	mode := icetable.ModeKeyValue
	if os.Getenv("SHALE_ICE_BENCH_MODE") == string(icetable.ModeJSON) {
		mode = icetable.ModeJSON
	}
	cfg := map[string]*string{icetable.ConfigMode: kmsg.StringPtr(string(mode))}
	if r, err := c.Admin(b).CreateTopic(ctx, 4, 1, cfg, name); err != nil || r.Err != nil {
		b.Fatalf("create: %v %v", err, r.Err)
	}
	cl := c.Client(b, kgo.DefaultProduceTopic(name), kgo.ProducerBatchMaxBytes(1<<20))
	rng := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, 1024)
	for i := range mib << 10 {
		for j := range val {
			val[j] = byte('a' + rng.IntN(16)) // compressible about as text
		}
		v := bytes.Clone(val)
		if mode == icetable.ModeJSON { // an object of 1 KiB: a number, a boolean, a string
			v = fmt.Appendf(nil, `{"n":%d,"even":%t,"s":"%s"}`, i, i%2 == 0, val[:990])
		}
		cl.Produce(ctx, &kgo.Record{Value: v, Key: fmt.Appendf(nil, "k%d", i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	flags := []string{"--etcd-endpoints", strings.Join(c.Endpoints, ","), "--etcd-namespace", c.Namespace, "--bucket", c.BucketDir}
	// The replay runs in a child process too (replayChild), as the
	// materialization does: neither shares its process with the agents.
	replayParquet := func() time.Duration {
		args := append([]string{"replay", "-t", name, "--format", "parquet", "--out", b.TempDir(), "--quiet"}, flags...)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SHALE_ICE_CHILD=1", "SHALE_ICE_REPLAY="+strings.Join(args, "\n"))
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("replay --format parquet: %v: %s", err, out)
		}
		return time.Since(start)
	}
	{ // one round, whatever b.N: the table then exists
		// The replay runs before and after the materialization, and the
		// faster run counts: neither side gains from running second (a
		// warmer cache, the agents done with the produce).
		parquet := replayParquet()

		tp, err := c.Meta.GetTopic(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		hwm := materializeOnce(b, c, name)
		ice := time.Since(start)
		parquet2 := replayParquet()
		b.Logf("replay --format parquet before and after the materialization: %v, %v", parquet.Round(time.Millisecond), parquet2.Round(time.Millisecond))
		parquet = min(parquet, parquet2)
		st, err := icetable.Status(ctx, c.Store, c.Meta, tp, time.Now())
		if err != nil || st.Lag != 0 || st.Rows != int64(mib<<10) {
			b.Fatalf("status after the materialization: %+v %v", st, err)
		}
		mb := float64(mib)
		b.ReportMetric(mb/parquet.Seconds(), "parquet-MiB/s")
		b.ReportMetric(mb/ice.Seconds(), "iceberg-MiB/s")
		b.ReportMetric(parquet.Seconds()/ice.Seconds(), "iceberg/parquet")
		b.ReportMetric(float64(hwm)/1024, "iceberg-RSS-MiB")
		b.Logf("%d MiB: replay --format parquet %v, materialization %v (%.2fx), materializer peak RSS %d MiB, %d data files",
			mib, parquet.Round(time.Millisecond), ice.Round(time.Millisecond), parquet.Seconds()/ice.Seconds(), hwm>>10, st.Files)
	}

	// Lag between produce and row visibility.
	tp, err := c.Meta.GetTopic(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	r, err := lifecycle.New(lifecycle.Config{Holder: "bench", Interval: time.Hour, IcebergInterval: time.Second, LeaseTTL: 5 * time.Second}, c.Store, c.Meta, nil)
	if err != nil {
		b.Fatal(err)
	}
	r.Start()
	defer r.Close()
	var lags []time.Duration
	rows := int64(mib << 10)
	for range 5 {
		start := time.Now()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("late")}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		rows++
		for {
			st, err := icetable.Status(ctx, c.Store, c.Meta, tp, time.Now())
			if err == nil && st.Rows >= rows {
				break
			}
			if ctx.Err() != nil {
				b.Fatal(ctx.Err())
			}
			time.Sleep(10 * time.Millisecond)
		}
		lags = append(lags, time.Since(start))
	}
	med := append([]time.Duration{}, lags...)
	for i := range med {
		for j := i + 1; j < len(med); j++ {
			if med[j] < med[i] {
				med[i], med[j] = med[j], med[i]
			}
		}
	}
	b.ReportMetric(med[len(med)/2].Seconds(), "visible-lag-s")
	b.Logf("produce to row visible, --iceberg-interval 1s: %v (median %v)", lags, med[len(med)/2])
}

// materializeOnce runs one materialization pass of topic in a child
// process (materializeChild, SHALE_ICE_ONCE) and returns its peak RSS in
// KiB (VmHWM).
func materializeOnce(b *testing.B, c *agenttest.Cluster, topic string) int64 {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHALE_ICE_CHILD=1", "SHALE_ICE_ONCE=1", "SHALE_ETCD="+strings.Join(c.Endpoints, ","),
		"SHALE_BUCKET="+c.BucketDir, "SHALE_NS="+c.Namespace, "SHALE_ICE_TOPIC="+topic)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("materialize child: %v: %s", err, stderr.String())
	}
	for l := range strings.Lines(stderr.String()) {
		if strings.HasPrefix(l, "pass ") {
			b.Log("materialization: " + strings.TrimSpace(l))
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "HWM "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatalf("materialize child printed no HWM: %s", out)
	return 0
}

// replayChild runs `shale` with the arguments in SHALE_ICE_REPLAY (one a
// line): the benchmark's replay, in a process of its own.
func replayChild(args string) int {
	return cli.Execute(context.Background(), strings.Split(args, "\n"), nil, io.Discard, os.Stderr)
}
