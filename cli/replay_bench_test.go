package cli

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/span"
)

// TestMain lets the test binary act as the shale command (a subprocess
// whose peak RSS BenchmarkReplay measures); every other run of the cli
// tests goes straight to m.Run.
func TestMain(m *testing.M) {
	if os.Getenv("SHALE_REPLAY_TEST_AS_SHALE") == "1" {
		if f := os.Getenv("SHALE_REPLAY_CPUPROFILE"); f != "" { // <f>.<format>: go tool pprof it after a bench run
			for i, a := range os.Args[:len(os.Args)-1] {
				if a == "--format" {
					f += "." + os.Args[i+1]
				}
			}
			if out, err := os.Create(f); err == nil {
				_ = pprof.StartCPUProfile(out)
			}
		}
		code := Execute(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		pprof.StopCPUProfile()
		if f := os.Getenv("SHALE_REPLAY_HWM_FILE"); f != "" {
			// The peak RSS of this process (rusage's maxrss of a child
			// counts the parent's memory at the time of exec).
			status, _ := os.ReadFile("/proc/self/status")
			_ = os.WriteFile(f, status, 0o644)
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// BenchmarkReplay measures, in one run against one versitygw S3 server:
//
//   - raw-get: ranged GETs of exactly the byte ranges the topic's index
//     points to, Parallel at a time (the bucket's speed);
//   - replay-<format>: `shale replay` as a subprocess with every agent
//     stopped, its MB/s over the same stored bytes and its peak RSS: raw
//     to tmpfs, jsonl to stdout (/dev/null), raw-files and parquet to disk;
//   - kafka-consumer: a franz-go consumer reading the topic from earliest
//     through an agent that did not write it (a cold cache: every byte
//     comes from the bucket, with the agent's read-ahead).
//
// The topic is SHALE_REPLAY_BENCH_MIB MiB of stored (lz4) batches, default
// 128; the goal is measured at 1024:
//
//	SHALE_REPLAY_BENCH_MIB=1024 go test -run '^$' -bench Replay -benchtime 1x -timeout 30m ./cli/
func BenchmarkReplay(b *testing.B) {
	mib := 128
	if s := os.Getenv("SHALE_REPLAY_BENCH_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("SHALE_REPLAY_BENCH_MIB=%q", s)
		}
		mib = n
	}
	const parts, parallel = 4, 4
	s3 := testenv.S3(b)
	bucket := "s3://" + s3.Bucket
	open := func() s3tier.Store {
		st, err := s3tier.NewS3Store(context.Background(), s3tier.S3Config{Bucket: s3.Bucket, Endpoint: s3.Endpoint,
			Region: s3.Region, PathStyle: true, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	store := open()
	c := agenttest.Start(b, agenttest.Options{Agents: 2,
		Store:  func(s3tier.Store) s3tier.Store { return store },
		Engine: func(_ int, cfg *engine.Config) { cfg.FlushInterval = 250 * time.Millisecond }})
	const topic = "replay-bench"
	ctx := context.Background()
	if _, err := c.Admin(b).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		b.Fatal(err)
	}
	produceBench(b, c, topic, int64(mib)<<20)
	spans, stored := topicSpans(b, c.Meta, store, topic, parts)
	b.Logf("topic: %d partitions, %d spans, %.1f MiB stored", parts, len(spans), float64(stored)/(1<<20))

	b.Run("raw-get", func(b *testing.B) {
		b.SetBytes(stored)
		for b.Loop() {
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(parallel)
			for _, sp := range spans {
				g.Go(func() error {
					rc, err := store.GetRange(gctx, sp.Object, sp.Pos, sp.Size)
					if err != nil {
						return err
					}
					defer rc.Close()
					_, err = io.Copy(io.Discard, rc)
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kafka-consumer", func(b *testing.B) {
		b.SetBytes(stored)
		for b.Loop() {
			consumeCount(b, c, topic, parts)
		}
	})
	for _, a := range c.Agents {
		if err := a.Stop(); err != nil {
			b.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	// raw writes its files to tmpfs (/dev/shm) and jsonl to stdout
	// (/dev/null), as raw-get discards what it reads; raw-files and parquet
	// write files to disk, so the disk's write speed counts too.
	for _, name := range []string{"raw", "raw-files", "jsonl", "parquet"} {
		format := strings.TrimSuffix(name, "-files")
		b.Run("replay-"+name, func(b *testing.B) {
			b.SetBytes(stored)
			var peak int64
			for b.Loop() {
				out := b.TempDir()
				if name == "raw" {
					if shm, err := os.MkdirTemp("/dev/shm", "shale-replay-bench"); err == nil {
						out = shm
					} else {
						b.Logf("no tmpfs (%v): replay-raw writes to disk", err)
					}
				}
				args := []string{"replay", "-t", topic, "--format", format, "--out", out, "--parallel", strconv.Itoa(parallel),
					"--etcd-endpoints", strings.Join(c.Endpoints, ","), "--etcd-namespace", c.Namespace,
					"--bucket", bucket, "--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region,
					"--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey}
				if format == "jsonl" {
					args[6] = "-" // stdout, to /dev/null
				}
				cmd := exec.Command(self, args...)
				hwm := filepath.Join(b.TempDir(), "status")
				cmd.Env = append(os.Environ(), "SHALE_REPLAY_TEST_AS_SHALE=1", "SHALE_REPLAY_HWM_FILE="+hwm)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				if err := cmd.Run(); err != nil {
					b.Fatalf("shale replay: %v: %s", err, stderr.String())
				}
				peak = max(peak, vmHWM(b, hwm))
				os.RemoveAll(out)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
		})
	}
}

// produceBench produces about total bytes of 1 KiB records (half random,
// lz4) spread over the partitions.
func produceBench(b *testing.B, c *agenttest.Cluster, topic string, total int64) {
	b.Helper()
	cl := c.Client(b, pinTo(c.Agents[0].Addr), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(1<<16))
	rng := rand.New(rand.NewPCG(3, 4))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var perr error
	for n := int64(0); n < total; n += 1024 {
		v := make([]byte, 1024)
		for i := 0; i < 512; i += 8 {
			x := rng.Uint64()
			for j := range 8 {
				v[i+j] = byte(x >> (8 * j))
			}
		}
		copy(v[512:], fmt.Appendf(nil, "record %d ", n))
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Key: fmt.Appendf(nil, "k%d", n%1000), Value: v}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if perr != nil {
		b.Fatal(perr)
	}
}

// topicSpans lists the byte ranges the topic's index points to.
func topicSpans(b *testing.B, meta *metastore.Store, store s3tier.Store, topic string, parts int32) ([]span.Span, int64) {
	b.Helper()
	ctx := context.Background()
	tp, err := meta.GetTopic(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	fc := span.NewFooterCache(0)
	var spans []span.Span
	var total int64
	for p := range parts {
		var serr error
		err := meta.ScanEntries(ctx, tp.ID, p, 0, func(e metastore.IndexEntry) bool {
			var ss []span.Span
			if ss, serr = fc.Spans(ctx, store, tp.ID, p, e); serr != nil {
				return false
			}
			for _, sp := range ss {
				spans = append(spans, sp)
				total += sp.Size
			}
			return true
		})
		if err != nil || serr != nil {
			b.Fatal(err, serr)
		}
	}
	return spans, total
}

// consumeCount reads every record of the topic from earliest.
func consumeCount(b *testing.B, c *agenttest.Cluster, topic string, parts int32) {
	b.Helper()
	ctx := context.Background()
	ends, err := c.Admin(b).ListEndOffsets(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	pending := map[int32]int64{}
	offs := map[int32]kgo.Offset{}
	for p := range parts {
		offs[p] = kgo.NewOffset().AtStart()
		if e, ok := ends.Lookup(topic, p); ok && e.Offset > 0 {
			pending[p] = e.Offset
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Agents[1].Addr), pinTo(c.Agents[1].Addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, p int32, err error) { b.Fatalf("consume %d: %v", p, err) })
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if n := len(fp.Records); n > 0 && fp.Records[n-1].Offset+1 >= pending[fp.Partition] {
				delete(pending, fp.Partition)
			}
		})
	}
}

// vmHWM reads the VmHWM line (peak resident set) of a saved /proc status.
func vmHWM(b *testing.B, path string) int64 {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatalf("peak RSS: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("peak RSS: %q", line)
			}
			return kb << 10
		}
	}
	b.Fatalf("peak RSS: no VmHWM in %s", path)
	return 0
}

// pinTo sends every connection of a client to one agent (any agent serves
// any partition), so the writer and the reader are different agents.
func pinTo(addr string) kgo.Opt {
	return kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
}
