package segment

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ControlBatch returns a transaction marker: a v2 record batch with the
// control and transactional attribute bits, producer ID and epoch of the
// transaction, no sequence (-1), base offset 0, and one control record
// whose key is the ControlRecordKey (version 0, type 1 commit or 0 abort)
// and whose value is the EndTxnMarker (version 0, coordinatorEpoch), as
// Kafka writes it. The record, key, value and batch are encoded with kmsg;
// only the CRC-32C is filled in here.
func ControlBatch(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, timestampMs int64) []byte {
	key := kmsg.ControlRecordKey{Type: kmsg.ControlRecordKeyTypeAbort}
	if commit {
		key.Type = kmsg.ControlRecordKeyTypeCommit
	}
	marker := kmsg.EndTxnMarker{CoordinatorEpoch: coordinatorEpoch}
	rec := kmsg.Record{Key: key.AppendTo(nil), Value: marker.AppendTo(nil)}
	// Length counts what follows its own varint; it is small, so its
	// varint is one byte.
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                BatchMagic,
		Attributes:           attrControl | attrTransactional,
		FirstTimestamp:       timestampMs,
		MaxTimestamp:         timestampMs,
		ProducerID:           producerID,
		ProducerEpoch:        epoch,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              rec.AppendTo(nil),
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[offBatchLength:], uint32(len(raw)-batchPrefixSize))
	binary.BigEndian.PutUint32(raw[offCRC:], crc32.Checksum(raw[batchCRCStart:], castagnoli))
	return raw
}

// ControlType returns the type of a control batch's first record: 1 for
// a commit marker, 0 for an abort marker (kmsg.ControlRecordKeyType), and
// false when raw is not an uncompressed control batch with a record whose
// key decodes.
func ControlType(raw []byte) (kmsg.ControlRecordKeyType, bool) {
	h, err := ParseBatchHeader(raw)
	if err != nil || !h.IsControl() || h.Compression() != CompressionNone || int64(len(raw)) < int64(h.Length) {
		return 0, false
	}
	recs, err := DecodeRecords(raw[:h.Length])
	if err != nil || len(recs) == 0 {
		return 0, false
	}
	var key kmsg.ControlRecordKey
	if err := key.ReadFrom(recs[0].Key); err != nil {
		return 0, false
	}
	return key.Type, true
}
