// Package segmenttest builds valid Kafka v2 record batches for tests of the
// segment, engine and agent packages. Batches are uncompressed, with a correct
// CRC-32C, and encoded with franz-go's kmsg so they are exactly what a real
// client sends.
package segmenttest

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchOptions describes one record batch. The zero value is a batch of one
// record with an empty value, timestamp 0, no producer ID.
type BatchOptions struct {
	// Records is the number of records, when Values is nil; at least 1.
	Records int
	// Values, if set, holds one value per record and overrides Records.
	Values [][]byte
	// Keys, if set, holds one key per record (nil entries are null keys).
	Keys [][]byte
	// Value is the value of every record when Values is nil.
	Value []byte
	// Tombstones, if set, marks the records whose value is null (a
	// tombstone of a compacted topic) instead of Values/Value.
	Tombstones []bool
	// Headers, if set, holds each record's headers.
	Headers [][]kmsg.Header

	BaseOffset int64
	// Timestamp is the batch's base timestamp; record i has Timestamp+i.
	Timestamp int64
	// LogAppendTime sets the timestamp-type attribute bit.
	LogAppendTime bool
	Transactional bool
	Control       bool

	// Idempotent sets ProducerID, ProducerEpoch and BaseSequence; without
	// it they are -1 as for a plain producer.
	Idempotent    bool
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32

	LeaderEpoch int32
	// ExtraOffsets is added to lastOffsetDelta, as in a batch whose records
	// were compacted away: the batch then spans Records+ExtraOffsets offsets.
	ExtraOffsets int32
}

// Batch returns the encoded batch. It panics on options that cannot form a
// batch (Keys longer than the records), which is a bug in the test.
func Batch(o BatchOptions) []byte {
	n := o.Records
	if o.Values != nil {
		n = len(o.Values)
	}
	if n < 1 {
		n = 1
	}
	if len(o.Keys) > n {
		panic(fmt.Sprintf("segmenttest: %d keys for %d records", len(o.Keys), n))
	}
	var records []byte
	for i := range n {
		r := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Value: o.Value}
		if o.Values != nil {
			r.Value = o.Values[i]
		}
		if i < len(o.Keys) {
			r.Key = o.Keys[i]
		}
		if r.Value == nil {
			r.Value = []byte{}
		}
		if i < len(o.Tombstones) && o.Tombstones[i] {
			r.Value = nil
		}
		if i < len(o.Headers) {
			r.Headers = o.Headers[i]
		}
		// Length is everything after the length varint: encode once with
		// Length 0 (a one-byte varint) to measure it.
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		records = r.AppendTo(records)
	}
	var attrs int16
	if o.LogAppendTime {
		attrs |= 0x08
	}
	if o.Transactional {
		attrs |= 0x10
	}
	if o.Control {
		attrs |= 0x20
	}
	b := kmsg.RecordBatch{
		FirstOffset:          o.BaseOffset,
		PartitionLeaderEpoch: o.LeaderEpoch,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      int32(n-1) + o.ExtraOffsets,
		FirstTimestamp:       o.Timestamp,
		MaxTimestamp:         o.Timestamp + int64(n-1),
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(n),
		Records:              records,
	}
	if o.Idempotent {
		b.ProducerID, b.ProducerEpoch, b.FirstSequence = o.ProducerID, o.ProducerEpoch, o.BaseSequence
	}
	b.Length = int32(49 + len(records))
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:21], crc32.Checksum(raw[21:], castagnoli))
	return raw
}

// Batches returns n batches built from o, with timestamps advancing by
// o.Records per batch and, when idempotent, sequences continuing.
func Batches(n int, o BatchOptions) [][]byte {
	out := make([][]byte, 0, n)
	for range n {
		out = append(out, Batch(o))
		per := max(o.Records, 1)
		if o.Values != nil {
			per = len(o.Values)
		}
		o.Timestamp += int64(per)
		o.BaseSequence += int32(per)
	}
	return out
}

// Concat joins batches into one produce "records" blob.
func Concat(batches [][]byte) []byte {
	var out []byte
	for _, b := range batches {
		out = append(out, b...)
	}
	return out
}

// Record is one decoded record of a batch, for assertions.
type Record struct {
	OffsetDelta int32
	Timestamp   int64
	Key, Value  []byte
}

// Records decodes the records of an uncompressed v2 batch.
func Records(raw []byte) ([]Record, error) {
	var b kmsg.RecordBatch
	if err := b.ReadFrom(raw); err != nil {
		return nil, fmt.Errorf("segmenttest: decode batch: %w", err)
	}
	if b.Attributes&0x07 != 0 {
		return nil, fmt.Errorf("segmenttest: compressed batch (codec %d)", b.Attributes&0x07)
	}
	out := make([]Record, 0, b.NumRecords)
	rest := b.Records
	for i := range int(b.NumRecords) {
		var r kmsg.Record
		if err := r.ReadFrom(rest); err != nil {
			return nil, fmt.Errorf("segmenttest: decode record %d: %w", i, err)
		}
		n := varintLen(rest) + int(r.Length)
		if n > len(rest) {
			return nil, fmt.Errorf("segmenttest: record %d overruns the batch", i)
		}
		rest = rest[n:]
		out = append(out, Record{OffsetDelta: r.OffsetDelta, Timestamp: b.FirstTimestamp + r.TimestampDelta64, Key: r.Key, Value: r.Value})
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("segmenttest: %d bytes after the last record", len(rest))
	}
	return out, nil
}

// varintLen is the byte length of the zig-zag varint at the start of b.
func varintLen(b []byte) int {
	_, n := binary.Varint(b)
	if n <= 0 {
		return len(b) + 1
	}
	return n
}
