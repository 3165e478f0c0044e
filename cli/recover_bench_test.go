package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/s3tier"
)

// BenchmarkRecover measures `shale recover` of a 64-partition topic on
// MinIO: SHALE_RECOVER_BENCH_MIB MiB (default 16; `make bench` runs 1024)
// of 1 KiB records produced (uncompressed) through an agent, the agent stopped, a
// manifest written, then each iteration restores it into an empty etcd
// namespace. Besides the time it reports per recover the requests to the
// bucket (a counting store around recover's own) and the bytes read.
func BenchmarkRecover(b *testing.B) {
	mib := benchEnvInt(b, "SHALE_RECOVER_BENCH_MIB", 16)
	const parts = 64
	ctx := context.Background()
	s3 := testenv.MinIO(b)
	store, err := s3tier.NewS3Store(ctx, s3tier.S3Config{Bucket: s3.Bucket, Endpoint: s3.Endpoint,
		Region: s3.Region, PathStyle: true, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	c := agenttest.Start(b, agenttest.Options{Agents: 1,
		Store:  func(s3tier.Store) s3tier.Store { return store },
		Engine: func(_ int, cfg *engine.Config) { cfg.FlushInterval = 250 * time.Millisecond }})
	const topic = "recover-bench"
	if _, err := c.Admin(b).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		b.Fatal(err)
	}
	// Uncompressed, so the bucket holds about what was produced (the
	// records are half random: lz4 would halve them); round robin, as
	// produceBench's keys are only 125 (n%1000 for n in steps of 1024)
	// and hashed they left 7 of the 64 partitions empty.
	produceBench(b, c, topic, int64(mib)<<20, kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	for _, a := range c.Agents {
		if err := a.Stop(); err != nil {
			b.Fatal(err)
		}
	}
	ms, err := lifecycle.WriteManifest(ctx, store, c.Meta, "bench", time.Now(), 0, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	objs, err := store.List(ctx, "wal/")
	if err != nil {
		b.Fatal(err)
	}
	var stored int64
	for _, o := range objs {
		stored += o.Size
	}
	b.Logf("cluster: %d MiB produced, %d partitions, %d objects (%.1f MiB), manifest %s: %d etcd keys, %d objects, %.1f KiB",
		mib, parts, len(objs), float64(stored)/(1<<20), ms.Key, ms.Keys, ms.Objects, float64(ms.Bytes)/1024)
	// The measurement is a sub-benchmark, so the cluster above is built
	// once however many times the runner calls it with a larger N.
	b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) { benchRecover(b, c, s3, ms) })
}

func benchRecover(b *testing.B, c *agenttest.Cluster, s3 testenv.S3Server, ms lifecycle.ManifestStats) {
	ctx := context.Background()
	var counts []*s3tier.CountingStore
	for i := range b.N {
		o := StackOptions{EtcdEndpoints: c.Endpoints, EtcdNamespace: fmt.Sprintf("/recover-bench-%d-%d", b.N, i),
			Bucket: "s3://" + s3.Bucket, S3Endpoint: s3.Endpoint, S3Region: s3.Region, S3AccessKey: s3.AccessKey, S3SecretKey: s3.SecretKey,
			WrapStore: func(s s3tier.Store) s3tier.Store {
				cs := s3tier.Counting(s)
				counts = append(counts, cs)
				return cs
			}}
		var out strings.Builder
		if err := runRecover(ctx, o, recoverOptions{NewBucket: true}, &out, io.Discard); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			b.StopTimer()
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			b.Logf("recover: %s ... %s", lines[0], strings.Join(strings.Fields(strings.Join(append(lines[3:5:5], lines[len(lines)-2:]...), " ")), " "))
			b.StartTimer()
		}
	}
	b.StopTimer()
	var sum s3tier.Counts
	for _, cs := range counts {
		n := cs.Counts()
		sum.Gets += n.Gets
		sum.Heads += n.Heads
		sum.Lists += n.Lists
		sum.BytesGot += n.BytesGot
	}
	n := float64(len(counts))
	b.ReportMetric(float64(sum.Gets)/n, "GETs/op")
	b.ReportMetric(float64(sum.Heads)/n, "HEADs/op")
	b.ReportMetric(float64(sum.Lists)/n, "LISTs/op")
	b.ReportMetric(float64(sum.BytesGot)/n/1024, "KiB-read/op")
	b.ReportMetric(float64(ms.Keys), "etcd-keys")
	b.ReportMetric(float64(ms.Objects), "objects")
}
