package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent/agenttest"
)

// pinnedDialer sends every connection of a kgo client to addr, whatever
// broker metadata names, so a test controls which agent serves a client.
func pinnedDialer(addr string) kgo.Opt {
	var d net.Dialer
	return kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	})
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type sent struct {
	key, value []byte
	header     string
	ts         time.Time
	partition  int32
	offset     int64
}

// TestProduceConsumeAcrossAgents proves that keyed records with headers
// produced by an idempotent kgo producer through one agent, with every
// compression codec, are read back through another agent intact: same key,
// value, headers, timestamp and partition, in order, at offsets dense from 0.
func TestProduceConsumeAcrossAgents(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	a, b := c.Agents[0].Addr, c.Agents[1].Addr
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
	const records, partitions = 10000, 4
	for _, tc := range codecs {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t, 2*time.Minute)
			topic := "e2e-" + tc.name
			adm := kadm.NewClient(c.Client(t, pinnedDialer(a)))
			if _, err := adm.CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
				t.Fatalf("create topic: %v", err)
			}

			prod := c.Client(t, pinnedDialer(a), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(tc.codec))
			want := make([]sent, records)
			base := time.UnixMilli(time.Now().UnixMilli() - records)
			errs := make(chan error, records)
			for i := range records {
				want[i] = sent{
					key:    []byte("key-" + strconv.Itoa(i%997)),
					value:  bytes.Repeat([]byte{byte(i)}, 1+i%300),
					header: strconv.Itoa(i),
					ts:     base.Add(time.Duration(i) * time.Millisecond),
				}
				r := &kgo.Record{Key: want[i].key, Value: want[i].value, Timestamp: want[i].ts,
					Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(want[i].header)}}}
				prod.Produce(ctx, r, func(r *kgo.Record, err error) {
					want[i].partition, want[i].offset = r.Partition, r.Offset
					errs <- err
				})
			}
			for range records {
				if err := <-errs; err != nil {
					t.Fatalf("produce: %v", err)
				}
			}

			offsets := map[int32]kgo.Offset{}
			for p := range int32(partitions) {
				offsets[p] = kgo.NewOffset().AtStart()
			}
			cons := c.Client(t, pinnedDialer(b), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
			got := map[int32][]*kgo.Record{}
			n := 0
			for n < records {
				fs := cons.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("consumed %d of %d records: %v", n, records, err)
				}
				fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
				fs.EachRecord(func(r *kgo.Record) {
					got[r.Partition] = append(got[r.Partition], r)
					n++
				})
			}
			if n != records {
				t.Fatalf("consumed %d records, want %d", n, records)
			}

			perPartition := map[int32][]sent{}
			for _, w := range want {
				perPartition[w.partition] = append(perPartition[w.partition], w)
			}
			for p, ws := range perPartition {
				gs := got[p]
				if len(gs) != len(ws) {
					t.Fatalf("partition %d: consumed %d records, produced %d", p, len(gs), len(ws))
				}
				for i, w := range ws {
					g := gs[i]
					if w.offset != int64(i) || g.Offset != int64(i) {
						t.Fatalf("partition %d record %d: produced at offset %d, consumed at %d; want dense offsets from 0", p, i, w.offset, g.Offset)
					}
					if !bytes.Equal(g.Key, w.key) || !bytes.Equal(g.Value, w.value) {
						t.Fatalf("partition %d offset %d: key/value %q/%d bytes, want %q/%d bytes", p, i, g.Key, len(g.Value), w.key, len(w.value))
					}
					if len(g.Headers) != 1 || g.Headers[0].Key != "seq" || string(g.Headers[0].Value) != w.header {
						t.Fatalf("partition %d offset %d: headers %v, want seq=%s", p, i, g.Headers, w.header)
					}
					if !g.Timestamp.Equal(w.ts) {
						t.Fatalf("partition %d offset %d: timestamp %v, want %v", p, i, g.Timestamp, w.ts)
					}
				}
			}
			if len(perPartition) != partitions {
				t.Errorf("records went to %d partitions, want %d", len(perPartition), partitions)
			}
		})
	}
}

// TestAutoCreateOnProduce proves that a producer writing to a topic that does
// not exist gets it auto-created (Metadata) and can read its records back.
func TestAutoCreateOnProduce(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	cl := c.Client(t, kgo.DefaultProduceTopic("auto"), kgo.AllowAutoTopicCreation())
	for i := range 10 {
		if err := cl.ProduceSync(ctx, kgo.StringRecord(fmt.Sprint(i))).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	cons := c.Client(t, kgo.ConsumeTopics("auto"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < 10 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %v: %v", got, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	for i, v := range got {
		if v != fmt.Sprint(i) {
			t.Fatalf("record %d = %q, want %q (all: %v)", i, v, fmt.Sprint(i), got)
		}
	}
}
