package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/s3tier"
)

// testCtx is bounded by the test and a generous timeout.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// rec is a record as compared in tests.
type rec struct {
	Partition int32
	Offset    int64
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []kmsg.Header
}

func (r rec) String() string {
	return fmt.Sprintf("%d/%d@%d k=%q(nil=%v) v=%d bytes(nil=%v) h=%d", r.Partition, r.Offset, r.Timestamp, r.Key, r.Key == nil, len(r.Value), r.Value == nil, len(r.Headers))
}

func equalRec(a, b rec) bool {
	if a.Partition != b.Partition || a.Offset != b.Offset || a.Timestamp != b.Timestamp ||
		!bytes.Equal(a.Key, b.Key) || (a.Key == nil) != (b.Key == nil) ||
		!bytes.Equal(a.Value, b.Value) || (a.Value == nil) != (b.Value == nil) || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !bytes.Equal(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}

// compareRecs fails t unless got equals want (both in partition, offset order).
func compareRecs(t testing.TB, what string, got, want []rec) {
	t.Helper()
	n := min(len(got), len(want))
	for i := range n {
		if !equalRec(got[i], want[i]) {
			t.Fatalf("%s: record %d: got %v, want %v", what, i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		var extra []rec
		if len(got) > n {
			extra = got[n:min(len(got), n+3)]
		} else {
			extra = want[n:min(len(want), n+3)]
		}
		t.Fatalf("%s: got %d records, want %d (first difference: %v)", what, len(got), len(want), extra)
	}
}

// collectSink keeps copies of every record (or, raw, of every batch).
type collectSink struct {
	raw     bool
	mu      sync.Mutex
	recs    map[int32][]rec
	batches map[int32][][]byte
}

func newCollectSink(raw bool) *collectSink {
	return &collectSink{raw: raw, recs: map[int32][]rec{}, batches: map[int32][][]byte{}}
}

func (s *collectSink) Raw() bool    { return s.raw }
func (s *collectSink) Close() error { return nil }
func (s *collectSink) Open(p int32) (replay.Writer, error) {
	return &collectWriter{s: s, p: p}, nil
}

// sorted returns every record, by partition then offset order as written.
func (s *collectSink) sorted() []rec {
	var out []rec
	ps := make([]int32, 0, len(s.recs))
	for p := range s.recs {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		out = append(out, s.recs[p]...)
	}
	return out
}

type collectWriter struct {
	s *collectSink
	p int32
}

func (w *collectWriter) WriteRecords(recs []replay.Record) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	for _, r := range recs {
		if r.Partition != w.p {
			return fmt.Errorf("record of partition %d written to %d", r.Partition, w.p)
		}
		c := rec{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, Key: clone(r.Key), Value: clone(r.Value)}
		for _, h := range r.Headers {
			c.Headers = append(c.Headers, kmsg.Header{Key: h.Key, Value: clone(h.Value)})
		}
		w.s.recs[w.p] = append(w.s.recs[w.p], c)
	}
	return nil
}

func (w *collectWriter) WriteBatch(p int32, absBase int64, raw []byte) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	b := clone(raw)
	b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7] = byte(absBase>>56), byte(absBase>>48), byte(absBase>>40), byte(absBase>>32), byte(absBase>>24), byte(absBase>>16), byte(absBase>>8), byte(absBase)
	w.s.batches[p] = append(w.s.batches[p], b)
	return nil
}

func (w *collectWriter) Close() error { return nil }

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// fixture is a topic produced through agents with every codec, part of it
// compacted into segments, with the records a Kafka consumer reads.
type fixture struct {
	c     *agenttest.Cluster
	topic string
	parts int32
	want  []rec // by partition, then offset
	minTs int64
	maxTs int64
}

var codecs = []struct {
	name  string
	codec kgo.CompressionCodec
}{
	{"none", kgo.NoCompression()},
	{"gzip", kgo.GzipCompression()},
	{"snappy", kgo.SnappyCompression()},
	{"lz4", kgo.Lz4Compression()},
	{"zstd", kgo.ZstdCompression()},
}

// produceCodecs produces perCodec records to every partition with each
// codec: keys null, empty or text; values null, empty, text, JSON or
// binary; some headers; timestamps rising with some out of order within
// batches. It returns the timestamps used.
func produceCodecs(t testing.TB, c *agenttest.Cluster, topic string, parts int32, perCodec int, t0 time.Time, seed uint64) {
	t.Helper()
	ctx := testCtx(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	for ci, cd := range codecs {
		cl := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(cd.codec),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
		var wg sync.WaitGroup
		var perr error
		var mu sync.Mutex
		for i := range perCodec {
			for p := range parts {
				ts := t0.Add(time.Duration(ci*perCodec+i) * 10 * time.Millisecond)
				if i%7 == 3 {
					ts = ts.Add(-45 * time.Millisecond) // out of order within its batch
				}
				r := &kgo.Record{Partition: p, Timestamp: ts}
				switch i % 5 {
				case 0:
					r.Key = nil
				case 1:
					r.Key = []byte{}
				default:
					r.Key = fmt.Appendf(nil, "key-%s-%d", cd.name, i%13)
				}
				switch i % 6 {
				case 0:
					r.Value = nil
				case 1:
					r.Value = []byte{}
				case 2:
					r.Value = fmt.Appendf(nil, `{"codec":%q,"i":%d,"nested":{"a":[1,2,3]}}`, cd.name, i)
				case 3:
					r.Value = make([]byte, 64+rng.IntN(512))
					for j := range r.Value {
						r.Value[j] = byte(rng.IntN(256))
					}
				default:
					r.Value = bytes.Repeat(fmt.Appendf(nil, "text \"%d\"\n\t", i), 1+i%40)
				}
				if i%4 == 0 {
					r.Headers = []kgo.RecordHeader{{Key: "h1", Value: []byte("v1")}, {Key: "h2", Value: nil}}
				}
				wg.Add(1)
				cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
					defer wg.Done()
					if err != nil {
						mu.Lock()
						perr = errors.Join(perr, err)
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		if perr != nil {
			t.Fatalf("produce %s: %v", cd.name, perr)
		}
	}
}

// consumeAll reads every record of topic through a Kafka consumer.
func consumeAll(t testing.TB, c *agenttest.Cluster, topic string, parts int32) []rec {
	t.Helper()
	ctx := testCtx(t)
	ends, err := c.Admin(t).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	offs := map[int32]kgo.Offset{}
	pending := map[int32]int64{}
	for p := range parts {
		offs[p] = kgo.NewOffset().AtStart()
		if e, ok := ends.Lookup(topic, p); ok && e.Offset > 0 {
			pending[p] = e.Offset
		}
	}
	cl := c.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	byPart := map[int32][]rec{}
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume: %v (pending %v)", ctx.Err(), pending)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("consume %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			c := rec{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value}
			for _, h := range r.Headers {
				c.Headers = append(c.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
			}
			byPart[r.Partition] = append(byPart[r.Partition], c)
			if r.Offset+1 >= pending[r.Partition] {
				delete(pending, r.Partition)
			}
		})
	}
	var out []rec
	for p := range parts {
		out = append(out, byPart[p]...)
	}
	return out
}

// newFixture starts two agents, produces with every codec, compacts part
// of partitions 0 and 1 into segments of small chunks, produces more, and
// reads it all back through a Kafka consumer.
func newFixture(t testing.TB, perCodec int) *fixture {
	t.Helper()
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	f := &fixture{c: c, topic: "replay-codecs", parts: 3}
	ctx := testCtx(t)
	if _, err := c.Admin(t).CreateTopic(ctx, f.parts, 1, nil, f.topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	t0 := time.UnixMilli(1_764_064_800_000) // 2025-11-25T10:00:00Z
	produceCodecs(t, c, f.topic, f.parts, perCodec, t0, 1)
	tp, err := c.Meta.GetTopic(ctx, f.topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int32{0, 1} {
		st, err := lifecycle.CompactPartition(ctx, c.Store, c.Meta, lifecycle.CompactConfig{
			ChunkBytes: 8 << 10, MinEntries: 1, Settle: time.Nanosecond, TempDir: t.TempDir(),
		}, tp.ID, p, nil)
		if err != nil {
			t.Fatalf("compact %d: %v", p, err)
		}
		if st == (lifecycle.CompactStats{}) {
			t.Fatalf("compact %d: nothing compacted", p)
		}
	}
	produceCodecs(t, c, f.topic, f.parts, perCodec/2, t0.Add(time.Hour), 2)
	f.want = consumeAll(t, c, f.topic, f.parts)
	f.minTs, f.maxTs = f.want[0].Timestamp, f.want[0].Timestamp
	for _, r := range f.want {
		f.minTs, f.maxTs = min(f.minTs, r.Timestamp), max(f.maxTs, r.Timestamp)
	}
	return f
}

// readOnly returns a metastore and store for replays: a fresh etcd client
// whose KV refuses writes, and the bucket with writes refused.
func (f *fixture) readOnly(t testing.TB) (*metastore.Store, s3tier.Store) {
	t.Helper()
	cli := testenv.EtcdClient(t, f.c.Endpoints)
	cli.KV = replay.ReadOnlyKV(cli.KV)
	store := s3tier.Faulty(f.c.Store, func(op, key string) error {
		if op == s3tier.OpPut || op == s3tier.OpDelete {
			t.Errorf("replay wrote to the bucket: %s %s", op, key)
			return replay.ErrReadOnly
		}
		return nil
	})
	return metastore.New(cli, f.c.Namespace), store
}

// filter returns the records of want in the range (offsets and times
// are per record, the way a replay defines them).
func filter(want []rec, parts []int32, from, to replay.Bound) []rec {
	var out []rec
	for _, r := range want {
		if len(parts) > 0 && !slices.Contains(parts, r.Partition) {
			continue
		}
		if (from.Kind == replay.Offset && r.Offset < from.Offset) || (to.Kind == replay.Offset && r.Offset >= to.Offset) ||
			(from.Kind == replay.Time && r.Timestamp < from.Millis) || (to.Kind == replay.Time && r.Timestamp >= to.Millis) {
			continue
		}
		out = append(out, r)
	}
	return out
}
