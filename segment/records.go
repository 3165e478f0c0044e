package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
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
// Errors wrap ErrCorrupt.
func DecodeRecords(raw []byte) ([]Record, error) {
	h, err := ParseBatchHeader(raw)
	if err != nil {
		return nil, err
	}
	if int(h.Length) > len(raw) {
		return nil, fmt.Errorf("%w: batch length %d beyond %d bytes", ErrTruncated, h.Length, len(raw))
	}
	body, err := decompress(h.Compression(), raw[BatchHeaderSize:h.Length])
	if err != nil {
		return nil, err
	}
	n := int(h.RecordCount)
	if n < 0 || n > len(body) { // every record takes at least one byte
		return nil, fmt.Errorf("%w: %d records in %d bytes", ErrCorrupt, h.RecordCount, len(body))
	}
	recs := make([]Record, 0, n)
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
	return recs, nil
}

// RecordTimestamps returns the offset delta and timestamp of every record.
func RecordTimestamps(raw []byte) ([]RecordTime, error) {
	recs, err := DecodeRecords(raw)
	if err != nil {
		return nil, err
	}
	out := make([]RecordTime, len(recs))
	for i, r := range recs {
		out[i] = RecordTime{r.OffsetDelta, r.Timestamp}
	}
	return out, nil
}

var zstdDecoders = sync.Pool{New: func() any {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxDecompressedBytes))
	return d
}}

// xerialHeader starts snappy data framed the way the Java client writes it.
var xerialHeader = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

func decompress(codec int8, in []byte) ([]byte, error) {
	switch codec {
	case CompressionNone:
		return in, nil
	case CompressionGzip:
		zr, err := gzip.NewReader(bytes.NewReader(in))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		return readBounded(zr, "gzip")
	case CompressionSnappy:
		return snappyDecode(in)
	case CompressionLZ4:
		return readBounded(lz4.NewReader(bytes.NewReader(in)), "lz4")
	case CompressionZstd:
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		out, err := d.DecodeAll(in, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, codec)
}

func readBounded(r io.Reader, name string) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, MaxDecompressedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	if len(out) > MaxDecompressedBytes {
		return nil, fmt.Errorf("%w: %s: decompresses to more than %d bytes", ErrCorrupt, name, MaxDecompressedBytes)
	}
	return out, nil
}

func snappyBlock(in []byte) ([]byte, error) {
	n, err := s2.DecodedLen(in)
	if err != nil || n > MaxDecompressedBytes {
		return nil, fmt.Errorf("%w: snappy: bad block length", ErrCorrupt)
	}
	out, err := s2.Decode(make([]byte, n), in)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	return out, nil
}

// snappyDecode handles raw snappy blocks and the xerial framing (header,
// version, compat version, then 4-byte length-prefixed blocks).
func snappyDecode(in []byte) ([]byte, error) {
	if !bytes.HasPrefix(in, xerialHeader) {
		return snappyBlock(in)
	}
	if len(in) < len(xerialHeader)+8 {
		return nil, fmt.Errorf("%w: snappy: truncated xerial header", ErrCorrupt)
	}
	in = in[len(xerialHeader)+8:]
	var out []byte
	for len(in) > 0 {
		if len(in) < 4 {
			return nil, fmt.Errorf("%w: snappy: truncated xerial frame", ErrCorrupt)
		}
		l := int(binary.BigEndian.Uint32(in))
		in = in[4:]
		if l > len(in) {
			return nil, fmt.Errorf("%w: snappy: xerial block beyond input", ErrCorrupt)
		}
		b, err := snappyBlock(in[:l])
		if err != nil {
			return nil, err
		}
		if len(out)+len(b) > MaxDecompressedBytes {
			return nil, fmt.Errorf("%w: snappy: decompresses to more than %d bytes", ErrCorrupt, MaxDecompressedBytes)
		}
		out = append(out, b...)
		in = in[l:]
	}
	return out, nil
}
