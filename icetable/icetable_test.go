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
	// Every commit writes its spans in parallel, a file each (commits
	// this small share files by default: TestKeyValueFilesAtTarget).
	defer icetable.SetKVParallelBytes(0)()
	var st icetable.Stats
	if err := icetable.MaterializeTopic(ctx, store, meta, tp, icetable.Config{CommitBytes: 16 << 10}, &st); err != nil {
		t.Fatal(err)
	}
	// More files than commits: with no rewrite, the files added; with one,
	// the commits' small files it replaced.
	if perSpan := st.Files > st.Commits && st.Rewritten == 0 || st.Rewritten > st.Commits; !perSpan {
		t.Fatalf("pass %+v: want commits of a file per span", st)
	}
	after, err := icetable.Status(ctx, store, meta, tp, time.Now())
	snaps := st.Commits // and the pass's rewrite of small files, if any
	if st.Rewritten > 0 {
		snaps++
	}
	if err != nil || after.Lag != 0 || after.Materialized != int64(len(f.Want)) || after.Rows != int64(len(f.Want)) ||
		after.Snapshots != snaps || after.Files != int64(st.Files-st.Rewritten) || after.LagTime != 0 {
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
	var out []replaytest.Rec
	for _, r := range scanRows(t, ctx, tbl, kvNames) {
		out = append(out, r.Rec)
	}
	return out
}

// Metadata column names of key_value and json tables: partition, offset,
// timestamp, key, value (json: _raw), headers.
var (
	kvNames   = [6]string{"partition", "offset", "timestamp", "key", "value", "headers"}
	jsonNames = [6]string{"_partition", "_offset", "_timestamp", "_key", "_raw", "_headers"}
)

// scanRows reads the table with iceberg-go's scan, in partition, offset
// order; columns other than names are the rows' Cols (non-null values).
func scanRows(t *testing.T, ctx context.Context, tbl *table.Table, names [6]string) []jsonRow {
	t.Helper()
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	defer at.Release()
	rdr := array.NewTableReader(at, 4096)
	defer rdr.Release()
	var out []jsonRow
	for rdr.Next() {
		out = append(out, recsOf(t, rdr.RecordBatch(), names)...)
	}
	slices.SortFunc(out, func(a, b jsonRow) int {
		return cmp.Or(cmp.Compare(a.Rec.Partition, b.Rec.Partition), cmp.Compare(a.Rec.Offset, b.Rec.Offset))
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

func recsOf(t *testing.T, rec arrow.RecordBatch, names [6]string) []jsonRow {
	t.Helper()
	col := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("scan schema %v: no column %q", rec.Schema(), name)
		}
		return rec.Column(idx[0])
	}
	part := col(names[0]).(*array.Int32)
	off := col(names[1]).(*array.Int64)
	ts := col(names[2]).(*array.Timestamp)
	key, val := col(names[3]), col(names[4])
	hdrs := col(names[5])
	var out []jsonRow
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
		var cols map[string]any
		for c, f := range rec.Schema().Fields() {
			if slices.Contains(names[:], f.Name) || rec.Column(c).IsNull(i) {
				continue
			}
			if cols == nil {
				cols = map[string]any{}
			}
			switch a := rec.Column(c).(type) {
			case *array.Boolean:
				cols[f.Name] = a.Value(i)
			case *array.Float64:
				cols[f.Name] = a.Value(i)
			case *array.String:
				cols[f.Name] = a.Value(i)
			case *array.LargeString:
				cols[f.Name] = a.Value(i)
			default:
				t.Fatalf("column %s of type %s", f.Name, f.Type)
			}
		}
		out = append(out, jsonRow{r, cols})
	}
	return out
}
