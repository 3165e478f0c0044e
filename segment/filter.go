package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FilterRecords rewrites one whole v2 batch keeping only the records keep
// accepts, as Kafka's log cleaner rewrites a batch (key compaction). It is
// the building block of key compaction (see lifecycle/doc.go).
//
// What is kept: the header fields that make offsets and producer state
// (base offset, lastOffsetDelta, so the batch spans the same offsets
// whatever it keeps; partition leader epoch; base timestamp; producer ID,
// epoch and base sequence; the timestamp-type and transactional bits), and
// every kept record's bytes exactly (offset and timestamp deltas, key,
// value, headers). The kept records are compressed again with the batch's
// own codec at its default level. recordCount becomes the number kept and,
// for CreateTime batches, maxTimestamp the largest kept timestamp, as Kafka
// recomputes them; the length and CRC are recomputed.
//
// A batch left with no record is kept as its header alone, uncompressed
// (recordCount 0, the original maxTimestamp), as Kafka keeps the empty
// last batch of a producer: the offsets it spanned stay accounted for and
// readers skip it, as Kafka clients do. When keep accepts every record, raw
// itself is returned. Control batches are returned as they are, without
// calling keep (whether to keep a transaction marker is the caller's
// decision).
//
// The Record keep is given aliases a buffer reused afterwards: keep must
// copy what it retains. raw's CRC is checked first; errors (a malformed batch, a payload that
// does not decompress, records that do not parse) wrap ErrCorrupt,
// ErrTruncated, ErrMagic or ErrCRC, and nothing is returned: a batch that
// cannot be read is never partly kept. kept is the number of records kept.
func FilterRecords(raw []byte, keep func(Record) bool) (out []byte, kept int, err error) {
	h, err := ParseBatchHeader(raw)
	if err != nil {
		return nil, 0, err
	}
	if int(h.Length) > len(raw) {
		return nil, 0, fmt.Errorf("%w: batch length %d beyond %d bytes", ErrTruncated, h.Length, len(raw))
	}
	raw = raw[:h.Length]
	if berr := checkBatch(raw, h, true); berr != nil {
		return nil, 0, berr
	}
	if h.IsControl() {
		return raw, int(h.RecordCount), nil
	}
	d := decoders.Get().(*Decoder)
	defer decoders.Put(d)
	body, err := d.decompress(h.Compression(), raw[BatchHeaderSize:])
	if err != nil {
		return nil, 0, err
	}
	n := int(h.RecordCount)
	if n < 0 || n > len(body) { // every record takes at least one byte
		return nil, 0, fmt.Errorf("%w: %d records in %d bytes", ErrCorrupt, h.RecordCount, len(body))
	}
	var plain []byte
	maxTS := int64(-1)
	for i := 0; i < n; i++ {
		l, sz := binary.Varint(body)
		if sz <= 0 || l < 0 || int64(len(body)-sz) < l {
			return nil, 0, fmt.Errorf("%w: record %d of %d: bad length", ErrCorrupt, i, n)
		}
		one := body[:sz+int(l)]
		body = body[sz+int(l):]
		var kr kmsg.Record
		if err := kr.ReadFrom(one); err != nil {
			return nil, 0, fmt.Errorf("%w: record %d of %d: %v", ErrCorrupt, i, n, err)
		}
		if kr.OffsetDelta < 0 || kr.OffsetDelta > h.LastOffsetDelta {
			return nil, 0, fmt.Errorf("%w: record %d of %d: offset delta %d outside [0, %d]", ErrCorrupt, i, n, kr.OffsetDelta, h.LastOffsetDelta)
		}
		r := Record{OffsetDelta: kr.OffsetDelta, Timestamp: h.BaseTimestamp + kr.TimestampDelta64, Key: kr.Key, Value: kr.Value,
			Headers: kr.Headers, KeyNull: kr.Key == nil, ValueNull: kr.Value == nil}
		if h.TimestampType() == TimestampLogAppendTime {
			r.Timestamp = h.MaxTimestamp
		}
		if keep(r) {
			plain = append(plain, one...)
			kept++
			maxTS = max(maxTS, r.Timestamp)
		}
	}
	if kept == n {
		return raw, kept, nil
	}
	be := binary.BigEndian
	out = append(make([]byte, 0, BatchHeaderSize+len(plain)), raw[:BatchHeaderSize]...)
	attrs := h.Attributes
	if kept == 0 {
		attrs &^= attrCompression
	} else {
		if out, err = compress(out, plain, Codec{Type: h.Compression(), Level: DefaultLevel}); err != nil {
			return nil, 0, err
		}
		if h.TimestampType() != TimestampLogAppendTime {
			be.PutUint64(out[offMaxTimestamp:], uint64(maxTS))
		}
	}
	be.PutUint16(out[offAttributes:], uint16(attrs))
	be.PutUint32(out[offRecordCount:], uint32(kept))
	be.PutUint32(out[offBatchLength:], uint32(len(out)-batchPrefixSize))
	be.PutUint32(out[offCRC:], crc32.Checksum(out[batchCRCStart:], castagnoli))
	return out, kept, nil
}

// CoalesceEmpty merges two consecutive record batches that hold no record
// (headers alone, as FilterRecords leaves a batch it emptied; control
// batches excluded) into one header-only batch spanning the offsets of
// both, so that a compacted log keeps one 61-byte header per run of
// removed batches rather than one per batch. The result takes a's base
// offset, leader epoch, timestamp type and base timestamp, the larger max
// timestamp, no producer (ID, epoch and sequence -1: an empty batch
// carries no producer state, which lives in etcd) and no transactional
// bit; its CRC is recomputed. It returns false, and nothing, when either
// batch holds a record or is a control batch, or the merged span would
// not fit lastOffsetDelta (int32).
func CoalesceEmpty(a, b []byte) ([]byte, bool) {
	if len(a) != BatchHeaderSize || len(b) != BatchHeaderSize {
		return nil, false
	}
	ha, err := ParseBatchHeader(a)
	if err != nil {
		return nil, false
	}
	hb, err := ParseBatchHeader(b)
	if err != nil || ha.RecordCount != 0 || hb.RecordCount != 0 || ha.IsControl() || hb.IsControl() ||
		int(ha.Length) != len(a) || int(hb.Length) != len(b) {
		return nil, false
	}
	span := ha.OffsetSpan() + hb.OffsetSpan()
	if span-1 > math.MaxInt32 {
		return nil, false
	}
	be := binary.BigEndian
	out := append([]byte(nil), a...)
	be.PutUint16(out[offAttributes:], uint16(ha.Attributes&^(attrTransactional|attrCompression)))
	be.PutUint32(out[offLastDelta:], uint32(span-1))
	be.PutUint64(out[offMaxTimestamp:], uint64(max(ha.MaxTimestamp, hb.MaxTimestamp)))
	be.PutUint64(out[offProducerID:], ^uint64(0))
	be.PutUint16(out[offProducerEpoch:], ^uint16(0))
	be.PutUint32(out[offBaseSequence:], ^uint32(0))
	be.PutUint32(out[offCRC:], crc32.Checksum(out[batchCRCStart:], castagnoli))
	return out, true
}

// EmptyBatch returns a header-only batch spanning raw's offsets: no
// record, no producer, not control, not transactional, raw's base offset,
// leader epoch, timestamp type and timestamps, CRC recomputed. Key
// compaction puts it in place of a transaction marker it removes, so that
// offsets stay dense; CoalesceEmpty then merges it with its neighbours.
func EmptyBatch(raw []byte) ([]byte, error) {
	h, err := ParseBatchHeader(raw)
	if err != nil {
		return nil, err
	}
	be := binary.BigEndian
	out := append([]byte(nil), raw[:BatchHeaderSize]...)
	be.PutUint32(out[offBatchLength:], uint32(BatchHeaderSize-batchPrefixSize))
	be.PutUint16(out[offAttributes:], uint16(h.Attributes&^(attrControl|attrTransactional|attrCompression)))
	be.PutUint64(out[offProducerID:], ^uint64(0))
	be.PutUint16(out[offProducerEpoch:], ^uint16(0))
	be.PutUint32(out[offBaseSequence:], ^uint32(0))
	be.PutUint32(out[offRecordCount:], 0)
	be.PutUint32(out[offCRC:], crc32.Checksum(out[batchCRCStart:], castagnoli))
	return out, nil
}
