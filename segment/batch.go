package segment

import (
	"encoding/binary"
	"hash/crc32"
	"math"
)

// Kafka record batch v2 header layout. See FORMAT.md.
const (
	BatchHeaderSize = 61 // bytes of a v2 batch header, up to and including recordCount
	BatchMagic      = 2  // the only supported record batch magic (message format v2)

	batchPrefixSize   = 12 // baseOffset + batchLength: bytes not counted by batchLength
	batchCRCStart     = 21 // first byte covered by the batch CRC (attributes)
	batchMaxLength    = math.MaxInt32 - batchPrefixSize
	batchMaxCodec     = 4 // zstd; codecs 5-7 are undefined
	offBaseOffset     = 0
	offBatchLength    = 8
	offLeaderEpoch    = 12
	offMagic          = 16
	offCRC            = 17
	offAttributes     = 21
	offLastDelta      = 23
	offBaseTimestamp  = 27
	offMaxTimestamp   = 35
	offProducerID     = 43
	offProducerEpoch  = 51
	offBaseSequence   = 53
	offRecordCount    = 57
	baseOffsetSize    = 8
	attrCompression   = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

// Compression codecs (BatchHeader.Compression).
const (
	CompressionNone   int8 = 0
	CompressionGzip   int8 = 1
	CompressionSnappy int8 = 2
	CompressionLZ4    int8 = 3
	CompressionZstd   int8 = 4
)

// Timestamp types (BatchHeader.TimestampType).
const (
	TimestampCreateTime    int8 = 0
	TimestampLogAppendTime int8 = 1
)

// BatchHeader is the decoded 61-byte header of a Kafka v2 record batch.
type BatchHeader struct {
	BaseOffset      int64
	Length          int32 // total bytes of the batch, including the 12-byte offset+length prefix
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
}

// Compression returns the compression codec (attributes bits 0-2).
func (h BatchHeader) Compression() int8 { return int8(h.Attributes & attrCompression) }

// TimestampType returns TimestampLogAppendTime if attributes bit 3 is set,
// else TimestampCreateTime.
func (h BatchHeader) TimestampType() int8 {
	if h.Attributes&attrLogAppendTime != 0 {
		return TimestampLogAppendTime
	}
	return TimestampCreateTime
}

// IsTransactional reports attributes bit 4.
func (h BatchHeader) IsTransactional() bool { return h.Attributes&attrTransactional != 0 }

// IsControl reports attributes bit 5 (a transaction marker batch).
func (h BatchHeader) IsControl() bool { return h.Attributes&attrControl != 0 }

// OffsetSpan is the number of offsets the batch occupies: lastOffsetDelta+1.
// It can exceed RecordCount for batches whose records were compacted away.
func (h BatchHeader) OffsetSpan() int64 { return int64(h.LastOffsetDelta) + 1 }

// LastOffset is the offset of the batch's last record: BaseOffset+LastOffsetDelta.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Batch is one whole record batch. Raw aliases the input it was split from.
type Batch struct {
	Header BatchHeader
	Raw    []byte
}

// ParseBatchHeader decodes and checks the header at the start of b. It needs
// at least BatchHeaderSize bytes (ErrTruncated) and magic 2 (ErrMagic; only 17
// bytes are needed to tell a v0/v1 message apart), and rejects lengths and
// counts that cannot be valid (ErrCorrupt). It does not check that b holds
// the whole batch, nor the CRC.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	h, err := parseBatchHeader(b)
	if err != nil {
		err.reason = "header: " + err.reason
		return h, err
	}
	return h, nil
}

func parseBatchHeader(b []byte) (BatchHeader, *batchError) {
	var h BatchHeader
	if len(b) <= offMagic {
		return h, &batchError{reason: "only " + itoa(len(b)) + " bytes, need " + itoa(BatchHeaderSize), err: ErrTruncated}
	}
	h.Magic = int8(b[offMagic])
	if h.Magic != BatchMagic {
		return h, &batchError{reason: "record batch magic " + itoa(int(h.Magic)) + ", only magic 2 (message format v2) is supported", err: ErrMagic}
	}
	if len(b) < BatchHeaderSize {
		return h, &batchError{reason: "only " + itoa(len(b)) + " bytes, need " + itoa(BatchHeaderSize), err: ErrTruncated}
	}
	be := binary.BigEndian
	h.BaseOffset = int64(be.Uint64(b[offBaseOffset:]))
	batchLength := int32(be.Uint32(b[offBatchLength:]))
	h.LeaderEpoch = int32(be.Uint32(b[offLeaderEpoch:]))
	h.CRC = be.Uint32(b[offCRC:])
	h.Attributes = int16(be.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(be.Uint32(b[offLastDelta:]))
	h.BaseTimestamp = int64(be.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(be.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(be.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(be.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(be.Uint32(b[offBaseSequence:]))
	h.RecordCount = int32(be.Uint32(b[offRecordCount:]))

	switch {
	case batchLength < BatchHeaderSize-batchPrefixSize || batchLength > batchMaxLength:
		return h, &batchError{reason: "batch length " + itoa(int(batchLength)) + " out of range", err: ErrCorrupt}
	case h.RecordCount < 0:
		return h, &batchError{reason: "negative record count " + itoa(int(h.RecordCount)), err: ErrCorrupt}
	case h.LastOffsetDelta < 0:
		return h, &batchError{reason: "negative lastOffsetDelta " + itoa(int(h.LastOffsetDelta)), err: ErrCorrupt}
	case int64(h.LastOffsetDelta) < int64(h.RecordCount)-1:
		return h, &batchError{reason: "lastOffsetDelta " + itoa(int(h.LastOffsetDelta)) + " too small for " + itoa(int(h.RecordCount)) + " records", err: ErrCorrupt}
	case h.Compression() > batchMaxCodec:
		return h, &batchError{reason: "unknown compression codec " + itoa(int(h.Compression())), err: ErrCorrupt}
	}
	h.Length = batchLength + batchPrefixSize
	return h, nil
}

// VerifyBatchCRC checks the v2 CRC-32C of the batch at the start of b
// (ErrCRC), after checking its header as ParseBatchHeader does and that b
// holds the whole batch (ErrTruncated).
func VerifyBatchCRC(b []byte) error {
	h, berr := parseBatchHeader(b)
	if berr == nil {
		berr = checkBatch(b, h, true)
	}
	if berr != nil {
		return berr
	}
	return nil
}

// checkBatch checks that b holds the batch h describes and, if verifyCRC,
// its CRC.
func checkBatch(b []byte, h BatchHeader, verifyCRC bool) *batchError {
	if int(h.Length) > len(b) {
		return &batchError{size: int(h.Length), reason: "batch of " + itoa(int(h.Length)) + " bytes but only " + itoa(len(b)) + " left", err: ErrTruncated}
	}
	if verifyCRC {
		if got := crc32.Checksum(b[batchCRCStart:h.Length], castagnoli); got != h.CRC {
			return &batchError{size: int(h.Length), reason: "batch CRC mismatch (want " + hex32(h.CRC) + ", got " + hex32(got) + ")", err: ErrCRC}
		}
	}
	return nil
}

// SplitBatches splits a Kafka produce "records" blob into whole v2 batches,
// checking each header, that every batch lies inside data, and, if
// verifyCRC, each batch CRC. Empty data yields no batches and no error.
// Errors name the batch's byte position and match ErrMagic (message format
// v0/v1), ErrTruncated, ErrCRC or ErrCorrupt with errors.Is. The returned
// Raw slices alias data (with capacity clipped to the batch).
func SplitBatches(data []byte, verifyCRC bool) ([]Batch, error) {
	batches, berr := splitBatches(data, verifyCRC)
	if berr != nil {
		return nil, berr
	}
	return batches, nil
}

func splitBatches(data []byte, verifyCRC bool) ([]Batch, *batchError) {
	batches := make([]Batch, 0, countBatches(data))
	for pos := 0; pos < len(data); {
		rest := data[pos:]
		h, berr := parseBatchHeader(rest)
		if berr == nil {
			berr = checkBatch(rest, h, verifyCRC)
		}
		if berr != nil {
			berr.pos = pos
			if berr.size == 0 || berr.size > len(rest) {
				berr.size = len(rest)
			}
			return nil, berr
		}
		n := int(h.Length)
		batches = append(batches, Batch{Header: h, Raw: rest[:n:n]})
		pos += n
	}
	return batches, nil
}

// countBatches is how many batches data seems to hold going by the length
// fields alone, at most len(data)/BatchHeaderSize: a capacity hint.
func countBatches(data []byte) int {
	n := 0
	for pos := 0; len(data)-pos >= batchPrefixSize; n++ {
		l := int32(binary.BigEndian.Uint32(data[pos+offBatchLength:]))
		if l < BatchHeaderSize-batchPrefixSize || int(l) > len(data)-pos-batchPrefixSize {
			break
		}
		pos += batchPrefixSize + int(l)
	}
	return n
}

// SetBaseOffset overwrites the baseOffset field (bytes [0, 8)) of the batch
// raw. raw must hold at least 8 bytes, as every Batch.Raw does.
func SetBaseOffset(raw []byte, off int64) {
	binary.BigEndian.PutUint64(raw[offBaseOffset:offBaseOffset+baseOffsetSize], uint64(off))
}

// HasBatchOver reports whether a record batch in records is larger than
// limit bytes (the whole batch, its offset and length prefix included, as
// Kafka's max.message.bytes counts it). It reads only the batch length
// fields and stops at the first that is negative or runs past the end:
// malformed records are left to full validation (SplitBatches).
func HasBatchOver(records []byte, limit int) bool {
	for len(records) >= batchPrefixSize {
		n := int64(int32(binary.BigEndian.Uint32(records[offBatchLength:batchPrefixSize])))
		if n < 0 {
			return false
		}
		size := n + batchPrefixSize
		if size > int64(len(records)) {
			return false // truncated or not a batch
		}
		if size > int64(limit) {
			return true
		}
		records = records[size:]
	}
	return false
}
