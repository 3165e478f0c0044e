package interop

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestFranzGoRoundTrip proves that franz-go's default (idempotent, acks=all)
// producer and its consumer round-trip 10,000 keyed records with headers and
// explicit timestamps, under every compression codec, when every produce
// goes to agent A and every fetch to agent B.
func TestFranzGoRoundTrip(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Agents: 2})
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	for _, tc := range codecs {
		t.Run(tc.name, func(t *testing.T) {
			topic := "franz-" + tc.name
			c.CreateTopic(t, 0, topic, numPartitions)
			src := "franz-go/" + tc.name
			want := func(i int) Record { return recordFor(src, i) }
			acks := produceFranz(t, c.Addr(0), topic, numRecords, want, kgo.ProducerBatchCompression(tc.codec))
			got := consumeAll(t, c.Addr(1), topic, numRecords)
			verify(t, expectation{n: numRecords, want: want, acks: acks, partitions: numPartitions}, got)
			checkEndOffsets(t, c.Addr(1), topic, numRecords, acks)
		})
	}
}

// produceFranz produces records 0..n-1 to topic through the agent at addr
// (every connection pinned to it) and returns where each was acknowledged.
// A failed record fails the test.
func produceFranz(t *testing.T, addr, topic string, n int, rec func(int) Record, opts ...kgo.Opt) map[int]Pos {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.Dialer(cluster.DialTo(addr)),
		kgo.DefaultProduceTopic(topic),
		// No RecordDeliveryTimeout: kgo measures it from the record's
		// timestamp, and these carry old explicit ones. ctx bounds it.
	}, opts...)...)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), produceTimeout)
	defer cancel()
	var (
		mu    sync.Mutex
		acks  = make(map[int]Pos, n)
		fails int
	)
	for i := range n {
		r := rec(i)
		kr := &kgo.Record{Key: []byte(r.Key), Value: []byte(r.Value), Timestamp: time.UnixMilli(r.Timestamp)}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)})
		}
		cl.Produce(ctx, kr, func(kr *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails++
				if fails <= 5 {
					t.Errorf("produce record %d to %s via %s: %v", i, topic, addr, err)
				}
				return
			}
			acks[i] = Pos{kr.Partition, kr.Offset}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatalf("flush producer to %s via %s: %v", topic, addr, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fails > 0 {
		t.Fatalf("%d of %d records failed to produce", fails, n)
	}
	return acks
}
