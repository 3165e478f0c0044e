// Package replaytest holds what replay's tests and the replay command's
// tests (in cli) share: a fixture topic written through agents with every
// codec and partly compacted, with the records a Kafka consumer read; a
// sink collecting what a replay writes; decoders of the command's outputs
// (JSONL, raw batches, Parquet read back with an independent
// implementation); and record comparisons.
package replaytest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	xreader "github.com/xitongsys/parquet-go/reader"
	xsource "github.com/xitongsys/parquet-go/source"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
)

// Ctx is bounded by the test and a generous timeout.
func Ctx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Rec is a record as compared in tests.
type Rec struct {
	Partition int32
	Offset    int64
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []kmsg.Header
}

func (r Rec) String() string {
	return fmt.Sprintf("%d/%d@%d k=%q(nil=%v) v=%d bytes(nil=%v) h=%d", r.Partition, r.Offset, r.Timestamp, r.Key, r.Key == nil, len(r.Value), r.Value == nil, len(r.Headers))
}

func EqualRec(a, b Rec) bool {
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

// CompareRecs fails t unless got equals want (both in partition, offset order).
func CompareRecs(t testing.TB, what string, got, want []Rec) {
	t.Helper()
	n := min(len(got), len(want))
	for i := range n {
		if !EqualRec(got[i], want[i]) {
			t.Fatalf("%s: record %d: got %v, want %v", what, i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		var extra []Rec
		if len(got) > n {
			extra = got[n:min(len(got), n+3)]
		} else {
			extra = want[n:min(len(want), n+3)]
		}
		t.Fatalf("%s: got %d records, want %d (first difference: %v)", what, len(got), len(want), extra)
	}
}

// CollectSink keeps copies of every record (or, raw, of every batch).
type CollectSink struct {
	raw     bool
	mu      sync.Mutex
	recs    map[int32][]Rec
	Batches map[int32][][]byte
}

func NewCollectSink(raw bool) *CollectSink {
	return &CollectSink{raw: raw, recs: map[int32][]Rec{}, Batches: map[int32][][]byte{}}
}

func (s *CollectSink) Raw() bool    { return s.raw }
func (s *CollectSink) Close() error { return nil }
func (s *CollectSink) Open(p int32) (replay.Writer, error) {
	return &collectWriter{s: s, p: p}, nil
}

// Sorted returns every record, by partition then offset order as written.
func (s *CollectSink) Sorted() []Rec {
	var out []Rec
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
	s *CollectSink
	p int32
}

func (w *collectWriter) WriteRecords(recs []replay.Record) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	for _, r := range recs {
		if r.Partition != w.p {
			return fmt.Errorf("record of partition %d written to %d", r.Partition, w.p)
		}
		c := Rec{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, Key: clone(r.Key), Value: clone(r.Value)}
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
	w.s.Batches[p] = append(w.s.Batches[p], b)
	return nil
}

func (w *collectWriter) Close() error { return nil }

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// Fixture is a topic produced through agents with every codec, part of it
// compacted into segments, with the records a Kafka consumer reads.
type Fixture struct {
	C     *agenttest.Cluster
	Topic string
	Parts int32
	Want  []Rec // by partition, then offset
	MinTs int64
	MaxTs int64
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
	ctx := Ctx(t)
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
func consumeAll(t testing.TB, c *agenttest.Cluster, topic string, parts int32) []Rec {
	t.Helper()
	ctx := Ctx(t)
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
	byPart := map[int32][]Rec{}
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume: %v (pending %v)", ctx.Err(), pending)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("consume %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			c := Rec{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value}
			for _, h := range r.Headers {
				c.Headers = append(c.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
			}
			byPart[r.Partition] = append(byPart[r.Partition], c)
			if r.Offset+1 >= pending[r.Partition] {
				delete(pending, r.Partition)
			}
		})
	}
	var out []Rec
	for p := range parts {
		out = append(out, byPart[p]...)
	}
	return out
}

// NewFixture starts two agents, produces with every codec, compacts part
// of partitions 0 and 1 into segments of small chunks, produces more, and
// reads it all back through a Kafka consumer.
func NewFixture(t testing.TB, perCodec int) *Fixture {
	t.Helper()
	c := agenttest.Start(t, agenttest.Options{Agents: 2})
	f := &Fixture{C: c, Topic: "replay-codecs", Parts: 3}
	ctx := Ctx(t)
	if _, err := c.Admin(t).CreateTopic(ctx, f.Parts, 1, nil, f.Topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	t0 := time.UnixMilli(1_764_064_800_000) // 2025-11-25T10:00:00Z
	produceCodecs(t, c, f.Topic, f.Parts, perCodec, t0, 1)
	tp, err := c.Meta.GetTopic(ctx, f.Topic)
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
	produceCodecs(t, c, f.Topic, f.Parts, perCodec/2, t0.Add(time.Hour), 2)
	f.Want = consumeAll(t, c, f.Topic, f.Parts)
	f.MinTs, f.MaxTs = f.Want[0].Timestamp, f.Want[0].Timestamp
	for _, r := range f.Want {
		f.MinTs, f.MaxTs = min(f.MinTs, r.Timestamp), max(f.MaxTs, r.Timestamp)
	}
	return f
}

// ReadOnly returns a metastore and store for replays: a fresh etcd client
// whose KV refuses writes, and the bucket with writes refused.
func (f *Fixture) ReadOnly(t testing.TB) (*metastore.Store, s3tier.Store) {
	t.Helper()
	cli := testenv.EtcdClient(t, f.C.Endpoints)
	cli.KV = replay.ReadOnlyKV(cli.KV)
	store := s3tier.Faulty(f.C.Store, func(op, key string) error {
		if op == s3tier.OpPut || op == s3tier.OpDelete {
			t.Errorf("replay wrote to the bucket: %s %s", op, key)
			return replay.ErrReadOnly
		}
		return nil
	})
	return metastore.New(cli, f.C.Namespace), store
}

// Filter returns the records of want in the range (offsets and times
// are per record, the way a replay defines them).
func Filter(want []Rec, parts []int32, from, to replay.Bound) []Rec {
	var out []Rec
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

// TimeOf is ms as a UTC time.
func TimeOf(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// DecodeRaw splits a raw replay's bytes into batches and decodes them with
// their absolute offsets (Kafka-native tools see the same), checking each
// batch's own CRC.
func DecodeRaw(t testing.TB, p int32, data []byte) []Rec {
	t.Helper()
	var out []Rec
	next := int64(-1)
	for len(data) > 0 {
		h, err := segment.ParseBatchHeader(data)
		if err != nil {
			t.Fatalf("raw output: %v", err)
		}
		raw := data[:h.Length]
		data = data[h.Length:]
		var kb kmsg.RecordBatch
		if err := kb.ReadFrom(raw); err != nil {
			t.Fatalf("raw batch at %d: %v", h.BaseOffset, err)
		}
		if crc := segment.Checksum(raw[21:]); crc != uint32(kb.CRC) {
			t.Fatalf("raw batch at %d: CRC 0x%08x, batch says 0x%08x", h.BaseOffset, crc, uint32(kb.CRC))
		}
		if next >= 0 && h.BaseOffset < next {
			t.Fatalf("raw batch at %d after one ending at %d", h.BaseOffset, next)
		}
		next = h.BaseOffset + h.OffsetSpan()
		recs, err := segment.DecodeRecords(raw)
		if err != nil {
			t.Fatalf("raw batch at %d: %v", h.BaseOffset, err)
		}
		for _, r := range recs {
			out = append(out, Rec{Partition: p, Offset: h.BaseOffset + int64(r.OffsetDelta), Timestamp: r.Timestamp, Key: r.Key, Value: r.Value, Headers: r.Headers})
		}
	}
	return out
}

type jsonLine struct {
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Timestamp int64   `json:"timestamp"`
	Key       *string `json:"key"`
	Value     *string `json:"value"`
	Headers   []struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	} `json:"headers"`
}

// ParseJSONL reads base64 JSONL output back with encoding/json.
func ParseJSONL(t testing.TB, data []byte) []Rec {
	t.Helper()
	dec := func(s *string) []byte {
		if s == nil {
			return nil
		}
		b, err := base64.StdEncoding.DecodeString(*s)
		if err != nil {
			t.Fatalf("jsonl: bad base64 %q", *s)
		}
		return b
	}
	var out []Rec
	for _, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var l jsonLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("jsonl line %q: %v", line, err)
		}
		r := Rec{Partition: l.Partition, Offset: l.Offset, Timestamp: l.Timestamp, Key: dec(l.Key), Value: dec(l.Value)}
		for _, h := range l.Headers {
			r.Headers = append(r.Headers, kmsg.Header{Key: h.Key, Value: dec(h.Value)})
		}
		out = append(out, r)
	}
	return out
}

// SortRecs orders records by partition, keeping each partition's order
// (stdout interleaves partitions).
func SortRecs(rs []Rec) []Rec {
	byPart := map[int32][]Rec{}
	maxP := int32(0)
	for _, r := range rs {
		byPart[r.Partition] = append(byPart[r.Partition], r)
		maxP = max(maxP, r.Partition)
	}
	var out []Rec
	for p := int32(0); p <= maxP; p++ {
		out = append(out, byPart[p]...)
	}
	return out
}

func Checksum(rs []Rec) uint64 {
	var h uint64
	for _, r := range rs {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(r.Offset)^uint64(r.Partition)<<56^uint64(r.Timestamp)*31)
		h = h*1099511628211 ^ uint64(segment.Checksum(b[:]))
		h = h*1099511628211 ^ uint64(segment.Checksum(r.Key)) ^ boolBit(r.Key == nil)
		h = h*1099511628211 ^ uint64(segment.Checksum(r.Value)) ^ boolBit(r.Value == nil)
	}
	return h
}

func boolBit(b bool) uint64 {
	if b {
		return 1 << 40
	}
	return 0
}

// osFile is xitongsys's source.ParquetFile over a local file.
type osFile struct{ *os.File }

func (f osFile) Open(name string) (xsource.ParquetFile, error) {
	if name == "" {
		name = f.Name()
	}
	o, err := os.Open(name)
	return osFile{o}, err
}

func (f osFile) Create(string) (xsource.ParquetFile, error) {
	return nil, fmt.Errorf("read-only")
}

// ReadParquet reads a replay Parquet file column by column
// with xitongsys/parquet-go, rebuilding records (and their header lists
// from repetition and definition levels).
func ReadParquet(t testing.TB, name string) []Rec {
	t.Helper()
	fh, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	pr, err := xreader.NewParquetColumnReader(osFile{fh}, 1)
	if err != nil {
		t.Fatalf("%s: open: %v", name, err)
	}
	defer pr.ReadStop()
	n := pr.GetNumRows()
	cols := pr.SchemaHandler.ValueColumns
	if len(cols) != 7 {
		t.Fatalf("%s: %d value columns %q, want 7", name, len(cols), cols)
	}
	read := func(i int) ([]any, []int32, []int32) {
		vals, rls, dls, err := pr.ReadColumnByIndex(int64(i), n)
		if err != nil {
			t.Fatalf("%s: column %s: %v", name, cols[i], err)
		}
		return vals, rls, dls
	}
	parts, _, _ := read(0)
	offs, _, _ := read(1)
	tss, _, _ := read(2)
	keys, _, _ := read(3)
	vals, _, _ := read(4)
	hkeys, hrl, hdl := read(5)
	hvals, _, hvdl := read(6)
	if int64(len(parts)) != n || int64(len(offs)) != n || int64(len(keys)) != n || int64(len(vals)) != n {
		t.Fatalf("%s: %d rows, columns hold %d, %d, %d, %d values", name, n, len(parts), len(offs), len(keys), len(vals))
	}
	bs := func(v any) []byte {
		if v == nil {
			return nil
		}
		return []byte(v.(string))
	}
	out := make([]Rec, n)
	for i := range out {
		out[i] = Rec{Partition: parts[i].(int32), Offset: offs[i].(int64), Timestamp: tss[i].(int64), Key: bs(keys[i]), Value: bs(vals[i])}
	}
	row := -1
	for j := range hkeys {
		if hrl[j] == 0 {
			row++
		}
		if hdl[j] == 0 { // an empty list
			continue
		}
		var v []byte
		if hvdl[j] == 2 {
			v = bs(hvals[j])
		}
		out[row].Headers = append(out[row].Headers, kmsg.Header{Key: hkeys[j].(string), Value: v})
	}
	if row != int(n)-1 {
		t.Fatalf("%s: header column spans %d rows, want %d", name, row+1, n)
	}
	return out
}
