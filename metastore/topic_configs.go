package metastore

import (
	"strconv"
	"strings"
)

// Retention configs and their defaults. shale keeps data forever unless a
// topic says otherwise (retention.ms = -1, unlike Kafka's 7 days): long,
// cheap retention is what it is for, and deleting data nobody asked to
// delete cannot be undone. DescribeConfigs reports these same defaults.
const (
	ConfigRetentionMs     = "retention.ms"
	ConfigRetentionBytes  = "retention.bytes"
	DefaultRetentionMs    = -1
	DefaultRetentionBytes = -1
)

// RetentionOf returns a topic's retention.ms and retention.bytes (-1:
// unlimited), applying the defaults for unset or unparsable values.
func RetentionOf(configs map[string]string) (ms, bytes int64) {
	get := func(name string, def int64) int64 {
		v, ok := configs[name]
		if !ok {
			return def
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < -1 {
			return def
		}
		return n
	}
	return get(ConfigRetentionMs, DefaultRetentionMs), get(ConfigRetentionBytes, DefaultRetentionBytes)
}

// cleanup.policy and the compaction configs, with Kafka's defaults
// (DescribeConfigs reports the same ones). cleanup.policy is a list of
// "delete" and "compact", in any order; see CleanupPolicyOf.
const (
	ConfigCleanupPolicy          = "cleanup.policy"
	ConfigMinCompactionLagMs     = "min.compaction.lag.ms"
	ConfigMaxCompactionLagMs     = "max.compaction.lag.ms"
	ConfigDeleteRetentionMs      = "delete.retention.ms"
	ConfigMinCleanableDirtyRatio = "min.cleanable.dirty.ratio"
	ConfigSegmentMs              = "segment.ms"
	ConfigSegmentBytes           = "segment.bytes"

	CleanupDelete                 = "delete"
	CleanupCompact                = "compact"
	DefaultCleanupPolicy          = CleanupDelete
	DefaultMinCompactionLagMs     = 0
	DefaultMaxCompactionLagMs     = int64(1<<63 - 1)
	DefaultDeleteRetentionMs      = 86400000 // 1 day
	DefaultMinCleanableDirtyRatio = 0.5
	DefaultSegmentMs              = 604800000 // 7 days
	DefaultSegmentBytes           = 1 << 30
)

// ParseCleanupPolicy splits a cleanup.policy value (a comma-separated list,
// Kafka's LIST type) into its items, trimmed, empty items dropped.
func ParseCleanupPolicy(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// CleanupPolicyOf reports which cleanups a topic's cleanup.policy asks for:
// delete (retention.ms / retention.bytes apply) and compact (key
// compaction; a record without a key is refused at produce time). An unset
// value is the default, delete; unknown items are ignored (the agents
// refuse them before they are stored).
func CleanupPolicyOf(configs map[string]string) (deletes, compacts bool) {
	v, ok := configs[ConfigCleanupPolicy]
	if !ok {
		return true, false
	}
	for _, p := range ParseCleanupPolicy(v) {
		switch p {
		case CleanupDelete:
			deletes = true
		case CleanupCompact:
			compacts = true
		}
	}
	return deletes, compacts
}

// Compaction is a topic's key-compaction configs (Kafka's names and
// defaults; unset or unparsable values take the default).
type Compaction struct {
	MinLagMs, MaxLagMs, DeleteRetentionMs, SegmentMs, SegmentBytes int64
	MinCleanableDirtyRatio                                         float64
}

// CompactionOf reads a topic's compaction configs.
func CompactionOf(configs map[string]string) Compaction {
	get := func(name string, def int64) int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(configs[name]), 10, 64)
		if err != nil || n < 0 {
			return def
		}
		return n
	}
	c := Compaction{
		MinLagMs:               get(ConfigMinCompactionLagMs, DefaultMinCompactionLagMs),
		MaxLagMs:               get(ConfigMaxCompactionLagMs, DefaultMaxCompactionLagMs),
		DeleteRetentionMs:      get(ConfigDeleteRetentionMs, DefaultDeleteRetentionMs),
		SegmentMs:              get(ConfigSegmentMs, DefaultSegmentMs),
		SegmentBytes:           get(ConfigSegmentBytes, DefaultSegmentBytes),
		MinCleanableDirtyRatio: DefaultMinCleanableDirtyRatio,
	}
	if f, err := strconv.ParseFloat(strings.TrimSpace(configs[ConfigMinCleanableDirtyRatio]), 64); err == nil && f >= 0 && f <= 1 {
		c.MinCleanableDirtyRatio = f
	}
	return c
}

// shale.iceberg.mode: whether and how the iceberg job materializes a topic
// into an Iceberg table (package icetable). Unset is disabled.
const (
	ConfigIcebergMode  = "shale.iceberg.mode"
	IcebergDisabled    = "disabled"
	IcebergKeyValue    = "key_value"
	IcebergJSON        = "json"
	DefaultIcebergMode = IcebergDisabled
)

// shale.iceberg.partition: the time granularity of a topic's table
// partitions (by record timestamp). Unset is day.
const (
	ConfigIcebergPartition  = "shale.iceberg.partition"
	IcebergPartitionDay     = "day"
	IcebergPartitionHour    = "hour"
	DefaultIcebergPartition = IcebergPartitionDay
)

// shale.iceberg.target.file.bytes: the data file size a topic's table
// aims at (package icetable rewrites smaller files into files of this
// size). At least 1024.
const (
	ConfigIcebergTargetFileBytes  = "shale.iceberg.target.file.bytes"
	DefaultIcebergTargetFileBytes = 128 << 20
)
