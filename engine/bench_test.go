package engine

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// BenchmarkWritePath measures the acknowledged write path (produce → seal →
// upload → etcd commit → ack) beside the raw Put throughput of the same
// store with the same object size and upload concurrency, in one run, for
// the local directory and a real versitygw S3 server. Compare the MB/s of
// engine/* with raw-put/* of the same store.
func BenchmarkWritePath(b *testing.B) {
	cli, _ := testenv.Etcd(b)
	s3 := testenv.S3(b)
	stores := []struct {
		name string
		open func(b *testing.B) s3tier.Store
	}{
		{"dir", func(b *testing.B) s3tier.Store { return dirStore(b) }},
		{"versitygw", func(b *testing.B) s3tier.Store {
			st, err := s3tier.NewS3Store(context.Background(), s3tier.S3Config{
				Bucket: s3.Bucket, Endpoint: s3.Endpoint, Region: s3.Region, PathStyle: true,
				AccessKey: s3.AccessKey, SecretKey: s3.SecretKey,
			})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	}
	const objectSize = DefaultFlushBytes
	for _, st := range stores {
		b.Run("raw-put/"+st.name, func(b *testing.B) {
			store := st.open(b)
			data := make([]byte, objectSize)
			for i := range data {
				data[i] = byte(rand.IntN(256))
			}
			b.SetBytes(objectSize)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			sem := make(chan struct{}, DefaultUploadConcurrency)
			for i := 0; i < b.N; i++ {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done() }()
					if err := store.Put(context.Background(), fmt.Sprintf("raw/%d", i), bytes.NewReader(data), objectSize); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "PUTs/s")
		})
		b.Run("engine/"+st.name, func(b *testing.B) {
			counted := s3tier.Counting(st.open(b))
			e := testEngine(b, cli, counted, func(c *Config) { c.FlushInterval = 250 * time.Millisecond })
			tp := createTopic(b, cli, fmt.Sprintf("bench-%s-%d", st.name, b.N), 16)
			// 64 KiB batches of 1 KiB records, half random bytes.
			val := make([]byte, 1024)
			for i := 0; i < 512; i++ {
				val[i] = byte(rand.IntN(256))
			}
			batch := segmenttest.Batch(segmenttest.BatchOptions{Records: 64, Value: val})
			perIter := objectSize / len(batch)
			b.SetBytes(int64(perIter * len(batch)))
			b.ResetTimer()
			start := time.Now()
			var pend []*Pending
			for i := 0; i < b.N; i++ {
				for j := 0; j < perIter; j++ {
					pend = append(pend, e.Produce(context.Background(), tp.ID, int32(j%16), batch))
				}
			}
			for _, p := range pend {
				if _, err := p.Wait(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start).Seconds()
			b.ReportMetric(float64(counted.Counts().Puts)/el, "PUTs/s")
		})
	}
}
