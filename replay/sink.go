package replay

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/segmentio/asm/base64"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/segment"
)

// Record is one replayed record. Key, Value and header values alias the
// decoded batch and are only valid during the Writer call; nil is null.
type Record struct {
	Partition int32
	Offset    int64
	Timestamp int64 // Unix milliseconds
	Key       []byte
	Value     []byte
	Headers   []kmsg.Header
	// ProducerID is the record's batch's producer (-1: none), and
	// Transactional whether that batch was written in a transaction (the
	// Iceberg job drops the records of aborted transactions with them).
	ProducerID    int64
	Transactional bool
}

// Sink receives a replay's output.
type Sink interface {
	// Open returns the writer of one partition. Each partition's writer
	// is opened once and used by one goroutine; writers of different
	// partitions run concurrently.
	Open(partition int32) (Writer, error)
	// Raw reports whether the sink takes whole record batches
	// (WriteBatch) rather than decoded records (WriteRecords).
	Raw() bool
	// Close finishes the output after every writer is closed.
	Close() error
}

// Writer writes one partition's output, in offset order.
type Writer interface {
	// WriteRecords writes decoded records (non-raw sinks).
	WriteRecords(recs []Record) error
	// WriteBatch writes one record batch as stored; absBase is its
	// absolute base offset, which the writer puts in the output (raw
	// sinks). It may patch raw's base offset field in place; the caller
	// does not use raw afterwards.
	WriteBatch(partition int32, absBase int64, raw []byte) error
	Close() error
}

// Output is where a sink writes: a directory (one or more files per
// partition) or, when Dir is empty, one stream (stdout) shared by every
// partition, whose records then interleave between partitions at batch
// granularity while keeping each partition's order.
type Output struct {
	Dir    string
	Stream io.Writer
}

// streamFlushBytes is how much a partition buffers before writing to a
// shared stream.
const streamFlushBytes = 256 << 10

// lockedStream serialises whole buffers from several partitions.
type lockedStream struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *lockedStream) write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(p)
	return err
}

// dest is one partition's byte destination: a file or the shared stream.
type dest struct {
	buf    []byte
	file   *os.File
	bw     *bufio.Writer
	stream *lockedStream
}

func openDest(out Output, stream *lockedStream, name string) (*dest, error) {
	if out.Dir == "" {
		return &dest{stream: stream}, nil
	}
	f, err := os.Create(filepath.Join(out.Dir, name))
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	return &dest{file: f, bw: bufio.NewWriterSize(f, 1<<20)}, nil
}

// flush hands buffered bytes on when there are at least min of them.
func (d *dest) flush(min int) error {
	if len(d.buf) < min || len(d.buf) == 0 {
		return nil
	}
	var err error
	if d.stream != nil {
		err = d.stream.write(d.buf)
	} else {
		_, err = d.bw.Write(d.buf)
	}
	d.buf = d.buf[:0]
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func (d *dest) close() error {
	err := d.flush(0)
	if d.file != nil {
		if ferr := d.bw.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("write output: %w", ferr)
		}
		if cerr := d.file.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close output: %w", cerr)
		}
	}
	return err
}

// BytesEncoding says how JSONL writes key, value and header bytes.
type BytesEncoding string

const (
	// BytesUTF8 writes bytes as JSON strings; a record whose key or value
	// is not valid UTF-8 has both written in base64 and carries
	// "encoding":"base64" (as `shale consume -o json` does).
	BytesUTF8 BytesEncoding = "utf8"
	// BytesBase64 always writes standard base64.
	BytesBase64 BytesEncoding = "base64"
	// BytesJSON writes a key or value that is valid JSON as it is (a JSON
	// value nested in the line), anything else as BytesUTF8 does.
	BytesJSON BytesEncoding = "json"
)

// ParseBytesEncoding checks a --bytes value.
func ParseBytesEncoding(s string) (BytesEncoding, error) {
	switch e := BytesEncoding(s); e {
	case BytesUTF8, BytesBase64, BytesJSON:
		return e, nil
	case "":
		return BytesUTF8, nil
	}
	return "", fmt.Errorf("bad --bytes %q: use utf8, base64 or json", s)
}

// JSONL writes one JSON object per line, the shape `shale consume -o json`
// prints too:
//
//	{"topic":"t","partition":0,"offset":42,"timestamp":1764064800000,"key":"k","value":"v","headers":[{"key":"h","value":"x"}]}
//
// timestamp is the record's Unix milliseconds (Kafka's own unit); a null key
// or value is null; headers is a list (Kafka allows a key twice, in order)
// omitted when there are none; "encoding":"base64" is added when bytes were
// written in base64 (see BytesEncoding). In a directory it writes
// <topic>-<p>.jsonl.
func JSONL(out Output, topic string, enc BytesEncoding) Sink {
	return &jsonlSink{out: out, topic: topic, enc: enc, stream: &lockedStream{w: out.Stream}}
}

type jsonlSink struct {
	out    Output
	topic  string
	enc    BytesEncoding
	stream *lockedStream
}

func (s *jsonlSink) Raw() bool    { return false }
func (s *jsonlSink) Close() error { return nil }

func (s *jsonlSink) Open(p int32) (Writer, error) {
	d, err := openDest(s.out, s.stream, fmt.Sprintf("%s-%d.jsonl", s.topic, p))
	if err != nil {
		return nil, err
	}
	return &jsonlWriter{d: d, topic: s.topic, enc: s.enc}, nil
}

type jsonlWriter struct {
	d     *dest
	topic string
	enc   BytesEncoding
}

func (w *jsonlWriter) WriteRecords(recs []Record) error {
	for i := range recs {
		w.d.buf = AppendJSONL(w.d.buf, w.topic, &recs[i], w.enc)
	}
	return w.d.flush(streamFlushBytes)
}

func (w *jsonlWriter) WriteBatch(int32, int64, []byte) error {
	return fmt.Errorf("replay: jsonl takes records, not batches")
}

func (w *jsonlWriter) Close() error { return w.d.close() }

// AppendJSONL appends r, a record of topic, as one JSONL line (see JSONL).
func AppendJSONL(dst []byte, topic string, r *Record, enc BytesEncoding) []byte {
	b64 := enc == BytesBase64 || ((r.Key != nil && !utf8.Valid(r.Key)) || (r.Value != nil && !utf8.Valid(r.Value)))
	dst = append(dst, `{"topic":`...)
	dst = appendString(dst, strings.ToValidUTF8(topic, "\uFFFD"))
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(r.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, r.Offset, 10)
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, r.Timestamp, 10)
	dst = append(dst, `,"key":`...)
	dst = appendBytes(dst, r.Key, enc, b64)
	dst = append(dst, `,"value":`...)
	dst = appendBytes(dst, r.Value, enc, b64)
	if len(r.Headers) > 0 {
		dst = append(dst, `,"headers":[`...)
		for i, h := range r.Headers {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"key":`...)
			dst = appendString(dst, strings.ToValidUTF8(h.Key, "\uFFFD"))
			dst = append(dst, `,"value":`...)
			dst = appendBytes(dst, h.Value, BytesUTF8, enc == BytesBase64 || !utf8.Valid(h.Value))
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if b64 && enc != BytesBase64 {
		dst = append(dst, `,"encoding":"base64"`...)
	}
	return append(dst, '}', '\n')
}

func appendBytes(dst, b []byte, enc BytesEncoding, b64 bool) []byte {
	switch {
	case b == nil:
		return append(dst, "null"...)
	case b64:
		dst = append(dst, '"')
		dst = appendBase64(dst, b)
		return append(dst, '"')
	case enc == BytesJSON && json.Valid(b):
		return appendCompactJSON(dst, b)
	}
	return appendString(dst, string(b))
}

// appendCompactJSON appends valid JSON b without its newlines (a JSONL
// line must stay one line); other whitespace is kept.
func appendCompactJSON(dst, b []byte) []byte {
	for _, c := range b {
		if c == '\n' || c == '\r' {
			c = ' ' // only whitespace outside strings can hold a raw newline
		}
		dst = append(dst, c)
	}
	return dst
}

// appendBase64 appends standard padded base64 of b, with segmentio/asm's
// SIMD encoder (about 2.5x encoding/base64 on amd64; the same bytes).
func appendBase64(dst, b []byte) []byte {
	n := base64.StdEncoding.EncodedLen(len(b))
	dst = slices.Grow(dst, n)
	base64.StdEncoding.Encode(dst[len(dst):len(dst)+n], b)
	return dst[:len(dst)+n]
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; s is valid UTF-8.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Raw writes record batches as stored, with their absolute base offsets:
// a Kafka log segment's byte layout (message format v2), readable by
// Kafka-native tools. A batch is written whole when any of its records is
// in the range, so the first and last batches may hold records outside
// it (Kafka clients skip them, as they do after a Fetch). In a directory
// it writes <topic>-<p>.kafka.
func Raw(out Output, topic string) Sink {
	return &rawSink{out: out, topic: topic, stream: &lockedStream{w: out.Stream}}
}

type rawSink struct {
	out    Output
	topic  string
	stream *lockedStream
}

func (s *rawSink) Raw() bool    { return true }
func (s *rawSink) Close() error { return nil }

func (s *rawSink) Open(p int32) (Writer, error) {
	d, err := openDest(s.out, s.stream, fmt.Sprintf("%s-%d.kafka", s.topic, p))
	if err != nil {
		return nil, err
	}
	return &rawWriter{d: d}, nil
}

type rawWriter struct{ d *dest }

func (w *rawWriter) WriteRecords([]Record) error {
	return fmt.Errorf("replay: raw takes batches, not records")
}

// rawDirectBytes is the batch size from which a raw file writer skips its
// buffer: one write(2) straight from the fetched span, no copy.
const rawDirectBytes = 64 << 10

// WriteBatch patches raw's base offset in place (raw is the replay's own
// copy of the span) and writes it.
func (w *rawWriter) WriteBatch(_ int32, absBase int64, raw []byte) error {
	if w.d.file != nil && len(raw) > 8 {
		segment.SetBaseOffset(raw, absBase)
		var err error
		if len(raw) >= rawDirectBytes {
			if err = w.d.bw.Flush(); err == nil {
				_, err = w.d.file.Write(raw)
			}
		} else {
			_, err = w.d.bw.Write(raw)
		}
		if err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	start := len(w.d.buf)
	w.d.buf = append(w.d.buf, raw...)
	segment.SetBaseOffset(w.d.buf[start:], absBase)
	return w.d.flush(streamFlushBytes)
}

func (w *rawWriter) Close() error { return w.d.close() }
