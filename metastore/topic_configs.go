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
