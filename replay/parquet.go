package replay

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"
)

// ParquetRow is the Parquet schema of replayed records:
//
//	message record {
//	  required int32  partition (INT(32,true));
//	  required int64  offset    (INT(64,true));
//	  required int64  timestamp (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS));
//	  optional binary key;                       -- null key: null
//	  optional binary value;                     -- null value (tombstone): null
//	  required group headers (LIST) {
//	    repeated group list {
//	      required group element {
//	        required binary key (STRING);
//	        optional binary value;
//	      }
//	    }
//	  }
//	}
//
// Pages are Snappy-compressed (the fast mode of klauspost/compress/s2,
// which writes standard Snappy blocks that any Parquet reader decodes).
type ParquetRow struct {
	Partition int32           `parquet:"partition"`
	Offset    int64           `parquet:"offset"`
	Timestamp int64           `parquet:"timestamp,timestamp(millisecond)"`
	Key       []byte          `parquet:"key,optional"`
	Value     []byte          `parquet:"value,optional"`
	Headers   []ParquetHeader `parquet:"headers,list"`
}

// ParquetHeader is one record header in ParquetRow.
type ParquetHeader struct {
	Key   string `parquet:"key"`
	Value []byte `parquet:"value,optional"`
}

// Parquet sizes.
const (
	DefaultParquetFileBytes = 256 << 20
	// parquetRowGroupBytes is how much record data a writer buffers before
	// writing a row group: it bounds the writer's memory.
	parquetRowGroupBytes = 8 << 20
)

// Parquet writes the records of each partition to Parquet files in dir,
// <topic>-<p>-<n>.parquet with n = 000000, 000001, ...: a file is closed
// and the next begun once it holds fileBytes or more (checked after each
// row group of about 8 MiB of record data, or fileBytes/4 if smaller).
func Parquet(dir, topic string, fileBytes int64) Sink {
	if fileBytes <= 0 {
		fileBytes = DefaultParquetFileBytes
	}
	return &parquetSink{dir: dir, topic: topic, fileBytes: fileBytes}
}

type parquetSink struct {
	dir, topic string
	fileBytes  int64
}

func (s *parquetSink) Raw() bool    { return false }
func (s *parquetSink) Close() error { return nil }

func (s *parquetSink) Open(p int32) (Writer, error) {
	return &parquetWriter{sink: s, partition: p, groupBytes: max(min(parquetRowGroupBytes, s.fileBytes/4), 1)}, nil
}

type parquetWriter struct {
	sink       *parquetSink
	partition  int32
	groupBytes int64
	seq        int
	file       *os.File
	w          *ParquetFile[ParquetRow]
	rows       []ParquetRow
	headers    []ParquetHeader
}

// ParquetFile writes rows of T to one Parquet file the way replay writes
// its own: pages Snappy-compressed with s2's fast encoder, a row group
// written once about groupBytes of record data are buffered (the caller
// counts them: Write's recordBytes), which bounds the writer's memory.
// The schema is T's, or a *parquet.Schema passed as an option that
// parquet.EqualNodes finds equal to T's (with field IDs, say, as Iceberg
// data files need), so that rows still take parquet-go's direct path. Close writes the footer; out is not closed.
type ParquetFile[T any] struct {
	bw         *bufio.Writer
	cw         countWriter
	w          *parquet.GenericWriter[T]
	groupBytes int64
	pending    int64 // record bytes written since the last row group
}

// NewParquetFile starts a Parquet file on out (groupBytes <= 0: the
// default row group of about 8 MiB of record data).
func NewParquetFile[T any](out io.Writer, groupBytes int64, opts ...parquet.WriterOption) *ParquetFile[T] {
	if groupBytes <= 0 {
		groupBytes = parquetRowGroupBytes
	}
	f := &ParquetFile[T]{bw: bufio.NewWriterSize(out, 1<<20), groupBytes: groupBytes}
	f.cw.w = f.bw
	f.w = parquet.NewGenericWriter[T](&f.cw, append([]parquet.WriterOption{parquet.Compression(&fastSnappy{})}, opts...)...)
	return f
}

// Write appends rows holding recordBytes of record data, and writes a row
// group once the file buffers groupBytes or more (grouped: it did).
func (f *ParquetFile[T]) Write(rows []T, recordBytes int64) (grouped bool, err error) {
	if _, err := f.w.Write(rows); err != nil {
		return false, fmt.Errorf("write parquet: %w", err)
	}
	return f.wrote(recordBytes)
}

// WriteRows is Write for rows already in parquet-go's column form (a
// file of a schema known only at run time: ParquetFile[any] with the
// schema as an option).
func (f *ParquetFile[T]) WriteRows(rows []parquet.Row, recordBytes int64) (grouped bool, err error) {
	if _, err := f.w.WriteRows(rows); err != nil {
		return false, fmt.Errorf("write parquet: %w", err)
	}
	return f.wrote(recordBytes)
}

func (f *ParquetFile[T]) wrote(recordBytes int64) (grouped bool, err error) {
	f.pending += recordBytes
	if f.pending < f.groupBytes {
		return false, nil
	}
	f.pending = 0
	if err := f.w.Flush(); err != nil {
		return false, fmt.Errorf("write parquet: %w", err)
	}
	return true, nil
}

// Size is the bytes written to out so far (row groups written, not those
// buffered).
func (f *ParquetFile[T]) Size() int64 { return f.cw.n }

// Close writes the last row group and the footer.
func (f *ParquetFile[T]) Close() error {
	err := f.w.Close()
	if ferr := f.bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("write parquet: %w", err)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (w *parquetWriter) open() error {
	name := filepath.Join(w.sink.dir, fmt.Sprintf("%s-%d-%06d.parquet", w.sink.topic, w.partition, w.seq))
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	w.seq++
	w.file = f
	w.w = NewParquetFile[ParquetRow](f, w.groupBytes)
	return nil
}

func (w *parquetWriter) WriteRecords(recs []Record) error {
	// The records go in in chunks of about a row group, so that a call
	// carrying more than a file's worth (a whole span decoded at once)
	// still rolls over files of about fileBytes.
	for len(recs) > 0 {
		if w.w == nil {
			if err := w.open(); err != nil {
				return err
			}
		}
		w.rows, w.headers = w.rows[:0], w.headers[:0]
		var n int64
		i := 0
		for ; i < len(recs) && n < w.groupBytes; i++ {
			r := recs[i]
			hs := len(w.headers)
			for _, h := range r.Headers {
				w.headers = append(w.headers, ParquetHeader{Key: h.Key, Value: h.Value})
			}
			w.rows = append(w.rows, ParquetRow{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
				Key: r.Key, Value: r.Value, Headers: w.headers[hs:len(w.headers):len(w.headers)]})
			n += RecordBytes(r)
		}
		recs = recs[i:]
		grouped, err := w.w.Write(w.rows, n)
		clear(w.rows) // drop references to the decoded batch
		clear(w.headers)
		if err != nil {
			return err
		}
		if grouped && w.w.Size() >= w.sink.fileBytes {
			if err := w.finish(); err != nil {
				return err
			}
		}
	}
	return nil
}

// RecordBytes is the record data a record adds to a Parquet row group
// (ParquetFile.Write): key, value and headers, plus 20 for the fixed
// columns.
func RecordBytes(r Record) int64 {
	n := int64(len(r.Key)+len(r.Value)) + 20
	for _, h := range r.Headers {
		n += int64(len(h.Key) + len(h.Value))
	}
	return n
}

// finish closes the current file.
func (w *parquetWriter) finish() error {
	if w.w == nil {
		return nil
	}
	err := w.w.Close()
	if cerr := w.file.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write parquet: %w", cerr)
	}
	w.w = nil
	return err
}

func (w *parquetWriter) WriteBatch(int32, int64, []byte) error {
	return fmt.Errorf("replay: parquet takes records, not batches")
}

func (w *parquetWriter) Close() error { return w.finish() }

// fastSnappy is parquet-go's Snappy codec with s2's fast encoder instead of
// its "better" one: about twice the speed for slightly larger pages, which
// is the right trade for a replay bounded by CPU. The blocks are plain
// Snappy either way.
type fastSnappy struct{ snappy.Codec }

func (*fastSnappy) Encode(dst, src []byte) ([]byte, error) {
	return s2.EncodeSnappy(dst, src), nil
}
