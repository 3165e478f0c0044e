package cli

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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
// whose peak RSS and profiles BenchmarkReplay takes: `shale replay`, and
// `shale agent` serving the cold consumers); every other run of the cli
// tests goes straight to m.Run.
//
// As the shale command it stops on SIGTERM (as main does), writes a CPU
// profile to $SHALE_BENCH_PROFILE.cpu.pprof and an allocation profile to
// $SHALE_BENCH_PROFILE.allocs.pprof when that variable is set, and saves
// /proc/self/status (VmHWM: its peak RSS) to $SHALE_REPLAY_HWM_FILE.
func TestMain(m *testing.M) {
	if os.Getenv("SHALE_REPLAY_TEST_AS_SHALE") == "1" {
		prof := os.Getenv("SHALE_BENCH_PROFILE")
		if prof != "" {
			if out, err := os.Create(prof + ".cpu.pprof"); err == nil {
				_ = pprof.StartCPUProfile(out)
			}
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		code := Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		if prof != "" {
			pprof.StopCPUProfile()
			if out, err := os.Create(prof + ".allocs.pprof"); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(out, 0)
				_ = out.Close()
			}
		}
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

// BenchmarkReplay measures, against one versitygw S3 server, rounds of:
//
//   - raw-get: ranged GETs of exactly the byte ranges the topic's index
//     points to, Parallel at a time (the bucket's speed);
//   - replay-<format>: `shale replay` as a subprocess with no agent
//     running, its MB/s over the same stored bytes and its peak RSS: raw
//     to tmpfs, jsonl to stdout (/dev/null), raw-files and parquet to disk;
//   - kafka-consumer: a franz-go consumer reading the topic from earliest
//     through a `shale agent` subprocess started for the round (it did not
//     write the topic and has read nothing: every byte comes from the
//     bucket, with its read-ahead), the agent's peak RSS, and the share of
//     the consumer's time spent receiving fetch answers (the rest is
//     franz-go decoding them);
//   - kafka-2-agents: two franz-go consumers splitting the partitions as a
//     group of two would (partitions 0 and 2, 1 and 3), each through its own
//     fresh agent, read at once: their MB/s summed, the larger peak RSS.
//
// Each round compares every reader with that round's raw GET; at the end
// a table gives each reader's median MB/s, median ratio to raw GET and
// their spread over the rounds, and the peak RSS. Settings (environment):
//
//	SHALE_REPLAY_BENCH_MIB      topic size in MiB of records (default 128; the goal is 1024)
//	SHALE_REPLAY_BENCH_ROUNDS   rounds (default 1; make bench runs 3)
//	SHALE_REPLAY_BENCH_PROFILE  a directory: CPU and allocation profiles of the first
//	                            round's replay and agent subprocesses (<reader>.cpu.pprof,
//	                            <reader>.allocs.pprof; go tool pprof -top them)
//	SHALE_REPLAY_BENCH_OUT      a file the table is also written to
//	SHALE_REPLAY_BENCH_READERS  a regular expression: only the readers it matches (raw-get always runs)
//
//	SHALE_REPLAY_BENCH_MIB=1024 go test -run '^$' -bench Replay -benchtime 1x -timeout 30m ./cli/
func BenchmarkReplay(b *testing.B) {
	mib := benchEnvInt(b, "SHALE_REPLAY_BENCH_MIB", 128)
	rounds := benchEnvInt(b, "SHALE_REPLAY_BENCH_ROUNDS", 1)
	profDir := os.Getenv("SHALE_REPLAY_BENCH_PROFILE")
	only, err := regexp.Compile(os.Getenv("SHALE_REPLAY_BENCH_READERS"))
	if err != nil {
		b.Fatalf("SHALE_REPLAY_BENCH_READERS: %v", err)
	}
	if profDir != "" {
		if err := os.MkdirAll(profDir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	const parts, parallel = 4, 4
	s3 := testenv.S3(b)
	store, err := s3tier.NewS3Store(context.Background(), s3tier.S3Config{Bucket: s3.Bucket, Endpoint: s3.Endpoint,
		Region: s3.Region, PathStyle: true, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	c := agenttest.Start(b, agenttest.Options{Agents: 1,
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
	ends, err := c.Admin(b).ListEndOffsets(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range c.Agents {
		if err := a.Stop(); err != nil {
			b.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	sh := &benchShale{self: self, s3: s3, etcd: strings.Join(c.Endpoints, ","), ns: c.Namespace}
	res := &benchResults{}
	for round := range rounds {
		prof := func(name string) string {
			if profDir == "" || round > 0 {
				return ""
			}
			return filepath.Join(profDir, name)
		}
		b.Run("raw-get", func(b *testing.B) {
			b.SetBytes(stored)
			for range b.N {
				start := time.Now()
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
				res.add("raw-get", round, stored, time.Since(start), 0, 0)
			}
		})
		// raw writes its files to tmpfs (/dev/shm) and jsonl to stdout
		// (/dev/null), as raw-get discards what it reads (raw goes to stdout
		// only for one partition: its batches carry none); raw-files and
		// parquet write files to disk, so the disk's write speed counts too.
		for _, name := range []string{"raw", "raw-files", "jsonl", "parquet"} {
			format := strings.TrimSuffix(name, "-files")
			if !only.MatchString("replay-" + name) {
				continue
			}
			b.Run("replay-"+name, func(b *testing.B) {
				b.SetBytes(stored)
				var peak int64
				for range b.N {
					out := b.TempDir()
					if name == "raw" {
						if shm, err := os.MkdirTemp("/dev/shm", "shale-replay-bench"); err == nil {
							out = shm
						} else {
							b.Logf("no tmpfs (%v): replay-raw writes to disk", err)
						}
					}
					args := []string{"replay", "-t", topic, "--format", format, "--out", out, "--parallel", strconv.Itoa(parallel)}
					if format == "jsonl" {
						args[6] = "-" // stdout, to /dev/null
					}
					start := time.Now()
					rss, cpu := sh.run(b, prof("replay-"+name), append(args, sh.flags()...)...)
					res.add("replay-"+name, round, stored, time.Since(start), rss, cpu)
					peak = max(peak, rss)
					os.RemoveAll(out)
				}
				b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			})
		}
		for _, agents := range []int{1, 2} {
			name := "kafka-consumer"
			if agents > 1 {
				name = fmt.Sprintf("kafka-%d-agents", agents)
			}
			if !only.MatchString(name) {
				continue
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(stored)
				var peak int64
				for range b.N {
					b.StopTimer()
					var as []*benchAgent
					for i := range agents {
						p := prof(name)
						if p != "" && agents > 1 {
							p += fmt.Sprintf("-%d", i)
						}
						as = append(as, sh.startAgent(b, p))
					}
					b.StartTimer()
					start := time.Now()
					g := new(errgroup.Group)
					answers := make([]time.Duration, len(as))
					for i, a := range as {
						var ps []int32
						for p := int32(i); p < parts; p += int32(agents) {
							ps = append(ps, p)
						}
						g.Go(func() (err error) {
							answers[i], err = consumeCount(a.addr, topic, ps, ends)
							return err
						})
					}
					if err := g.Wait(); err != nil {
						b.Fatal(err)
					}
					took := time.Since(start)
					var answered time.Duration
					for _, d := range answers {
						answered += d
					}
					b.StopTimer()
					var rss int64
					var cpu time.Duration
					for _, a := range as {
						r, c := a.stop(b)
						rss, cpu = max(rss, r), cpu+c
					}
					res.add(name, round, stored, took, rss, cpu)
					res.answerShare(name, answered.Seconds()/took.Seconds()/float64(len(as)))
					peak = max(peak, rss)
					b.StartTimer()
				}
				b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			})
		}
	}
	res.report(b, mib, stored, len(spans), parallel)
}

// produceBench produces about total bytes of 1 KiB records (half random,
// lz4) spread over the partitions.
func produceBench(b *testing.B, c *agenttest.Cluster, topic string, total int64, opts ...kgo.Opt) {
	b.Helper()
	cl := c.Client(b, append([]kgo.Opt{pinTo(c.Agents[0].Addr), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.ProducerBatchMaxBytes(1 << 20), kgo.ProducerLinger(10 * time.Millisecond), kgo.MaxBufferedRecords(1 << 16)}, opts...)...)
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

// consumeCount reads every record of partitions ps of the topic (ends:
// their end offsets) from earliest with a franz-go consumer whose every
// connection goes to the agent at addr. It returns how long the consumer
// spent receiving fetch answers (from sending a fetch to having read its
// answer: the agent's work and the transfer); the rest of its time it
// decodes (franz-go fetches again once the last answer is decoded and
// polled).
func consumeCount(addr, topic string, ps []int32, ends kadm.ListedOffsets) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pending := map[int32]int64{}
	offs := map[int32]kgo.Offset{}
	for _, p := range ps {
		offs[p] = kgo.NewOffset().AtStart()
		if e, ok := ends.Lookup(topic, p); ok && e.Offset > 0 {
			pending[p] = e.Offset
		}
	}
	var fw fetchWait
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), pinTo(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20), kgo.WithHooks(&fw))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("consume through %s: %w (pending %v)", addr, err, pending)
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("consume %d through %s: %w", p, addr, err) })
		if ferr != nil {
			return 0, ferr
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if n := len(fp.Records); n > 0 && fp.Records[n-1].Offset+1 >= pending[fp.Partition] {
				delete(pending, fp.Partition)
			}
		})
	}
	return fw.total(), nil
}

// fetchWait sums the time a client's fetch answers took to come (a
// kgo.HookBrokerRead: waiting for the answer to start, and reading it).
type fetchWait struct {
	mu sync.Mutex
	d  time.Duration
}

func (f *fetchWait) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, wait, read time.Duration, _ error) {
	if key == 1 { // Fetch
		f.mu.Lock()
		f.d += wait + read
		f.mu.Unlock()
	}
}

func (f *fetchWait) total() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.d
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
