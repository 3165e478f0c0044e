package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec is a target of Recompress: a compression codec and its level (the
// codec's default when Level is DefaultLevel).
type Codec struct {
	Type  int8 // CompressionNone ... CompressionZstd
	Level int
}

// DefaultLevel asks for the codec's default level (Kafka's
// compression.*.level defaults: gzip 6 as zlib's default, lz4 9, zstd 3).
const DefaultLevel = -1 << 31

// Recompress returns the v2 batches of data with their records compressed
// by c, as a Kafka broker rewrites a produced batch whose codec is not the
// topic's compression.type. Only the compressed payload changes: every
// header field (base offset, partition leader epoch, lastOffsetDelta,
// timestamps, producer ID, epoch and base sequence, record count, the
// timestamp-type and transactional bits) and every record's bytes are
// kept; the length and CRC are recomputed. Control batches and batches
// already in c.Type are kept as they are, and when nothing changes data
// itself is returned. Errors (a malformed batch, a payload that does not
// decompress) wrap ErrCorrupt, ErrTruncated, ErrMagic or ErrCRC; the CRC of
// each batch is checked before it is rewritten.
func Recompress(data []byte, c Codec) ([]byte, error) {
	batches, err := SplitBatches(data, false)
	if err != nil {
		return nil, err
	}
	need := false
	for _, b := range batches {
		if !b.Header.IsControl() && b.Header.Compression() != c.Type {
			need = true
			break
		}
	}
	if !need {
		return data, nil
	}
	d := decoders.Get().(*Decoder)
	defer decoders.Put(d)
	out := make([]byte, 0, len(data))
	for _, b := range batches {
		h := b.Header
		if h.IsControl() || h.Compression() == c.Type {
			out = append(out, b.Raw...)
			continue
		}
		if berr := checkBatch(b.Raw, h, true); berr != nil {
			return nil, berr
		}
		plain, err := d.decompress(h.Compression(), b.Raw[BatchHeaderSize:h.Length])
		if err != nil {
			return nil, err
		}
		start := len(out)
		out = append(out, b.Raw[:BatchHeaderSize]...)
		if out, err = compress(out, plain, c); err != nil {
			return nil, err
		}
		batch := out[start:]
		be := binary.BigEndian
		be.PutUint32(batch[offBatchLength:], uint32(len(batch)-batchPrefixSize))
		attrs := (h.Attributes &^ attrCompression) | int16(c.Type)
		be.PutUint16(batch[offAttributes:], uint16(attrs))
		be.PutUint32(batch[offCRC:], crc32.Checksum(batch[batchCRCStart:], castagnoli))
	}
	return out, nil
}

// compress appends in, compressed by c, to dst.
func compress(dst, in []byte, c Codec) ([]byte, error) {
	switch c.Type {
	case CompressionNone:
		return append(dst, in...), nil
	case CompressionGzip:
		level := c.Level
		if level == DefaultLevel {
			level = gzip.DefaultCompression
		}
		pool := gzipWriters[level]
		if pool == nil {
			return nil, fmt.Errorf("gzip level %d out of range", c.Level)
		}
		buf := bytes.NewBuffer(dst)
		w := pool.Get().(*gzip.Writer)
		defer pool.Put(w)
		w.Reset(buf)
		if _, err := w.Write(in); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case CompressionSnappy:
		// A raw snappy block, as librdkafka and franz-go write it (Kafka's
		// Java consumer reads it as well as the xerial framing).
		return append(dst, s2.EncodeSnappy(nil, in)...), nil
	case CompressionLZ4:
		buf := bytes.NewBuffer(dst)
		w := lz4.NewWriter(buf)
		if err := w.Apply(lz4.CompressionLevelOption(lz4Level(c.Level))); err != nil {
			return nil, err
		}
		if _, err := w.Write(in); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case CompressionZstd:
		level := zstd.SpeedDefault
		if c.Level != DefaultLevel {
			level = zstd.EncoderLevelFromZstd(c.Level)
		}
		enc := zstdEncoder(level)
		out := enc.EncodeAll(in, dst)
		zstdEncoders[level].Put(enc)
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, c.Type)
}

// lz4Level maps Kafka's compression.lz4.level (1-17, default 9) onto
// pierrec/lz4: up to 9, the default included, lz4's fast compressor (what
// franz-go and librdkafka producers write; pierrec's high-compression
// levels run at a tenth of its speed for a percent or two on typical
// records); 10 to 17, pierrec's high-compression levels 2 to 9.
func lz4Level(kafka int) lz4.CompressionLevel {
	if kafka == DefaultLevel || kafka <= 9 {
		return lz4.Fast
	}
	return lz4.CompressionLevel(1 << (8 + min(kafka-8, 9)))
}

// zstdEncoders pools one encoder kind per level (an encoder is costly to
// build and not safe for concurrent use).
var zstdEncoders = func() map[zstd.EncoderLevel]*sync.Pool {
	m := map[zstd.EncoderLevel]*sync.Pool{}
	for l := zstd.SpeedFastest; l <= zstd.SpeedBestCompression; l++ {
		m[l] = &sync.Pool{New: func() any {
			e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
			return e
		}}
	}
	return m
}()

// gzipWriters pools gzip writers per level (-1: default, 1-9).
var gzipWriters = func() map[int]*sync.Pool {
	m := map[int]*sync.Pool{}
	for l := gzip.DefaultCompression; l <= gzip.BestCompression; l++ {
		if l == 0 {
			continue
		}
		m[l] = &sync.Pool{New: func() any {
			w, _ := gzip.NewWriterLevel(nil, l)
			return w
		}}
	}
	return m
}()

func zstdEncoder(l zstd.EncoderLevel) *zstd.Encoder { return zstdEncoders[l].Get().(*zstd.Encoder) }
