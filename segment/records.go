package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MaxDecompressedBytes bounds the decompressed size of one batch's records,
// so a hostile or corrupt batch cannot make a reader allocate without bound.
const MaxDecompressedBytes = 256 << 20

// Record is one decoded record of a batch.
type Record struct {
	OffsetDelta int32
	Timestamp   int64 // absolute: the batch's base timestamp plus the delta
	Key         []byte
	Value       []byte
	Headers     []kmsg.Header
	// KeyNull/ValueNull distinguish null from empty.
	KeyNull, ValueNull bool
}

// RecordTime is a record's offset delta and absolute timestamp.
type RecordTime struct {
	OffsetDelta int32
	Timestamp   int64
}

// DecodeRecords decompresses a whole v2 batch and decodes its records.
// Errors wrap ErrCorrupt. Key, Value and header bytes alias a fresh buffer.
func DecodeRecords(raw []byte) ([]Record, error) {
	var d Decoder
	return d.Decode(raw)
}

// Decoder decodes batches like DecodeRecords, reusing its decompression
// buffer, decompressors and record slice from one batch to the next: the
// records (and the bytes they alias) it returns are valid only until its
// next Decode. A Decoder is not safe for concurrent use; the zero value is
// ready.
type Decoder struct {
	buf  []byte
	recs []Record
	gz   *gzip.Reader
	lz   *lz4.Reader
}

// Decode decompresses raw (one whole v2 batch) and decodes its records.
func (d *Decoder) Decode(raw []byte) ([]Record, error) {
	h, err := ParseBatchHeader(raw)
	if err != nil {
		return nil, err
	}
	if int(h.Length) > len(raw) {
		return nil, fmt.Errorf("%w: batch length %d beyond %d bytes", ErrTruncated, h.Length, len(raw))
	}
	body, err := d.decompress(h.Compression(), raw[BatchHeaderSize:h.Length])
	if err != nil {
		return nil, err
	}
	n := int(h.RecordCount)
	if n < 0 || n > len(body) { // every record takes at least one byte
		return nil, fmt.Errorf("%w: %d records in %d bytes", ErrCorrupt, h.RecordCount, len(body))
	}
	recs := d.recs[:0]
	if cap(recs) < n {
		recs = make([]Record, 0, n)
	}
	for i := 0; i < n; i++ {
		l, sz := binary.Varint(body)
		if sz <= 0 || l < 0 || int64(len(body)-sz) < l {
			return nil, fmt.Errorf("%w: record %d of %d: bad length", ErrCorrupt, i, n)
		}
		var kr kmsg.Record
		if err := kr.ReadFrom(body[:sz+int(l)]); err != nil {
			return nil, fmt.Errorf("%w: record %d of %d: %v", ErrCorrupt, i, n, err)
		}
		body = body[sz+int(l):]
		r := Record{
			OffsetDelta: kr.OffsetDelta,
			Timestamp:   h.BaseTimestamp + kr.TimestampDelta64,
			Key:         kr.Key,
			Value:       kr.Value,
			Headers:     kr.Headers,
			KeyNull:     kr.Key == nil,
			ValueNull:   kr.Value == nil,
		}
		if h.TimestampType() == TimestampLogAppendTime { // LogAppendTime: every record carries the batch's max
			r.Timestamp = h.MaxTimestamp
		}
		recs = append(recs, r)
	}
	d.recs = recs
	return recs, nil
}

// RecordTimestamps returns the offset delta and timestamp of every record.
func RecordTimestamps(raw []byte) ([]RecordTime, error) {
	d := decoders.Get().(*Decoder)
	defer decoders.Put(d)
	recs, err := d.Decode(raw)
	if err != nil {
		return nil, err
	}
	out := make([]RecordTime, len(recs))
	for i, r := range recs {
		out[i] = RecordTime{r.OffsetDelta, r.Timestamp}
	}
	return out, nil
}

// decoders serves RecordTimestamps, which copies what it needs out.
var decoders = sync.Pool{New: func() any { return new(Decoder) }}

var zstdDecoders = sync.Pool{New: func() any {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxDecompressedBytes))
	return d
}}

// xerialHeader starts snappy data framed the way the Java client writes it.
var xerialHeader = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// decompress returns the batch's record bytes: in itself when
// uncompressed, else d.buf (grown as needed, never beyond
// MaxDecompressedBytes).
func (d *Decoder) decompress(codec int8, in []byte) ([]byte, error) {
	switch codec {
	case CompressionNone:
		return in, nil
	case CompressionGzip:
		var err error
		if d.gz == nil {
			d.gz, err = gzip.NewReader(bytes.NewReader(in))
		} else {
			err = d.gz.Reset(bytes.NewReader(in))
		}
		if err != nil {
			d.gz = nil
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		return d.readBounded(d.gz, "gzip")
	case CompressionSnappy:
		out, err := snappyDecode(d.buf[:0], in)
		if err == nil {
			d.buf = out
		}
		return out, err
	case CompressionLZ4:
		if out, ok := decodeLZ4Frame(d.buf[:0], in); ok { // lz4frame.go
			d.buf = out
			return out, nil
		}
		if d.lz == nil {
			d.lz = lz4.NewReader(bytes.NewReader(in))
		} else {
			d.lz.Reset(bytes.NewReader(in))
		}
		return d.readBounded(d.lz, "lz4")
	case CompressionZstd:
		z := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(z)
		out, err := z.DecodeAll(in, d.buf[:0])
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		d.buf = out
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, codec)
}

// readBounded reads r to its end into d.buf, failing past
// MaxDecompressedBytes. It grows d.buf by doubling and never clears it.
func (d *Decoder) readBounded(r io.Reader, name string) ([]byte, error) {
	buf := d.buf[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, 64<<10)
	}
	for {
		if len(buf) == cap(buf) {
			if len(buf) > MaxDecompressedBytes {
				return nil, fmt.Errorf("%w: %s: decompresses to more than %d bytes", ErrCorrupt, name, MaxDecompressedBytes)
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
		}
	}
	d.buf = buf
	if len(buf) > MaxDecompressedBytes {
		return nil, fmt.Errorf("%w: %s: decompresses to more than %d bytes", ErrCorrupt, name, MaxDecompressedBytes)
	}
	return buf, nil
}

// snappyBlock appends the decoded raw snappy block in to dst.
func snappyBlock(dst, in []byte) ([]byte, error) {
	n, err := s2.DecodedLen(in)
	if err != nil || n > MaxDecompressedBytes || len(dst)+n > MaxDecompressedBytes {
		return nil, fmt.Errorf("%w: snappy: bad block length", ErrCorrupt)
	}
	dst = slices.Grow(dst, n)
	out, err := s2.Decode(dst[len(dst):len(dst)+n], in)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	return dst[:len(dst)+len(out)], nil
}

// snappyDecode handles raw snappy blocks and the xerial framing (header,
// version, compat version, then 4-byte length-prefixed blocks).
// The decoded bytes are appended to dst.
func snappyDecode(dst, in []byte) ([]byte, error) {
	if !bytes.HasPrefix(in, xerialHeader) {
		return snappyBlock(dst, in)
	}
	if len(in) < len(xerialHeader)+8 {
		return nil, fmt.Errorf("%w: snappy: truncated xerial header", ErrCorrupt)
	}
	in = in[len(xerialHeader)+8:]
	out := dst
	for len(in) > 0 {
		if len(in) < 4 {
			return nil, fmt.Errorf("%w: snappy: truncated xerial frame", ErrCorrupt)
		}
		l := int(binary.BigEndian.Uint32(in))
		in = in[4:]
		if l > len(in) {
			return nil, fmt.Errorf("%w: snappy: xerial block beyond input", ErrCorrupt)
		}
		var err error
		if out, err = snappyBlock(out, in[:l]); err != nil {
			return nil, err
		}
		in = in[l:]
	}
	return out, nil
}
