package agent

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

// Topic configs shale knows. Names, types and defaults are Kafka's (3.x).
// Some are enforced by shale; the others are accepted and stored so that
// tools which set them keep working, but they have no effect (replication,
// local log segments, tiered storage and flushing do not exist here:
// durability comes from the bucket). Their documentation, which
// DescribeConfigs returns on request, starts "Accepted, no effect". They
// include the configs Kafka 3.x itself accepts and ignores:
// message.format.version (deprecated in 3.0; message format v2 is the only
// one) and message.downconversion.enable; and those of its tiered storage
// (remote.storage.enable, local.retention.ms/bytes,
// remote.log.copy.disable, remote.log.delete.on.disable). Like any other
// config they are reported by DescribeConfigs with the value set
// (DYNAMIC_TOPIC_CONFIG) or Kafka's default (DEFAULT_CONFIG). Configs whose
// Kafka meaning shale cannot honour are refused with INVALID_CONFIG rather
// than silently ignored: message.timestamp.type=LogAppendTime. Unknown
// names are refused too, as Kafka does.
//
// cleanup.policy is a list as in Kafka: "delete", "compact" or both in
// either order ("compact,delete"), spaces and repeats allowed; an empty
// list or another item is INVALID_CONFIG naming the item. "compact" makes
// the elected key-compaction job (lifecycle.CompactKeys) keep the latest
// record of each key and the produce path refuse keyless records
// (compacted.go); retention applies only with "delete". The compaction
// configs (min.compaction.lag.ms, max.compaction.lag.ms,
// delete.retention.ms, min.cleanable.dirty.ratio, whose value outside
// [0, 1] is INVALID_CONFIG) are validated and stored with Kafka's defaults
// (metastore's Default* constants), as are segment.ms and segment.bytes
// (which bound the active head of a compacted topic) and
// min.insync.replicas, so that Kafka Connect, Schema Registry and Streams
// can create their topics with the configs they send.
//
// shale.flush.ms is shale's own: a topic's latency class (engine
// ProduceEvery), its partitions sealed on a timer of their own.
// shale.iceberg.mode is too: "key_value" or "json" has the iceberg
// lifecycle job materialize the topic into an Iceberg table (package
// icetable); "disabled" is the default. Other values are INVALID_CONFIG.
// shale.iceberg.partition is "day" (the default) or "hour", the table's
// partition granularity; other values are INVALID_CONFIG.
// shale.iceberg.target.file.bytes (default 128 MiB, at least 1024) sizes
// the table's data files (small files are rewritten).
//
// compression.type takes every Kafka value, with the KIP-390 levels
// (compression.gzip.level, compression.lz4.level, compression.zstd.level);
// compression.go says where and how batches are recompressed.
//
// The defaults below are what DescribeConfigs reports for a topic that does
// not set a config; the lifecycle jobs must apply the same defaults.
type topicConfig struct {
	typ      kmsg.ConfigType
	def      string
	enforced bool
	check    func(v string) error // beyond the type check; nil: none
	doc      string
}

const (
	configCleanupPolicy   = "cleanup.policy"
	configMaxMessageBytes = "max.message.bytes"
	configFlushMs         = "shale.flush.ms"
	configRetentionMs     = metastore.ConfigRetentionMs
	configRetentionBytes  = metastore.ConfigRetentionBytes
	defaultMaxMessage     = 1048588
	maxLong               = "9223372036854775807"
)

var topicConfigs = map[string]topicConfig{
	configCleanupPolicy: {typ: kmsg.ConfigTypeList, def: metastore.DefaultCleanupPolicy, enforced: true, check: cleanupPolicy,
		doc: "\"delete\": retention.ms and retention.bytes apply. \"compact\": the latest record of each key is kept (key compaction), records without a key are refused. Both: \"compact,delete\"."},
	configCompressionType: {typ: kmsg.ConfigTypeString, def: "producer", enforced: true, check: oneOf(compressionTypes...),
		doc: "The codec batches are stored in: \"producer\" keeps the producer's; uncompressed, gzip, snappy, lz4 or zstd recompress at produce time a batch in another codec."},
	configGzipLevel: {typ: kmsg.ConfigTypeInt, def: "-1", enforced: true, check: gzipLevel,
		doc: "gzip level when compression.type=gzip: 1-9, or -1 for the codec's default (6)."},
	configLZ4Level: {typ: kmsg.ConfigTypeInt, def: "9", enforced: true, check: between(1, 17),
		doc: "lz4 level when compression.type=lz4: 1 to 17; up to 9 (the default) lz4's fast compressor, 10 to 17 its high-compression levels 2 to 9."},
	configZstdLevel: {typ: kmsg.ConfigTypeInt, def: "3", enforced: true, check: between(-131072, 22),
		doc: "zstd level when compression.type=zstd: -131072 to 22."},
	"local.retention.bytes":        {typ: kmsg.ConfigTypeLong, def: "-2", check: atLeast(-2), doc: "Accepted, no effect: shale has no local tier."},
	"local.retention.ms":           {typ: kmsg.ConfigTypeLong, def: "-2", check: atLeast(-2), doc: "Accepted, no effect: shale has no local tier."},
	"message.format.version":       {typ: kmsg.ConfigTypeString, def: "3.0-IV1", check: kafkaVersion, doc: "Accepted, no effect (deprecated in Kafka 3.0, which ignores it too): batches are message format v2."},
	"remote.log.copy.disable":      {typ: kmsg.ConfigTypeBoolean, def: "false", doc: "Accepted, no effect: all data is in the bucket."},
	"remote.log.delete.on.disable": {typ: kmsg.ConfigTypeBoolean, def: "false", doc: "Accepted, no effect: all data is in the bucket."},
	"remote.storage.enable":        {typ: kmsg.ConfigTypeBoolean, def: "false", doc: "Accepted, no effect: all data is in the bucket."},
	metastore.ConfigDeleteRetentionMs: {typ: kmsg.ConfigTypeLong, def: strconv.Itoa(metastore.DefaultDeleteRetentionMs), enforced: true, check: atLeast(0),
		doc: "Key compaction: how long a tombstone (null value) is kept after the compaction pass that reached it."},
	"file.delete.delay.ms": {typ: kmsg.ConfigTypeLong, def: "60000", check: atLeast(0), doc: "Accepted, no effect."},
	"flush.messages":       {typ: kmsg.ConfigTypeLong, def: maxLong, check: atLeast(1), doc: "Accepted, no effect: acknowledged records are in the bucket."},
	"flush.ms":             {typ: kmsg.ConfigTypeLong, def: maxLong, check: atLeast(0), doc: "Accepted, no effect: acknowledged records are in the bucket."},
	"follower.replication.throttled.replicas": {typ: kmsg.ConfigTypeList, def: "", doc: "Accepted, no effect."},
	"leader.replication.throttled.replicas":   {typ: kmsg.ConfigTypeList, def: "", doc: "Accepted, no effect."},
	"index.interval.bytes":                    {typ: kmsg.ConfigTypeInt, def: "4096", check: atLeast(0), doc: "Accepted, no effect."},
	metastore.ConfigMaxCompactionLagMs: {typ: kmsg.ConfigTypeLong, def: maxLong, enforced: true, check: atLeast(1),
		doc: "Key compaction: a pass is forced once a dirty record is this old, whatever min.cleanable.dirty.ratio says."},
	configMaxMessageBytes: {typ: kmsg.ConfigTypeInt, def: strconv.Itoa(defaultMaxMessage), enforced: true, check: atLeast(0),
		doc: "Largest record batch accepted by Produce."},
	metastore.ConfigIcebergMode: {typ: kmsg.ConfigTypeString, def: metastore.DefaultIcebergMode, enforced: true, check: oneOf(metastore.IcebergDisabled, metastore.IcebergKeyValue, metastore.IcebergJSON),
		doc: "shale's own: \"key_value\" makes the elected iceberg job materialize the topic, exactly once, into an Apache Iceberg table in the bucket under iceberg/<topic>/ (columns partition, offset, timestamp, key, value, headers; partitioned by day of the record timestamp), every --iceberg-interval. \"json\": the same, with the fields of JSON object values as columns (added as they appear), the record's metadata as _partition, _offset, _timestamp, _key, _headers, and in _raw the whole value of a record that is not an object or has a field of another type than its column. A table keeps the mode it was created in. \"disabled\" (the default): no table."},
	metastore.ConfigIcebergPartition: {typ: kmsg.ConfigTypeString, def: metastore.DefaultIcebergPartition, enforced: true, check: oneOf(metastore.IcebergPartitionDay, metastore.IcebergPartitionHour),
		doc: "shale's own: the partitions of the topic's Iceberg table (shale.iceberg.mode), by the record timestamp: \"day\" (the default) or \"hour\". A change applies to the files of the next commits (Iceberg partition evolution); files already written keep their partitioning."},
	metastore.ConfigIcebergTargetFileBytes: {typ: kmsg.ConfigTypeLong, def: strconv.Itoa(metastore.DefaultIcebergTargetFileBytes), enforced: true, check: atLeast(1024),
		doc: "shale's own: the size the data files of the topic's Iceberg table aim at (at least 1024). Each commit writes what it read; the iceberg job then rewrites a partition's files under 75% of this size into files of this size once they add up to 75% of it, or once the partition's day or hour is over (by an hour)."},
	configFlushMs: {typ: kmsg.ConfigTypeLong, def: "0", enforced: true, check: flushMs,
		doc: "shale's latency class: this topic's partitions are sealed into objects of their own every this many ms (1 to 60000) instead of the agent's --flush-interval. acks=all latency follows it (about 1.5x for clients with one batch per partition in flight); each agent writing the topic makes one PUT per interval while records arrive. 0: the agent's interval."},
	"message.downconversion.enable": {typ: kmsg.ConfigTypeBoolean, def: "true", doc: "Accepted, no effect: shale never down-converts."},
	"message.timestamp.type": {typ: kmsg.ConfigTypeString, def: "CreateTime", enforced: true, check: oneOf("CreateTime"),
		doc: "Only CreateTime: batches are stored as sent."},
	"message.timestamp.difference.max.ms": {typ: kmsg.ConfigTypeLong, def: maxLong, check: atLeast(0), doc: "Accepted, not enforced."},
	"message.timestamp.before.max.ms":     {typ: kmsg.ConfigTypeLong, def: maxLong, check: atLeast(0), doc: "Accepted, not enforced."},
	"message.timestamp.after.max.ms":      {typ: kmsg.ConfigTypeLong, def: maxLong, check: atLeast(0), doc: "Accepted, not enforced."},
	metastore.ConfigMinCleanableDirtyRatio: {typ: kmsg.ConfigTypeDouble, def: "0.5", enforced: true, check: ratio,
		doc: "Key compaction: a pass runs once the not yet compacted part of a partition is at least this fraction of its compactable bytes (0 to 1)."},
	metastore.ConfigMinCompactionLagMs: {typ: kmsg.ConfigTypeLong, def: strconv.Itoa(metastore.DefaultMinCompactionLagMs), enforced: true, check: atLeast(0),
		doc: "Key compaction: records younger than this are never compacted."},
	"min.insync.replicas": {typ: kmsg.ConfigTypeInt, def: "1", check: atLeast(1), doc: "Accepted, no effect: durability comes from the bucket."},
	"preallocate":         {typ: kmsg.ConfigTypeBoolean, def: "false", doc: "Accepted, no effect."},
	configRetentionBytes: {typ: kmsg.ConfigTypeLong, def: strconv.Itoa(metastore.DefaultRetentionBytes), enforced: true, check: atLeast(-1),
		doc: "Bytes kept per partition before old data is deleted, whole index entries at a time; -1 keeps everything."},
	// Unlike Kafka (7 days), shale keeps data forever by default: cheap long
	// retention is its purpose. The retention job applies this same default.
	configRetentionMs: {typ: kmsg.ConfigTypeLong, def: strconv.Itoa(metastore.DefaultRetentionMs), enforced: true, check: atLeast(-1),
		doc: "Age (by record timestamp) after which data is deleted, whole index entries at a time; -1 (the default) keeps it forever."},
	"segment.bytes": {typ: kmsg.ConfigTypeInt, def: "1073741824", enforced: true, check: atLeast(14),
		doc: "Key compaction only (shale sizes its own objects): records followed by at least this many bytes are past the active head, as when Kafka rolls a segment at this size."},
	"segment.index.bytes": {typ: kmsg.ConfigTypeInt, def: "10485760", check: atLeast(4), doc: "Accepted, no effect."},
	"segment.jitter.ms":   {typ: kmsg.ConfigTypeLong, def: "0", check: atLeast(0), doc: "Accepted, no effect."},
	"segment.ms": {typ: kmsg.ConfigTypeLong, def: "604800000", enforced: true, check: atLeast(1),
		doc: "Key compaction only (shale sizes its own objects): records committed less than min(segment.ms, max.compaction.lag.ms) ago, with less than segment.bytes after them, are the active head, never compacted."},
	"unclean.leader.election.enable": {typ: kmsg.ConfigTypeBoolean, def: "false", doc: "Accepted, no effect: there are no replicas."},
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("shale supports only %s", strings.Join(quoteAll(allowed), ", "))
	}
}

// cleanupPolicy checks a cleanup.policy list: items "delete" or "compact".
func cleanupPolicy(v string) error {
	items := metastore.ParseCleanupPolicy(v)
	if len(items) == 0 {
		return fmt.Errorf("must list \"delete\", \"compact\" or both")
	}
	for _, p := range items {
		switch p {
		case metastore.CleanupDelete:
		case metastore.CleanupCompact:
		default:
			return fmt.Errorf("unknown policy %q: Kafka's are \"delete\" and \"compact\"", p)
		}
	}
	return nil
}

func between(lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be an integer in [%d, %d]", lo, hi)
		}
		return nil
	}
}

func gzipLevel(v string) error {
	if strings.TrimSpace(v) == "-1" {
		return nil
	}
	if between(1, 9)(v) != nil {
		return fmt.Errorf("must be -1 or an integer in [1, 9]")
	}
	return nil
}

// kafkaVersion accepts what Kafka's message.format.version validator does
// (MetadataVersion.fromVersionString): a release of two to four numbers
// ("2.8", "3.0", "0.10.0", "0.10.0.0" as librdkafka's tests set it) with
// an optional "-IVn" suffix.
var kafkaVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){1,3}(-IV[0-9]+)?$`)

func kafkaVersion(v string) error {
	if !kafkaVersionRE.MatchString(v) {
		return fmt.Errorf("must be a Kafka version such as 2.8 or 3.0-IV1")
	}
	return nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

func atLeast(minimum int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < minimum {
			return fmt.Errorf("must be an integer >= %d", minimum)
		}
		return nil
	}
}

func ratio(v string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
		return fmt.Errorf("must be a number in [0, 1]")
	}
	return nil
}

// validateTopicConfig checks one topic config; the error says why it is
// refused (answered as INVALID_CONFIG).
func validateTopicConfig(name string, value *string) error {
	def, ok := topicConfigs[name]
	if !ok {
		return fmt.Errorf("unknown topic config %q", name)
	}
	if value == nil {
		return fmt.Errorf("null value for topic config %q", name)
	}
	if checkConfigType(def.typ, *value) != nil {
		return fmt.Errorf("invalid value %q for %s config %q", *value, def.typ, name)
	}
	if def.check != nil {
		if err := def.check(strings.TrimSpace(*value)); err != nil {
			return fmt.Errorf("invalid value %q for config %q: %v", *value, name, err)
		}
	}
	return nil
}

// validateTopicConfigSet checks what single configs cannot: as Kafka's
// LogConfig.validate, max.compaction.lag.ms below min.compaction.lag.ms
// (the effective values, defaults included) is refused.
func validateTopicConfigSet(configs map[string]string) error {
	c := metastore.CompactionOf(configs)
	if c.MaxLagMs < c.MinLagMs {
		return fmt.Errorf("conflicting topic configs: max.compaction.lag.ms (%d) is below min.compaction.lag.ms (%d)", c.MaxLagMs, c.MinLagMs)
	}
	return nil
}

// topicConfigValue returns the effective value of a config for a topic and
// whether the topic sets it.
func topicConfigValue(configs map[string]string, name string) (string, bool) {
	if v, ok := configs[name]; ok {
		return v, true
	}
	return topicConfigs[name].def, false
}

func flushMs(v string) error {
	if between(0, 60000)(v) != nil {
		return fmt.Errorf("must be 0 (the agent's --flush-interval) or a number of milliseconds in [1, 60000]")
	}
	return nil
}

// flushInterval returns the topic's latency class (shale.flush.ms); 0 is the
// engine's own interval.
func flushInterval(configs map[string]string) time.Duration {
	v, _ := topicConfigValue(configs, configFlushMs)
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 || n > 60000 {
		return 0
	}
	return time.Duration(n) * time.Millisecond
}

// maxMessageBytes returns the topic's max.message.bytes.
func maxMessageBytes(configs map[string]string) int {
	v, _ := topicConfigValue(configs, configMaxMessageBytes)
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	if err != nil || n < 0 {
		return defaultMaxMessage
	}
	return int(n)
}

// describeTopicConfigs lists a topic's configs (all known ones, or those
// named) for DescribeConfigs and CreateTopics.
func describeTopicConfigs(configs map[string]string, names []string, withDocs bool) []kmsg.DescribeConfigsResponseResourceConfig {
	if names == nil {
		for n := range topicConfigs {
			names = append(names, n)
		}
		for n := range configs {
			if _, known := topicConfigs[n]; !known {
				names = append(names, n) // stored before shale knew better
			}
		}
		sort.Strings(names)
	}
	out := make([]kmsg.DescribeConfigsResponseResourceConfig, 0, len(names))
	for _, n := range names {
		def, known := topicConfigs[n]
		v, set := configs[n]
		if !known && !set {
			continue // Kafka omits unknown names
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name = n
		c.ConfigType = def.typ
		if set {
			c.Value = kmsg.StringPtr(v)
			c.Source = kmsg.ConfigSourceDynamicTopicConfig
		} else {
			c.Value = kmsg.StringPtr(def.def)
			c.IsDefault = true
			c.Source = kmsg.ConfigSourceDefaultConfig
		}
		if withDocs && def.doc != "" {
			c.Documentation = kmsg.StringPtr(def.doc)
		}
		out = append(out, c)
	}
	return out
}

// TopicConfigIgnored reports whether shale accepts a topic config name but
// gives it no effect (e.g. min.insync.replicas, flush.messages), for tools that
// show configs.
func TopicConfigIgnored(name string) bool {
	c, ok := topicConfigs[name]
	return ok && !c.enforced
}

// checkConfigType reports whether value (spaces around it ignored) parses
// as a config of Kafka type typ: a short, int or long in range, a double,
// or a boolean (true or false, any case). Other types take any string.
func checkConfigType(typ kmsg.ConfigType, value string) error {
	v := strings.TrimSpace(value)
	var err error
	switch typ {
	case kmsg.ConfigTypeShort:
		_, err = strconv.ParseInt(v, 10, 16)
	case kmsg.ConfigTypeInt:
		_, err = strconv.ParseInt(v, 10, 32)
	case kmsg.ConfigTypeLong:
		_, err = strconv.ParseInt(v, 10, 64)
	case kmsg.ConfigTypeDouble:
		_, err = strconv.ParseFloat(v, 64)
	case kmsg.ConfigTypeBoolean:
		if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
			err = fmt.Errorf("not a boolean")
		}
	}
	return err
}
