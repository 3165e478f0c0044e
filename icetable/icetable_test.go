package icetable_test

import (
	"cmp"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay/replaytest"
	"github.com/shale-dev/shale/s3tier"
)

// kvTopic returns the fixture's topic with shale.iceberg.mode=key_value.
func kvTopic(t *testing.T, ctx context.Context, meta *metastore.Store, name string) metastore.Topic {
	t.Helper()
	tp, err := meta.UpdateTopic(ctx, name, func(tp *metastore.Topic) error {
		if tp.Configs == nil {
			tp.Configs = map[string]string{}
		}
		tp.Configs[icetable.ConfigMode] = string(icetable.ModeKeyValue)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// TestMaterializeKeyValue proves that a key_value table holds every record
// a Kafka consumer reads (all codecs, compacted segments, null and empty
// keys and values, headers), once, in commits bounded by CommitBytes; that
// DuckDB, reading the data files the current snapshot lists, agrees; that
// a pass with nothing new commits nothing; and that Status reports the lag
// before and none after, with the table's rows and snapshots.
func TestMaterializeKeyValue(t *testing.T) {
	f := replaytest.NewFixture(t, 30)
	ctx := replaytest.Ctx(t)
	meta, store := f.C.Meta, f.C.Store
	tp := kvTopic(t, ctx, meta, f.Topic)
	before, err := icetable.Status(ctx, store, meta, tp, time.Now())
	if err != nil || before.Lag != int64(len(f.Want)) || before.Materialized != 0 || before.LagTime != -1 {
		t.Fatalf("status before the first pass: %+v %v, want a lag of %d records, never committed", before, err, len(f.Want))
	}
	var st icetable.Stats
	if err := icetable.MaterializeTopic(ctx, store, meta, tp, icetable.Config{CommitBytes: 16 << 10}, &st); err != nil {
		t.Fatal(err)
	}
	after, err := icetable.Status(ctx, store, meta, tp, time.Now())
	if err != nil || after.Lag != 0 || after.Materialized != int64(len(f.Want)) || after.Rows != int64(len(f.Want)) ||
		after.Snapshots != st.Commits || after.Files < int64(st.Files) || after.LagTime != 0 {
		t.Fatalf("status after: %+v %v; pass %+v", after, err, st)
	}
	if st.Commits < 2 || st.Rows != int64(len(f.Want)) {
		t.Fatalf("stats %+v: want several commits and %d rows", st, len(f.Want))
	}
	tbl, err := icetable.Load(ctx, store, meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	replaytest.CompareRecs(t, "iceberg-go scan", scanTable(t, ctx, tbl), f.Want)
	replaytest.CompareRecs(t, "DuckDB", duckRead(t, ctx, store, tbl), f.Want)
	var again icetable.Stats
	if err := icetable.MaterializeTopic(ctx, store, meta, tp, icetable.Config{}, &again); err != nil {
		t.Fatal(err)
	}
	if again.Commits != 0 {
		t.Fatalf("pass with nothing new: %+v, want no commit", again)
	}
}

// scan reads the table back through iceberg-go's own scan, sorted by
// partition and offset.
func scan(t *testing.T, ctx context.Context, store s3tier.Store, meta *metastore.Store, tp metastore.Topic) []replaytest.Rec {
	t.Helper()
	tbl, err := icetable.Load(ctx, store, meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	return scanTable(t, ctx, tbl)
}

func scanTable(t *testing.T, ctx context.Context, tbl *table.Table) []replaytest.Rec {
	t.Helper()
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	defer at.Release()
	rdr := array.NewTableReader(at, 4096)
	defer rdr.Release()
	var out []replaytest.Rec
	for rdr.Next() {
		out = append(out, recsOf(t, rdr.RecordBatch())...)
	}
	slices.SortFunc(out, func(a, b replaytest.Rec) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return out
}

func binAt(a arrow.Array, i int) []byte {
	if a.IsNull(i) {
		return nil
	}
	switch b := a.(type) {
	case *array.Binary:
		return append([]byte{}, b.Value(i)...)
	case *array.LargeBinary:
		return append([]byte{}, b.Value(i)...)
	case *array.String:
		return []byte(b.Value(i))
	case *array.LargeString:
		return []byte(b.Value(i))
	}
	panic("unexpected binary column " + a.DataType().String())
}

func recsOf(t *testing.T, rec arrow.RecordBatch) []replaytest.Rec {
	t.Helper()
	col := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("scan schema %v: no column %q", rec.Schema(), name)
		}
		return rec.Column(idx[0])
	}
	part := col("partition").(*array.Int32)
	off := col("offset").(*array.Int64)
	ts := col("timestamp").(*array.Timestamp)
	key, val := col("key"), col("value")
	hdrs := col("headers")
	var out []replaytest.Rec
	for i := range int(rec.NumRows()) {
		r := replaytest.Rec{Partition: part.Value(i), Offset: off.Value(i), Timestamp: int64(ts.Value(i)) / 1000,
			Key: binAt(key, i), Value: binAt(val, i)}
		var lo, hi int64
		var elems arrow.Array
		switch l := hdrs.(type) {
		case *array.List:
			lo, hi = l.ValueOffsets(i)
			elems = l.ListValues()
		case *array.LargeList:
			lo, hi = l.ValueOffsets(i)
			elems = l.ListValues()
		default:
			t.Fatalf("headers column %s", hdrs.DataType())
		}
		st := elems.(*array.Struct)
		for j := lo; j < hi; j++ {
			r.Headers = append(r.Headers, kmsg.Header{Key: string(binAt(st.Field(0), int(j))), Value: binAt(st.Field(1), int(j))})
		}
		out = append(out, r)
	}
	return out
}
