package icetable

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
	"golang.org/x/sync/errgroup"

	"github.com/shale-dev/shale/replay"
)

// writeBatch writes rec, rows of a table of schema sc (its columns by
// name; json tables' value columns too), as Parquet data files with
// parquet-go, as key_value commits write theirs (Data files in doc.go):
// one file per table partition its timestamps fall in (up to 4 written
// at once), a next one each time a file reaches the target size, the
// table's field IDs on every column. It returns the files' locations.
func (h *handle) writeBatch(ctx context.Context, sc *iceberg.Schema, rec arrow.RecordBatch) ([]string, error) {
	ps, err := parquetSchema(sc)
	if err != nil {
		return nil, err
	}
	enc, err := newRowEncoder(ps, rec)
	if err != nil {
		return nil, err
	}
	ts, ok := rec.Column(2).(*array.Timestamp)
	if !ok {
		return nil, fmt.Errorf("column %s: %s, want a timestamp", rec.Schema().Field(2).Name, rec.Column(2).DataType())
	}
	// The rows of each table partition, in order.
	probe := newKVWriter(ctx, h)
	var buckets []int64
	rowsOf := map[int64][]int{}
	for i := range int(rec.NumRows()) {
		b := probe.bucket(int64(ts.Value(i)))
		if rowsOf[b] == nil {
			buckets = append(buckets, b)
		}
		rowsOf[b] = append(rowsOf[b], i)
	}
	var (
		paths []string
		mu    sync.Mutex
	)
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, b := range buckets {
		g.Go(func() error {
			w := newKVWriter(ctx, h)
			ps, err := w.writeRows(b, ps, enc, rowsOf[b])
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			paths = append(paths, ps...)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.Sort(paths)
	return paths, nil
}

// writeRows writes the rows idx of enc's batch, all of table partition
// bucket, as files of schema ps; it returns their locations.
func (w *kvWriter) writeRows(bucket int64, ps *parquet.Schema, enc *rowEncoder, idx []int) ([]string, error) {
	f := &kvFile{bucket: bucket}
	var (
		rows  []parquet.Row
		bytes int64
		err   error
	)
	flush := func() error {
		if f.out == nil {
			if err := w.create(f); err != nil {
				return err
			}
			f.rf = replay.NewParquetFile[any](f.out, w.groupBytes(), ps)
		}
		grouped, err := f.rf.WriteRows(rows, bytes)
		rows, bytes = rows[:0], 0
		if err == nil && grouped && f.rf.Size() >= w.target {
			pf, out := f.rf, f.out
			f.rf, f.out = nil, nil
			if err = pf.Close(); err != nil {
				discard(out)
			} else if err = out.Close(); err == nil {
				w.done = append(w.done, f.path)
			}
		}
		return err
	}
	for _, i := range idx {
		row, n := enc.row(i)
		rows = append(rows, row)
		bytes += n
		if len(rows) == 256 {
			if err = flush(); err != nil {
				break
			}
		}
	}
	if err == nil && len(rows) > 0 {
		err = flush()
	}
	if f.rf != nil {
		if err == nil {
			err = f.rf.Close()
		}
		if err != nil {
			discard(f.out)
		} else if err = f.out.Close(); err == nil {
			w.done = append(w.done, f.path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("table %s: %s: %w", w.h.topic.Name, f.path, err)
	}
	return w.done, nil
}

// rowEncoder turns the rows of an Arrow batch into parquet-go rows of a
// schema: top-level fields by name, each leaf a column in the schema's
// order. Supported: the types of shale's tables (int, long,
// timestamptz, binary, string, boolean, double, and the headers'
// list<struct<key string, value binary>>).
type rowEncoder struct {
	fields []fieldEncoder
}

// fieldEncoder appends the values of row i of one top-level field,
// from column index col on, and returns the record bytes they hold.
type fieldEncoder func(row parquet.Row, i int) (parquet.Row, int64)

func newRowEncoder(ps *parquet.Schema, rec arrow.RecordBatch) (*rowEncoder, error) {
	e := &rowEncoder{}
	col := 0
	for _, f := range ps.Fields() {
		idx := rec.Schema().FieldIndices(f.Name())
		if len(idx) != 1 {
			return nil, fmt.Errorf("column %s: not once in the rows (%d)", f.Name(), len(idx))
		}
		a := rec.Column(idx[0])
		if !f.Leaf() {
			enc, err := headersEncoder(f, a, col)
			if err != nil {
				return nil, err
			}
			e.fields = append(e.fields, enc)
			col += 2
			continue
		}
		val, err := leafValue(a)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name(), err)
		}
		c, optional := col, f.Optional()
		e.fields = append(e.fields, func(row parquet.Row, i int) (parquet.Row, int64) {
			if a.IsNull(i) {
				return append(row, parquet.Value{}.Level(0, 0, c)), 0
			}
			v, n := val(i)
			def := 0
			if optional {
				def = 1
			}
			return append(row, v.Level(0, def, c)), n
		})
		col++
	}
	return e, nil
}

// row returns row i and its record bytes.
func (e *rowEncoder) row(i int) (parquet.Row, int64) {
	row := make(parquet.Row, 0, len(e.fields)+2)
	var bytes int64
	for _, f := range e.fields {
		var n int64
		row, n = f(row, i)
		bytes += n
	}
	return row, bytes
}

// leafValue returns the parquet-go value of row i of a, and its bytes.
func leafValue(a arrow.Array) (func(int) (parquet.Value, int64), error) {
	switch a := a.(type) {
	case *array.Int32:
		return func(i int) (parquet.Value, int64) { return parquet.Int32Value(a.Value(i)), 4 }, nil
	case *array.Int64:
		return func(i int) (parquet.Value, int64) { return parquet.Int64Value(a.Value(i)), 8 }, nil
	case *array.Timestamp:
		return func(i int) (parquet.Value, int64) { return parquet.Int64Value(int64(a.Value(i))), 8 }, nil
	case *array.Binary:
		return func(i int) (parquet.Value, int64) { v := a.Value(i); return parquet.ByteArrayValue(v), int64(len(v)) }, nil
	case *array.String:
		return func(i int) (parquet.Value, int64) {
			v := a.Value(i)
			return parquet.ByteArrayValue([]byte(v)), int64(len(v))
		}, nil
	case *array.Boolean:
		return func(i int) (parquet.Value, int64) { return parquet.BooleanValue(a.Value(i)), 1 }, nil
	case *array.Float64:
		return func(i int) (parquet.Value, int64) { return parquet.DoubleValue(a.Value(i)), 8 }, nil
	}
	return nil, fmt.Errorf("arrow type %s: no Parquet column", a.DataType())
}

// headersEncoder encodes a required list<struct<key string (required),
// value binary (optional)>> column (the headers): leaf columns col (key)
// and col+1 (value), repetition level 1 for each element after the
// first, definition levels 1 (element) and 2 (value set); an empty list
// is one null of each at level 0.
func headersEncoder(f parquet.Field, a arrow.Array, col int) (fieldEncoder, error) {
	l, ok := a.(*array.List)
	if !ok {
		return nil, fmt.Errorf("column %s: %s, want the headers' list", f.Name(), a.DataType())
	}
	st, ok := l.ListValues().(*array.Struct)
	if !ok || st.NumField() != 2 {
		return nil, fmt.Errorf("column %s: %s, want a list of structs of key and value", f.Name(), a.DataType())
	}
	keys, ok1 := st.Field(0).(*array.String)
	vals, ok2 := st.Field(1).(*array.Binary)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("column %s: %s, want a list of structs of key string and value binary", f.Name(), a.DataType())
	}
	return func(row parquet.Row, i int) (parquet.Row, int64) {
		start, end := l.ValueOffsets(i)
		if start == end {
			return append(row, parquet.Value{}.Level(0, 0, col), parquet.Value{}.Level(0, 0, col+1)), 0
		}
		var n int64
		for j := start; j < end; j++ {
			rep := 1
			if j == start {
				rep = 0
			}
			k := keys.Value(int(j))
			n += int64(len(k))
			row = append(row, parquet.ByteArrayValue([]byte(k)).Level(rep, 1, col))
		}
		for j := start; j < end; j++ {
			rep := 1
			if j == start {
				rep = 0
			}
			if vals.IsNull(int(j)) {
				row = append(row, parquet.Value{}.Level(rep, 1, col+1))
				continue
			}
			v := vals.Value(int(j))
			n += int64(len(v))
			row = append(row, parquet.ByteArrayValue(v).Level(rep, 2, col+1))
		}
		return row, n
	}, nil
}
