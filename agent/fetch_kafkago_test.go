package agent_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent/agenttest"
)

// kafkaGoClient is a kafka-go Client whose every connection goes to addr.
func kafkaGoClient(addr string) *kafkago.Client {
	var d net.Dialer
	return &kafkago.Client{Addr: kafkago.TCP(addr), Timeout: 20 * time.Second,
		Transport: &kafkago.Transport{Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
}

// readAll returns the values kafka-go's Client.Fetch read from offset on.
func kafkaGoFetch(t *testing.T, ctx context.Context, cl *kafkago.Client, topic string, partition int, offset int64) ([]string, int64) {
	t.Helper()
	resp, err := cl.Fetch(ctx, &kafkago.FetchRequest{Topic: topic, Partition: partition, Offset: offset, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("kafka-go Client.Fetch %s/%d at %d: %v", topic, partition, offset, err)
	}
	if resp.Error != nil {
		t.Fatalf("kafka-go Client.Fetch %s/%d at %d: partition error %v", topic, partition, offset, resp.Error)
	}
	var out []string
	for {
		r, err := resp.Records.ReadRecord()
		if err != nil {
			break
		}
		if r.Offset < offset {
			continue
		}
		v, err := readBytes(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%s", r.Offset, v))
	}
	return out, resp.HighWatermark
}

func readBytes(b kafkago.Bytes) (string, error) {
	if b == nil {
		return "", nil
	}
	defer b.Close()
	buf := make([]byte, b.Len())
	_, err := b.Read(buf)
	return string(buf), err
}

func wantValues(from, n int, prefix string) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprintf("%d:%s%d", from+i, prefix, from+i)
	}
	return out
}

// TestKafkaGoClientFetch proves kafka-go v0.4.51's low-level Client.Fetch
// (sessionless: SessionID -1, SessionEpoch -1) reads records written
// through another agent: plain and compressed batches from kgo, a batch
// written by kafka-go's Client.Produce, and a burst of concurrent fetches
// at different offsets on one Client (kafka-go's Transport gives each
// in-flight request a connection of its own; fetches pipelined on one
// connection: TestFetchesPipelinedOnOneConnection).
func TestKafkaGoClientFetch(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, 2*time.Minute)
	const topic, n = "kafkago-fetch", 20
	if _, err := c.Admin(t).CreateTopic(ctx, 3, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	writer, reader := c.Agents[0].Addr, c.Agents[1].Addr
	produce := func(partition int32, codec kgo.CompressionCodec) {
		t.Helper()
		cl := c.Client(t, pinnedDialer(writer), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(codec))
		var rs []*kgo.Record
		for i := range n {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: partition, Value: fmt.Appendf(nil, "v%d", i)})
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce to %d: %v", partition, err)
		}
	}
	produce(0, kgo.NoCompression())
	produce(1, kgo.ZstdCompression())
	cl := kafkaGoClient(reader)
	for _, p := range []int{0, 1} {
		got, hw := kafkaGoFetch(t, ctx, cl, topic, p, 0)
		if !slices.Equal(got, wantValues(0, n, "v")) || hw != n {
			t.Fatalf("partition %d: read %v (high watermark %d), want %v", p, got, hw, wantValues(0, n, "v"))
		}
	}

	// Client.Produce through the writer, Client.Fetch through the reader.
	var recs []kafkago.Record
	for i := range n {
		recs = append(recs, kafkago.Record{Value: kafkago.NewBytes(fmt.Appendf(nil, "p%d", i))})
	}
	pr, err := kafkaGoClient(writer).Produce(ctx, &kafkago.ProduceRequest{Topic: topic, Partition: 2, RequiredAcks: kafkago.RequireAll,
		Records: kafkago.NewRecordReader(recs...), Compression: compress.Lz4})
	if err != nil || pr.Error != nil {
		t.Fatalf("kafka-go Client.Produce: %v %v", err, pr.Error)
	}
	if got, _ := kafkaGoFetch(t, ctx, cl, topic, 2, pr.BaseOffset); !slices.Equal(got, wantValues(0, n, "p")) {
		t.Fatalf("after Client.Produce read %v, want %v", got, wantValues(0, n, "p"))
	}

	// Pipelined: many fetches in flight at once on one client.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for off := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := cl.Fetch(ctx, &kafkago.FetchRequest{Topic: topic, Partition: 0, Offset: int64(off), MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
			if err != nil || resp.Error != nil {
				errs <- fmt.Errorf("fetch at %d: %v %v", off, err, resp.Error)
				return
			}
			for {
				r, err := resp.Records.ReadRecord()
				if err != nil {
					errs <- fmt.Errorf("fetch at %d: no record at or past it", off)
					return
				}
				if r.Offset < int64(off) {
					continue
				}
				if v, _ := readBytes(r.Value); r.Offset != int64(off) || v != fmt.Sprintf("v%d", off) {
					errs <- fmt.Errorf("fetch at %d: first record %d %q", off, r.Offset, v)
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
