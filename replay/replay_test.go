package replay_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/replay/replaytest"
)

// TestReplay proves that, with every agent stopped, a replay from etcd and
// the bucket alone outputs exactly what a Kafka consumer read through the
// agents (same records, offsets, timestamps, keys, values, headers, order
// per partition) for a topic written with every codec, part compacted into
// segments, over offset and time ranges including their edge cases; that
// raw output is the stored batches with absolute offsets; and that nothing
// is written. The command's outputs are tested in cli (TestReplayCommand).
func TestReplay(t *testing.T) {
	f := replaytest.NewFixture(t, 120)
	for _, a := range f.C.Agents {
		if err := a.Stop(); err != nil {
			t.Fatalf("stop agent: %v", err)
		}
	}
	meta, store := f.ReadOnly(t)
	ctx := replaytest.Ctx(t)
	tp, err := meta.GetTopic(ctx, f.Topic)
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64 // next offset per partition
	kinds := map[metastore.EntryKind]int{}
	for p := range f.Parts {
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
		t.Fatalf("Fixture index entries by kind %v: want both chunk and segment entries", kinds)
	}
	t.Logf("%d records, partition ends %v, index entries by kind %v", len(f.Want), ends, kinds)
	// A timestamp that several records share, and one carried only by an
	// out-of-order record.
	mid := f.Want[len(f.Want)/2]
	var ooo replaytest.Rec
	for i, r := range f.Want[1:] {
		if r.Partition == f.Want[i].Partition && r.Timestamp < f.Want[i].Timestamp {
			ooo = r
			break
		}
	}
	if ooo.Value == nil && ooo.Offset == 0 {
		t.Fatal("Fixture has no out-of-order timestamp")
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
		{"everything", nil, open, open, len(f.Want)},
		{"first record", nil, at(0), at(1), int(f.Parts)},
		{"last record of p2", []int32{2}, at(ends[2] - 1), at(ends[2]), 1},
		{"empty range", nil, at(5), at(5), 0},
		{"beyond the end", nil, at(ends[0] + ends[1] + ends[2]), at(1 << 40), 0},
		{"from the end", nil, at(ends[0]), open, 0},
		{"middle offsets", []int32{0, 2}, at(100), at(700), -1},
		{"offsets across compacted and fresh", []int32{0, 1}, at(ends[0] - 150), at(ends[0] - 20), -1},
		{"all times", nil, ts(f.MinTs), ts(f.MaxTs + 1), len(f.Want)},
		{"to the last timestamp, exclusive", nil, open, ts(f.MaxTs), -1},
		{"from the last timestamp", nil, ts(f.MaxTs), open, -1},
		{"time window", nil, ts(mid.Timestamp - 500), ts(mid.Timestamp + 700), -1},
		{"one out-of-order instant", nil, ts(ooo.Timestamp), ts(ooo.Timestamp + 1), -1},
		{"time beyond the end", nil, ts(f.MaxTs + 1), open, 0},
		{"time before the start", nil, open, ts(f.MinTs), 0},
		{"offset from, time to", []int32{1}, at(50), ts(mid.Timestamp), -1},
		{"time from, offset to", nil, ts(mid.Timestamp), at(ends[1] - 10), -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := replaytest.Filter(f.Want, tc.parts, tc.from, tc.to)
			if tc.wantN >= 0 && len(want) != tc.wantN {
				t.Fatalf("test case expects %d records, the filter gives %d", tc.wantN, len(want))
			}
			if tc.wantN < 0 && len(want) == 0 {
				t.Fatalf("test case expects records, the filter gives none")
			}
			sink := replaytest.NewCollectSink(false)
			_, err := replay.Run(ctx, meta, store, replay.Options{Topic: f.Topic, Partitions: tc.parts, From: tc.from, To: tc.to, Parallel: 3, ReadAhead: 64 << 10}, sink, nil)
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			replaytest.CompareRecs(t, "replay", sink.Sorted(), want)

			// Raw: whole batches with absolute offsets, covering the range.
			rawSink := replaytest.NewCollectSink(true)
			if _, err := replay.Run(ctx, meta, store, replay.Options{Topic: f.Topic, Partitions: tc.parts, From: tc.from, To: tc.to}, rawSink, nil); err != nil {
				t.Fatalf("raw replay: %v", err)
			}
			var got []replaytest.Rec
			for p := range f.Parts {
				got = append(got, replaytest.DecodeRaw(t, p, bytes.Join(rawSink.Batches[p], nil))...)
			}
			replaytest.CompareRecs(t, "raw replay", replaytest.Filter(got, nil, tc.from, tc.to), want)
		})
	}
	t.Run("from after to", func(t *testing.T) {
		for _, r := range [][2]replay.Bound{{at(10), at(9)}, {ts(f.MaxTs), ts(f.MinTs)}} {
			_, err := replay.Run(ctx, meta, store, replay.Options{Topic: f.Topic, From: r[0], To: r[1]}, replaytest.NewCollectSink(false), nil)
			if !errors.Is(err, replay.ErrBadRange) {
				t.Errorf("from %s to %s: got %v, want ErrBadRange", r[0], r[1], err)
			}
		}
	})
	t.Run("missing topic and partition", func(t *testing.T) {
		if _, err := replay.NewPlan(ctx, meta, replay.Options{Topic: "nope"}); !errors.Is(err, metastore.ErrTopicNotFound) {
			t.Errorf("missing topic: %v", err)
		}
		if _, err := replay.NewPlan(ctx, meta, replay.Options{Topic: f.Topic, Partitions: []int32{f.Parts}}); !errors.Is(err, metastore.ErrPartitionMissing) {
			t.Errorf("missing partition: %v", err)
		}
	})
}

// TestParquetSchema pins the documented schema.
func TestParquetSchema(t *testing.T) {
	dir := t.TempDir()
	w, err := replay.Parquet(dir, "s", 0).Open(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecords([]replay.Record{{Offset: 1, Timestamp: 2, Key: []byte{}, Headers: []kmsg.Header{{Key: "a"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs := replaytest.ReadParquet(t, filepath.Join(dir, "s-0-000000.parquet"))
	want := []replaytest.Rec{{Offset: 1, Timestamp: 2, Key: []byte{}, Headers: []kmsg.Header{{Key: "a"}}}}
	replaytest.CompareRecs(t, "schema round trip", recs, want)
}
