package agent

// Topic-level compression.type (and the KIP-390 levels), as Kafka applies
// it: at produce time. A produced batch whose codec is not the topic's is
// recompressed by the agent before the engine sees it, so what reaches the
// bucket is in the topic's codec; "producer" (the default) stores batches
// as sent and costs nothing. Only the compressed payload changes
// (segment.Recompress): base offset, lastOffsetDelta, timestamps, producer
// ID, epoch and base sequence, and every record's bytes are kept, so
// idempotent de-duplication and consumers see the same records either way.
// A change of compression.type applies to batches produced afterwards
// (within the topic cache's second); stored data is not rewritten.
//
// Why at produce time rather than at compaction: it is what Kafka does, so
// the bucket holds the topic's codec from the start (retention.bytes and
// the bill count compressed bytes at once), and compaction stays a pure
// copy of index entries. The cost is CPU on the produce path, only for
// topics that set a codec and only for batches in another codec
// (BenchmarkRecompress in segment/ measures it per codec).
//
// max.message.bytes applies to the batch as produced and, as in Kafka, to
// the batch as stored. A batch that does not decompress is CORRUPT_MESSAGE.

import (
	"errors"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/segment"
)

const (
	configCompressionType = "compression.type"
	configGzipLevel       = "compression.gzip.level"
	configLZ4Level        = "compression.lz4.level"
	configZstdLevel       = "compression.zstd.level"
)

// compressionTypes are Kafka's compression.type values.
var compressionTypes = []string{"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"}

// topicCodec returns the codec a topic stores batches in, and false for
// "producer" (keep the producer's).
func topicCodec(configs map[string]string) (segment.Codec, bool) {
	v, _ := topicConfigValue(configs, configCompressionType)
	level := func(name string) int {
		s, set := topicConfigValue(configs, name)
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if !set || err != nil || name == configGzipLevel && n == -1 {
			return segment.DefaultLevel
		}
		return n
	}
	switch strings.TrimSpace(v) {
	case "uncompressed":
		return segment.Codec{Type: segment.CompressionNone}, true
	case "gzip":
		return segment.Codec{Type: segment.CompressionGzip, Level: level(configGzipLevel)}, true
	case "snappy":
		return segment.Codec{Type: segment.CompressionSnappy}, true
	case "lz4":
		return segment.Codec{Type: segment.CompressionLZ4, Level: level(configLZ4Level)}, true
	case "zstd":
		return segment.Codec{Type: segment.CompressionZstd, Level: level(configZstdLevel)}, true
	}
	return segment.Codec{}, false
}

// storedRecords returns a partition's produced records as the topic stores
// them, or the error code refusing them.
func storedRecords(configs map[string]string, records []byte) ([]byte, int16) {
	c, ok := topicCodec(configs)
	if !ok {
		return records, 0
	}
	out, err := segment.Recompress(records, c)
	switch {
	case errors.Is(err, segment.ErrMagic):
		return nil, kerr.InvalidRecord.Code
	case err != nil:
		return nil, kerr.CorruptMessage.Code
	case len(out) != len(records) && segment.HasBatchOver(out, maxMessageBytes(configs)):
		return nil, kerr.MessageTooLarge.Code
	}
	return out, 0
}
