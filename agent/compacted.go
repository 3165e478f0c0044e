package agent

// Produce rule of compacted topics (cleanup.policy including "compact"),
// as Kafka's LogValidator applies it: every record must have a key, since
// key compaction keeps the latest record per key and a keyless record has
// none. A partition's records holding a keyless record are refused whole
// with INVALID_RECORD and Kafka's message "Compacted topic cannot accept
// message without key in topic partition <topic>-<p>."; from Produce v8
// (KIP-467) the answer also lists each keyless record (its index among the
// partition's records: within its batch, since producers send one batch
// per partition) with the same message. Older versions get the error code
// alone, as from Kafka since 2.4 (before, Kafka answered CORRUPT_MESSAGE).
// A record with an empty key ("") has a key. A batch that does not
// decompress is CORRUPT_MESSAGE. Idempotent and plain producers are
// treated alike: the refused batch takes no offsets and no sequence.
//
// The check decodes every batch produced to a compacted topic (the CPU of
// one decompression); other topics pay nothing.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/segment"
)

// checkKeys returns the error code and message refusing a partition's
// produced records on a compacted topic, with the per-record errors, or
// code 0 when every record has a key (or the topic is not compacted).
func checkKeys(configs map[string]string, topic string, partition int32, records []byte) (int16, *string, []kmsg.ProduceResponseTopicPartitionErrorRecord) {
	if _, compacts := metastore.CleanupPolicyOf(configs); !compacts {
		return 0, nil, nil
	}
	batches, err := segment.SplitBatches(records, false)
	if err != nil {
		return kerr.CorruptMessage.Code, kmsg.StringPtr(err.Error()), nil
	}
	msg := kmsg.StringPtr(fmt.Sprintf("Compacted topic cannot accept message without key in topic partition %s-%d.", topic, partition))
	var d segment.Decoder
	var bad []kmsg.ProduceResponseTopicPartitionErrorRecord
	index := int32(0)
	for _, b := range batches {
		recs, err := d.Decode(b.Raw)
		if err != nil {
			return kerr.CorruptMessage.Code, kmsg.StringPtr(err.Error()), nil
		}
		for _, r := range recs {
			if r.KeyNull {
				e := kmsg.NewProduceResponseTopicPartitionErrorRecord()
				e.RelativeOffset, e.ErrorMessage = index, msg
				bad = append(bad, e)
			}
			index++
		}
	}
	if len(bad) == 0 {
		return 0, nil, nil
	}
	return kerr.InvalidRecord.Code, msg, bad
}
