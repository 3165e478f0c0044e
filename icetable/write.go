package icetable

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"

	"github.com/shale-dev/shale/replay"
)

// kvRow is one key_value table row as parquet-go writes it: the fields in
// name order, the order of parquetSchema's groups, so that the schema
// with field IDs equals kvRow's and parquet-go maps the fields straight
// to their columns.
type kvRow struct {
	Headers   []kvHeader `parquet:"headers,list"`
	Key       []byte     `parquet:"key,optional"`
	Offset    int64      `parquet:"offset"`
	Partition int32      `parquet:"partition"`
	Timestamp int64      `parquet:"timestamp,timestamp(microsecond)"`
	Value     []byte     `parquet:"value,optional"`
}

type kvHeader struct {
	Key   string `parquet:"key"`
	Value []byte `parquet:"value,optional"`
}

// kvSchema is the Parquet schema of key_value data files: kvRow's, with
// the table's Iceberg field IDs (readers map columns by ID).
var kvSchema = func() *parquet.Schema {
	sc, _ := tableSchema(ModeKeyValue, PartitionDay)
	ps, err := parquetSchema(sc)
	if err != nil {
		panic(err)
	}
	if !parquet.EqualNodes(ps, parquet.SchemaOf(kvRow{})) {
		panic(fmt.Sprintf("icetable: kvRow %v does not match the key_value schema %v", parquet.SchemaOf(kvRow{}), ps))
	}
	return ps
}()

// parquetSchema is the Parquet schema of an Iceberg schema, with field IDs
// on every field and list element. Groups order their fields by name
// (parquet-go's Group).
func parquetSchema(sc *iceberg.Schema) (*parquet.Schema, error) {
	g := parquet.Group{}
	for _, f := range sc.Fields() {
		n, err := parquetNode(f)
		if err != nil {
			return nil, err
		}
		g[f.Name] = n
	}
	return parquet.NewSchema("table", g), nil
}

func parquetNode(f iceberg.NestedField) (parquet.Node, error) {
	n, err := parquetType(f.Type)
	if err != nil {
		return nil, fmt.Errorf("column %s: %w", f.Name, err)
	}
	if !f.Required {
		n = parquet.Optional(n)
	}
	return parquet.FieldID(n, f.ID), nil
}

func parquetType(t iceberg.Type) (parquet.Node, error) {
	switch t := t.(type) {
	case iceberg.Int32Type:
		return parquet.Int(32), nil
	case iceberg.Int64Type:
		return parquet.Int(64), nil
	case iceberg.TimestampTzType:
		return parquet.Timestamp(parquet.Microsecond), nil
	case iceberg.BinaryType:
		return parquet.Leaf(parquet.ByteArrayType), nil
	case iceberg.StringType:
		return parquet.String(), nil
	case iceberg.BooleanType:
		return parquet.Leaf(parquet.BooleanType), nil
	case iceberg.Float64Type:
		return parquet.Leaf(parquet.DoubleType), nil
	case *iceberg.ListType:
		elem, err := parquetNode(iceberg.NestedField{ID: t.ElementID, Name: "element", Type: t.Element, Required: t.ElementRequired})
		if err != nil {
			return nil, err
		}
		return parquet.List(elem), nil
	case *iceberg.StructType:
		g := parquet.Group{}
		for _, f := range t.FieldList {
			n, err := parquetNode(f)
			if err != nil {
				return nil, err
			}
			g[f.Name] = n
		}
		return g, nil
	}
	return nil, fmt.Errorf("no Parquet type for %s", t)
}

// kvWriter writes the rows of one Kafka partition's span of a commit,
// in offset order, as one data file per table partition (day or hour of
// the timestamp) the span touches, and a next one each time a file
// reaches the table's target size. Spans write in parallel.
type kvWriter struct {
	h      *handle
	ctx    context.Context
	hour   bool   // partitioned by hour (else day)
	field  string // the partition field's name (timestamp_day, ...)
	target int64  // shale.iceberg.target.file.bytes
	files  map[int64]*kvFile
	last   *kvFile // the file of the previous record
	dirty  []*kvFile
	done   []string // files complete and uploaded
	rows   int64
	closed bool
}

// kvFile is one data file being written: rows of one table partition.
type kvFile struct {
	bucket  int64 // days or hours since the epoch
	path    string
	out     icebergio.FileWriter
	pf      *replay.ParquetFile[kvRow]
	rf      *replay.ParquetFile[any] // writeRows' file
	rows    []kvRow
	headers []kvHeader
	bytes   int64 // record bytes in rows
}

const (
	microsPerHour = int64(time.Hour / time.Microsecond)
	microsPerDay  = 24 * microsPerHour
)

func newKVWriter(ctx context.Context, h *handle) *kvWriter {
	gran := PartitionOf(h.topic.Configs)
	_, field := partitionField(h.tbl.Schema().Fields()[2].Name, gran)
	return &kvWriter{h: h, ctx: ctx, hour: gran == PartitionHour, field: field, target: TargetFileBytesOf(h.topic.Configs),
		files: map[int64]*kvFile{}}
}

// bucket is the table partition of a timestamp in microseconds: days or
// hours since the epoch, rounded down (Iceberg's day and hour transforms).
func (w *kvWriter) bucket(micros int64) int64 {
	unit := microsPerDay
	if w.hour {
		unit = microsPerHour
	}
	b := micros / unit
	if micros%unit < 0 {
		b--
	}
	return b
}

// add buffers one record's row in its table partition's file.
func (w *kvWriter) add(r replay.Record) {
	micros := r.Timestamp * 1000
	f := w.file(micros)
	hs := len(f.headers)
	for _, h := range r.Headers {
		f.headers = append(f.headers, kvHeader{Key: h.Key, Value: h.Value})
	}
	f.rows = append(f.rows, kvRow{Partition: r.Partition, Offset: r.Offset, Timestamp: micros, Key: r.Key, Value: r.Value,
		Headers: f.headers[hs:len(f.headers):len(f.headers)]})
	f.bytes += replay.RecordBytes(r)
	w.rows++
}

// addRow buffers a row read from a data file (a rewrite), of n record
// bytes; the row's memory must stay valid until the next flush.
func (w *kvWriter) addRow(row kvRow, n int64) {
	f := w.file(row.Timestamp)
	f.rows = append(f.rows, row)
	f.bytes += n
	w.rows++
}

// file returns the file of the table partition of a timestamp in
// microseconds, marked as holding rows to flush.
func (w *kvWriter) file(micros int64) *kvFile {
	f := w.last
	if f == nil || w.bucket(micros) != f.bucket {
		b := w.bucket(micros)
		if f = w.files[b]; f == nil {
			f = &kvFile{bucket: b}
			w.files[b] = f
		}
		w.last = f
	}
	if len(f.rows) == 0 {
		w.dirty = append(w.dirty, f)
	}
	return f
}

// flush writes the rows buffered since the last flush (one decoded
// batch's) to their files, opening a file the first time.
func (w *kvWriter) flush() error {
	for _, f := range w.dirty {
		if f.pf == nil {
			if err := w.open(f); err != nil {
				return err
			}
		}
		grouped, err := f.pf.Write(f.rows, f.bytes)
		clear(f.rows) // drop references to the decoded batch
		clear(f.headers)
		f.rows, f.headers, f.bytes = f.rows[:0], f.headers[:0], 0
		if err == nil && grouped && f.pf.Size() >= w.target {
			err = w.close(f) // the next rows go to a new file
		}
		if err != nil {
			return fmt.Errorf("table %s: %s: %w", w.h.topic.Name, f.path, err)
		}
	}
	w.dirty = w.dirty[:0]
	return nil
}

// close completes and uploads f's file; f's next rows begin another.
func (w *kvWriter) close(f *kvFile) error {
	pf, out := f.pf, f.out
	f.pf, f.out = nil, nil
	if err := pf.Close(); err != nil {
		discard(out)
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	w.done = append(w.done, f.path)
	return nil
}

func (w *kvWriter) open(f *kvFile) error {
	if err := w.create(f); err != nil {
		return err
	}
	f.pf = replay.NewParquetFile[kvRow](f.out, w.groupBytes(), kvSchema)
	return nil
}

// create begins f's next data file in the bucket:
// data/<field>=<day or hour>/<uuid>.parquet.
func (w *kvWriter) create(f *kvFile) error {
	unit, layout := microsPerDay, "2006-01-02"
	if w.hour {
		unit, layout = microsPerHour, "2006-01-02-15"
	}
	value := time.UnixMicro(f.bucket * unit).UTC().Format(layout)
	f.path = fmt.Sprintf("%s/data/%s=%s/%s.parquet", w.h.location(), w.field, value, uuid.New())
	out, err := w.h.fsio.Create(f.path)
	if err != nil {
		return err
	}
	f.out = out
	return nil
}

// groupBytes is the record data of a row group: 8 MiB, or a quarter of
// a smaller target (the file size is checked after each row group).
func (w *kvWriter) groupBytes() int64 { return min(8<<20, max(w.target/4, 1)) }

// finish completes and uploads the files (in parallel) and returns their
// locations; after an error (or with abort), nothing is uploaded.
func (w *kvWriter) finish(abort bool) ([]string, error) {
	if w.closed {
		return nil, nil
	}
	w.closed = true
	var (
		mu    sync.Mutex
		paths = w.done
		first error
		wg    sync.WaitGroup
	)
	for _, f := range w.files {
		if f.pf == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := error(nil)
			if !abort {
				err = f.pf.Close()
			}
			if abort || err != nil {
				discard(f.out)
			} else {
				err = f.out.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				paths = append(paths, f.path)
			case first == nil:
				first = fmt.Errorf("table %s: %s: %w", w.h.topic.Name, f.path, err)
			}
		}()
	}
	wg.Wait()
	if first != nil || abort {
		return nil, first
	}
	return paths, nil
}
