package agent_test

import (
	"bytes"
	"crypto/rand"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/segment/segmenttest"
)

var kgoCodecs = []struct {
	name  string
	codec kgo.CompressionCodec
	id    int8
}{
	{"none", kgo.NoCompression(), segment.CompressionNone},
	{"gzip", kgo.GzipCompression(), segment.CompressionGzip},
	{"snappy", kgo.SnappyCompression(), segment.CompressionSnappy},
	{"lz4", kgo.Lz4Compression(), segment.CompressionLZ4},
	{"zstd", kgo.ZstdCompression(), segment.CompressionZstd},
}

// storedBatches fetches a partition raw (v12) from offset 0 to its high
// watermark and returns the headers of the batches as the agent serves
// them from the bucket.
func storedBatches(t *testing.T, addr, topic string, partition int32) []segment.BatchHeader {
	t.Helper()
	rc := dialRaw(t, addr)
	var out []segment.BatchHeader
	for next, hw := int64(0), int64(1); next < hw; {
		req := fetchReq(topic, 100, 1, 64<<20, map[int32]int64{0: next}, 64<<20)
		req.Topics[0].Partitions[0].Partition = partition
		resp := rc.roundTrip(req).(*kmsg.FetchResponse)
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("raw fetch %s/%d at %d: %+v", topic, partition, next, resp)
		}
		p := resp.Topics[0].Partitions[0]
		bs, err := segment.SplitBatches(p.RecordBatches, true)
		if err != nil || len(bs) == 0 && p.HighWatermark > next {
			t.Fatalf("stored batches of %s/%d at %d: %d, %v", topic, partition, next, len(bs), err)
		}
		for _, b := range bs {
			if b.Header.LastOffset() >= next {
				out = append(out, b.Header)
				next = b.Header.LastOffset() + 1
			}
		}
		hw = p.HighWatermark
	}
	return out
}

type wantRec struct {
	key, value, header string
	ts                 time.Time
}

// produceCodec writes n records to partition 0 with an idempotent kgo
// producer using codec, through addr, and returns them with the producer
// ID it was given.
func produceCodec(t *testing.T, c *agenttest.Cluster, addr, topic string, codec kgo.CompressionCodec, n, from int) ([]wantRec, int64) {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	cl := c.Client(t, pinnedDialer(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(50*time.Millisecond))
	var out []wantRec
	var rs []*kgo.Record
	base := time.UnixMilli(time.Now().UnixMilli() - 10_000)
	for i := from; i < from+n; i++ {
		w := wantRec{key: "k" + strconv.Itoa(i%13), value: strconv.Itoa(i) + string(bytes.Repeat([]byte(" compressible"), 10)), header: strconv.Itoa(i), ts: base.Add(time.Duration(i) * time.Millisecond)}
		out = append(out, w)
		rs = append(rs, &kgo.Record{Key: []byte(w.key), Value: []byte(w.value), Timestamp: w.ts, Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(w.header)}}})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	id, _, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return out, id
}

// consumeAllFrom reads n records of partition 0 through addr.
func consumeAllFrom(t *testing.T, c *agenttest.Cluster, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	cl := c.Client(t, pinnedDialer(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d", len(got), n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		got = append(got, fs.Records()...)
	}
	return got
}

func checkRecords(t *testing.T, got []*kgo.Record, want []wantRec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("consumed %d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Offset != int64(i) || string(g.Key) != w.key || string(g.Value) != w.value || !g.Timestamp.Equal(w.ts) ||
			len(g.Headers) != 1 || string(g.Headers[0].Value) != w.header {
			t.Fatalf("record %d: offset %d key %q value %q ts %v headers %v; want %+v", i, g.Offset, g.Key, g.Value, g.Timestamp, g.Headers, w)
		}
	}
}

// TestTopicCompressionType proves compression.type as Kafka applies it:
// batches produced in every codec to a topic set to zstd are stored as
// zstd with their producer ID, epoch, sequences and timestamps kept, and
// a consumer on another agent reads exactly the records produced, as from
// a topic left at "producer" (whose batches keep their codec); after
// altering the topic to lz4 new batches are stored lz4 and the older stay
// zstd; and the bucket holds fewer bytes for zstd than for "producer"
// with an uncompressed producer (logged).
func TestTopicCompressionType(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	ctx := testCtx(t, 2*time.Minute)
	writer, reader := c.Agents[0].Addr, c.Agents[1].Addr
	adm := c.Admin(t)
	create := func(name, codec string) {
		t.Helper()
		var cfg map[string]*string
		if codec != "" {
			cfg = map[string]*string{"compression.type": kmsg.StringPtr(codec)}
		}
		if r, err := adm.CreateTopic(ctx, 1, -1, cfg, name); err != nil || r.Err != nil {
			t.Fatalf("create %s: %v %v", name, err, r.Err)
		}
	}
	const n = 200
	for _, target := range []string{"producer", "zstd"} {
		t.Run(target, func(t *testing.T) {
			topic := "codec-" + target
			create(topic, target)
			var want []wantRec
			var ids []int64
			for i, pc := range kgoCodecs {
				w, id := produceCodec(t, c, writer, topic, pc.codec, n, i*n)
				want, ids = append(want, w...), append(ids, id)
			}
			checkRecords(t, consumeAllFrom(t, c, reader, topic, len(want)), want)
			seen := 0
			for _, h := range storedBatches(t, reader, topic, 0) {
				src := int(h.BaseOffset) / n // which producer wrote it
				wantCodec := kgoCodecs[src].id
				if target == "zstd" {
					wantCodec = segment.CompressionZstd
				}
				if h.Compression() != wantCodec {
					t.Fatalf("batch at %d stored with codec %d, want %d", h.BaseOffset, h.Compression(), wantCodec)
				}
				if h.ProducerID != ids[src] || h.ProducerEpoch != 0 || h.BaseSequence != int32(int(h.BaseOffset)-src*n) {
					t.Fatalf("batch at %d: producer %d epoch %d sequence %d, want %d 0 %d", h.BaseOffset, h.ProducerID, h.ProducerEpoch, h.BaseSequence, ids[src], int(h.BaseOffset)-src*n)
				}
				if h.BaseTimestamp != want[h.BaseOffset].ts.UnixMilli() {
					t.Fatalf("batch at %d: base timestamp %d, want %d", h.BaseOffset, h.BaseTimestamp, want[h.BaseOffset].ts.UnixMilli())
				}
				seen += int(h.RecordCount)
			}
			if seen != len(want) {
				t.Fatalf("stored batches hold %d records, want %d", seen, len(want))
			}
		})
	}

	// Altering takes effect for what is produced afterwards.
	alt, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "compression.type", Value: kmsg.StringPtr("lz4")}}, "codec-zstd")
	if err == nil {
		err = alt[0].Err
	}
	if err != nil {
		t.Fatalf("alter to lz4: %v", err)
	}
	time.Sleep(1100 * time.Millisecond) // the writer's topic cache
	produceCodec(t, c, writer, "codec-zstd", kgo.GzipCompression(), n, 5*n)
	// The reader learns of the writer's last commit through its watch:
	// read until the gzip producer's batches are there.
	hs := storedBatches(t, reader, "codec-zstd", 0)
	for deadline := time.Now().Add(10 * time.Second); hs[len(hs)-1].LastOffset() < int64(6*n-1) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		hs = storedBatches(t, reader, "codec-zstd", 0)
	}
	if end := hs[len(hs)-1].LastOffset(); end != int64(6*n-1) {
		t.Fatalf("after altering to lz4: stored batches end at offset %d, want %d", end, 6*n-1)
	}
	if first, last := hs[0], hs[len(hs)-1]; first.Compression() != segment.CompressionZstd || last.Compression() != segment.CompressionLZ4 {
		t.Fatalf("after altering to lz4: first batch codec %d, last %d; want zstd then lz4", first.Compression(), last.Compression())
	}

	// Bucket bytes for the same uncompressed records, producer vs zstd,
	// with records like make bench's (1 KiB values, half random).
	val := make([]byte, 1024)
	var bench []*kgo.Record
	for range 2000 {
		_, _ = rand.Read(val[:512])
		bench = append(bench, &kgo.Record{Value: bytes.Clone(val)})
	}
	bytesOf := func(topic string) int64 {
		t.Helper()
		create(topic, map[string]string{"bench-producer": "producer", "bench-zstd": "zstd"}[topic])
		cl := c.Client(t, pinnedDialer(writer), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
		for _, r := range bench {
			r.Topic = ""
		}
		if err := cl.ProduceSync(ctx, bench...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		if _, _, err := c.Meta.ScanIndex(ctx, metastore.TopicID(td[topic].ID), 0, func(e metastore.IndexEntry) bool { total += e.Bytes(); return true }); err != nil {
			t.Fatal(err)
		}
		return total
	}
	plain, zstd := bytesOf("bench-producer"), bytesOf("bench-zstd")
	t.Logf("bucket bytes for 2000 uncompressed 1 KiB records (half random): compression.type=producer %d, zstd %d (%.1f%% saved)", plain, zstd, 100*(1-float64(zstd)/float64(plain)))
	if zstd >= plain {
		t.Fatalf("zstd topic holds %d bytes, producer topic %d", zstd, plain)
	}
}

// TestRecompressedProduceIsIdempotent proves a retried idempotent batch is
// de-duplicated on a topic that recompresses (the producer ID, epoch and
// sequence survive recompression): the same raw batch sent twice is
// stored once and both answers give the same offset.
func TestRecompressedProduceIsIdempotent(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	ctx := testCtx(t, time.Minute)
	if r, err := c.Admin(t).CreateTopic(ctx, 1, -1, map[string]*string{"compression.type": kmsg.StringPtr("gzip")}, "idem"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	rc := dialRaw(t, c.Agents[0].Addr)
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.Version = 4
	ipr := rc.roundTrip(ip).(*kmsg.InitProducerIDResponse)
	if ipr.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(ipr.ErrorCode))
	}
	batch := segmenttest.Batch(segmenttest.BatchOptions{Records: 5, Value: bytes.Repeat([]byte("v"), 100), Timestamp: time.Now().UnixMilli(),
		Idempotent: true, ProducerID: ipr.ProducerID, ProducerEpoch: ipr.ProducerEpoch})
	var offsets []int64
	for range 2 {
		resp := rc.roundTrip(produceReq(9, "idem", 0, batch)).(*kmsg.ProduceResponse)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("produce: %v", kerr.ErrorForCode(p.ErrorCode))
		}
		offsets = append(offsets, p.BaseOffset)
	}
	hs := storedBatches(t, c.Agents[0].Addr, "idem", 0)
	if offsets[0] != 0 || offsets[1] != 0 || len(hs) != 1 || hs[0].Compression() != segment.CompressionGzip || hs[0].ProducerID != ipr.ProducerID {
		t.Fatalf("offsets %v, stored %+v; want one gzip batch at 0 answered twice", offsets, hs)
	}
}
