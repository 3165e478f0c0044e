package replay_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/cli"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/segment"
)

// TestReplay proves that, with every agent stopped, a replay from etcd and
// the bucket alone outputs exactly what a Kafka consumer read through the
// agents (same records, offsets, timestamps, keys, values, headers, order
// per partition) for a topic written with every codec, part compacted into
// segments, over offset and time ranges including their edge cases; that
// raw output is the stored batches with absolute offsets; that JSONL and
// Parquet through the command match too; and that nothing is written.
func TestReplay(t *testing.T) {
	f := newFixture(t, 120)
	for _, a := range f.c.Agents {
		if err := a.Stop(); err != nil {
			t.Fatalf("stop agent: %v", err)
		}
	}
	meta, store := f.readOnly(t)
	ctx := testCtx(t)
	tp, err := meta.GetTopic(ctx, f.topic)
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64 // next offset per partition
	kinds := map[metastore.EntryKind]int{}
	for p := range f.parts {
		st, err := meta.PartitionState(ctx, tp.ID, p)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, st.NextOffset)
		if err := meta.ScanEntries(ctx, tp.ID, p, 0, func(e metastore.IndexEntry) bool { kinds[e.Kind]++; return true }); err != nil {
			t.Fatal(err)
		}
	}
	if kinds[metastore.EntrySegment] == 0 || kinds[metastore.EntryChunk] == 0 {
		t.Fatalf("fixture index entries by kind %v: want both chunk and segment entries", kinds)
	}
	t.Logf("%d records, partition ends %v, index entries by kind %v", len(f.want), ends, kinds)
	// A timestamp that several records share, and one carried only by an
	// out-of-order record.
	mid := f.want[len(f.want)/2]
	var ooo rec
	for i, r := range f.want[1:] {
		if r.Partition == f.want[i].Partition && r.Timestamp < f.want[i].Timestamp {
			ooo = r
			break
		}
	}
	if ooo.Value == nil && ooo.Offset == 0 {
		t.Fatal("fixture has no out-of-order timestamp")
	}
	at := replay.AtOffset
	ts := func(ms int64) replay.Bound { return replay.Bound{Kind: replay.Time, Millis: ms} }
	open := replay.Bound{}
	tests := []struct {
		name     string
		parts    []int32
		from, to replay.Bound
		wantN    int // -1: not checked beyond the filter
	}{
		{"everything", nil, open, open, len(f.want)},
		{"first record", nil, at(0), at(1), int(f.parts)},
		{"last record of p2", []int32{2}, at(ends[2] - 1), at(ends[2]), 1},
		{"empty range", nil, at(5), at(5), 0},
		{"beyond the end", nil, at(ends[0] + ends[1] + ends[2]), at(1 << 40), 0},
		{"from the end", nil, at(ends[0]), open, 0},
		{"middle offsets", []int32{0, 2}, at(100), at(700), -1},
		{"offsets across compacted and fresh", []int32{0, 1}, at(ends[0] - 150), at(ends[0] - 20), -1},
		{"all times", nil, ts(f.minTs), ts(f.maxTs + 1), len(f.want)},
		{"to the last timestamp, exclusive", nil, open, ts(f.maxTs), -1},
		{"from the last timestamp", nil, ts(f.maxTs), open, -1},
		{"time window", nil, ts(mid.Timestamp - 500), ts(mid.Timestamp + 700), -1},
		{"one out-of-order instant", nil, ts(ooo.Timestamp), ts(ooo.Timestamp + 1), -1},
		{"time beyond the end", nil, ts(f.maxTs + 1), open, 0},
		{"time before the start", nil, open, ts(f.minTs), 0},
		{"offset from, time to", []int32{1}, at(50), ts(mid.Timestamp), -1},
		{"time from, offset to", nil, ts(mid.Timestamp), at(ends[1] - 10), -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := filter(f.want, tc.parts, tc.from, tc.to)
			if tc.wantN >= 0 && len(want) != tc.wantN {
				t.Fatalf("test case expects %d records, the filter gives %d", tc.wantN, len(want))
			}
			if tc.wantN < 0 && len(want) == 0 {
				t.Fatalf("test case expects records, the filter gives none")
			}
			sink := newCollectSink(false)
			_, err := replay.Run(ctx, meta, store, replay.Options{Topic: f.topic, Partitions: tc.parts, From: tc.from, To: tc.to, Parallel: 3, ReadAhead: 64 << 10}, sink, nil)
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			compareRecs(t, "replay", sink.sorted(), want)

			// Raw: whole batches with absolute offsets, covering the range.
			rawSink := newCollectSink(true)
			if _, err := replay.Run(ctx, meta, store, replay.Options{Topic: f.topic, Partitions: tc.parts, From: tc.from, To: tc.to}, rawSink, nil); err != nil {
				t.Fatalf("raw replay: %v", err)
			}
			var got []rec
			for p := range f.parts {
				got = append(got, decodeRaw(t, p, bytes.Join(rawSink.batches[p], nil))...)
			}
			compareRecs(t, "raw replay", filter(got, nil, tc.from, tc.to), want)
		})
	}
	t.Run("from after to", func(t *testing.T) {
		for _, r := range [][2]replay.Bound{{at(10), at(9)}, {ts(f.maxTs), ts(f.minTs)}} {
			_, err := replay.Run(ctx, meta, store, replay.Options{Topic: f.topic, From: r[0], To: r[1]}, newCollectSink(false), nil)
			if !errors.Is(err, replay.ErrBadRange) {
				t.Errorf("from %s to %s: got %v, want ErrBadRange", r[0], r[1], err)
			}
		}
	})
	t.Run("missing topic and partition", func(t *testing.T) {
		if _, err := replay.NewPlan(ctx, meta, replay.Options{Topic: "nope"}); !errors.Is(err, metastore.ErrTopicNotFound) {
			t.Errorf("missing topic: %v", err)
		}
		if _, err := replay.NewPlan(ctx, meta, replay.Options{Topic: f.topic, Partitions: []int32{f.parts}}); !errors.Is(err, metastore.ErrPartitionMissing) {
			t.Errorf("missing partition: %v", err)
		}
	})
	t.Run("command jsonl", func(t *testing.T) {
		// The command, read-only itself, against etcd + bucket directory.
		from, to := replay.AtTime(timeOf(mid.Timestamp-2000)), replay.AtTime(timeOf(mid.Timestamp+2000))
		var out, errb bytes.Buffer
		code := cli.Execute(ctx, []string{"replay", "-t", f.topic, "--from", from.String(), "--to", to.String(), "--bytes", "base64",
			"--etcd-endpoints", strings.Join(f.c.Endpoints, ","), "--etcd-namespace", f.c.Namespace, "--bucket", f.c.BucketDir},
			nil, &out, &errb)
		if code != 0 {
			t.Fatalf("shale replay: exit %d: %s", code, errb.String())
		}
		compareRecs(t, "shale replay --format jsonl", sortRecs(parseJSONL(t, out.Bytes())), filter(f.want, nil, from, to))
		if errb.Len() != 0 {
			t.Errorf("stderr is not a terminal, yet got %q", errb.String())
		}
	})
	t.Run("command raw to directory", func(t *testing.T) {
		dir := t.TempDir()
		var errb bytes.Buffer
		if code := cli.Execute(ctx, []string{"replay", "-t", f.topic, "--format", "raw", "--out", dir,
			"--etcd-endpoints", strings.Join(f.c.Endpoints, ","), "--etcd-namespace", f.c.Namespace, "--bucket", f.c.BucketDir},
			nil, &bytes.Buffer{}, &errb); code != 0 {
			t.Fatalf("shale replay: exit %d: %s", code, errb.String())
		}
		var got []rec
		for p := range f.parts {
			data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s-%d.kafka", f.topic, p)))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, decodeRaw(t, p, data)...)
		}
		compareRecs(t, "raw files", got, f.want)
	})
	t.Run("command errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"--from", "10", "--to", "9"},
			{"--format", "parquet"},
			{"--format", "raw"}, // several partitions to stdout
			{"--bytes", "hex"},
		} {
			var errb bytes.Buffer
			full := append([]string{"replay", "-t", f.topic, "--etcd-endpoints", strings.Join(f.c.Endpoints, ","),
				"--etcd-namespace", f.c.Namespace, "--bucket", f.c.BucketDir}, args...)
			if code := cli.Execute(ctx, full, nil, &bytes.Buffer{}, &errb); code == 0 {
				t.Errorf("shale replay %v: exit 0, want an error", args)
			}
		}
	})
	t.Run("parquet", func(t *testing.T) { testParquet(t, f) })
}

// decodeRaw splits a raw replay's bytes into batches and decodes them with
// their absolute offsets (Kafka-native tools see the same), checking each
// batch's own CRC.
func decodeRaw(t testing.TB, p int32, data []byte) []rec {
	t.Helper()
	var out []rec
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
			out = append(out, rec{Partition: p, Offset: h.BaseOffset + int64(r.OffsetDelta), Timestamp: r.Timestamp, Key: r.Key, Value: r.Value, Headers: r.Headers})
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

// parseJSONL reads base64 JSONL output back with encoding/json.
func parseJSONL(t testing.TB, data []byte) []rec {
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
	var out []rec
	for _, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var l jsonLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("jsonl line %q: %v", line, err)
		}
		r := rec{Partition: l.Partition, Offset: l.Offset, Timestamp: l.Timestamp, Key: dec(l.Key), Value: dec(l.Value)}
		for _, h := range l.Headers {
			r.Headers = append(r.Headers, kmsg.Header{Key: h.Key, Value: dec(h.Value)})
		}
		out = append(out, r)
	}
	return out
}

// sortRecs orders records by partition, keeping each partition's order
// (stdout interleaves partitions).
func sortRecs(rs []rec) []rec {
	byPart := map[int32][]rec{}
	maxP := int32(0)
	for _, r := range rs {
		byPart[r.Partition] = append(byPart[r.Partition], r)
		maxP = max(maxP, r.Partition)
	}
	var out []rec
	for p := int32(0); p <= maxP; p++ {
		out = append(out, byPart[p]...)
	}
	return out
}

func checksum(rs []rec) uint64 {
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
