package agent

// Group configs (GROUP config resources, resource type 32, KIP-848 and
// KIP-932): set with IncrementalAlterConfigs (SET and DELETE), read with
// DescribeConfigs, stored in etcd (metastore.UpdateGroupConfigs) and read
// by any agent, cached for groupConfigTTL. Unknown names and values out of
// Kafka's ranges are INVALID_CONFIG. ACLs: ALTER_CONFIGS / DESCRIBE_CONFIGS
// on the cluster (Kafka checks the group resource).

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/share"
)

// groupConfigTTL is how long an agent serves a group's configs from its
// cache; a change reaches every agent within it.
const groupConfigTTL = time.Second

type groupConfigDef struct {
	typ      kmsg.ConfigType
	def      string
	min, max int64    // integer configs
	oneOf    []string // string configs
	// valid, when set, validates a string config instead of oneOf.
	valid func(string) error
	doc   string
}

// groupConfigDefs are the group configs shale knows, with Kafka's defaults
// (the broker-level group.* settings) and ranges.
var groupConfigDefs = map[string]groupConfigDef{
	"share.auto.offset.reset": {typ: kmsg.ConfigTypeString, def: "latest", valid: validShareReset,
		doc: "Where a share group starts reading a partition it has no state for: latest (the high watermark), earliest (the log start), or by_duration:<ISO-8601 duration> (the first record whose timestamp is at most that long ago, e.g. by_duration:PT1H; latest when there is none)."},
	"share.record.lock.duration.ms": {typ: kmsg.ConfigTypeInt, def: strconv.Itoa(int(share.DefaultLockDuration.Milliseconds())), min: 1000, max: 3600000,
		doc: "How long a share consumer holds records it acquired before they are released for redelivery."},
	"share.delivery.count.limit": {typ: kmsg.ConfigTypeInt, def: strconv.Itoa(share.DefaultDeliveryLimit), min: 2, max: share.MaxDeliveryLimit,
		doc: "How many times a record is delivered before it is archived."},
	"share.session.timeout.ms": {typ: kmsg.ConfigTypeInt, def: "45000", min: 1000, max: 1800000,
		doc: "A share group member that sends no heartbeat for this long leaves the group."},
	"share.heartbeat.interval.ms": {typ: kmsg.ConfigTypeInt, def: "5000", min: 1000, max: 900000,
		doc: "How often share group members heartbeat."},
	"share.isolation.level": {typ: kmsg.ConfigTypeString, def: "read_uncommitted", oneOf: []string{"read_uncommitted", "read_committed"},
		doc: "read_committed: share consumers do not receive records of open or aborted transactions."},
	"consumer.session.timeout.ms": {typ: kmsg.ConfigTypeInt, def: "45000", min: 1000, max: 1800000,
		doc: "A consumer group (KIP-848) member that sends no heartbeat for this long leaves the group."},
	"consumer.heartbeat.interval.ms": {typ: kmsg.ConfigTypeInt, def: "5000", min: 1000, max: 900000,
		doc: "How often consumer group (KIP-848) members heartbeat."},
}

func validateGroupConfig(name string, value *string) error {
	def, ok := groupConfigDefs[name]
	switch {
	case !ok:
		return fmt.Errorf("unknown group config %q", name)
	case value == nil:
		return fmt.Errorf("null value for %q", name)
	case def.valid != nil:
		if err := def.valid(*value); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
	case def.oneOf != nil:
		if !slices.Contains(def.oneOf, *value) {
			return fmt.Errorf("%s must be one of %v, not %q", name, def.oneOf, *value)
		}
	default:
		n, err := strconv.ParseInt(*value, 10, 64)
		if err != nil || n < def.min || n > def.max {
			return fmt.Errorf("%s must be an integer from %d to %d, not %q", name, def.min, def.max, *value)
		}
	}
	return nil
}

// alterGroupConfigs applies IncrementalAlterConfigs operations to a group.
func (s *Server) alterGroupConfigs(ctx context.Context, group string, validateOnly bool, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) error {
	if group == "" {
		return fmt.Errorf("%w: empty group ID", errConfig)
	}
	apply := func(cur map[string]string) (map[string]string, error) {
		next := maps.Clone(cur)
		if next == nil {
			next = map[string]string{}
		}
		for _, op := range ops {
			switch op.Op {
			case kmsg.IncrementalAlterConfigOpSet:
				if err := validateGroupConfig(op.Name, op.Value); err != nil {
					return nil, fmt.Errorf("%w: %v", errConfig, err)
				}
				next[op.Name] = *op.Value
			case kmsg.IncrementalAlterConfigOpDelete:
				if _, ok := groupConfigDefs[op.Name]; !ok {
					return nil, fmt.Errorf("%w: unknown group config %q", errConfig, op.Name)
				}
				delete(next, op.Name)
			default:
				return nil, fmt.Errorf("%w: group configs take SET or DELETE, not operation %d on %q", errConfig, op.Op, op.Name)
			}
		}
		return next, nil
	}
	if validateOnly {
		_, err := apply(nil)
		return err
	}
	if err := s.meta.UpdateGroupConfigs(ctx, group, apply); err != nil {
		return err
	}
	s.groupCfgs().forget(group)
	return nil
}

// describeGroupConfigs answers DescribeConfigs for a group.
func (s *Server) describeGroupConfigs(ctx context.Context, group string, names []string, withDocs bool) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	set, err := s.meta.GroupConfigs(ctx, group)
	if err != nil {
		return nil, err
	}
	if names == nil {
		names = slices.Sorted(maps.Keys(groupConfigDefs))
	}
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, n := range names {
		def, ok := groupConfigDefs[n]
		if !ok {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.ConfigType = n, def.typ
		if v, ok := set[n]; ok {
			c.Value, c.Source = kmsg.StringPtr(v), kmsg.ConfigSourceGroupConfig
		} else {
			c.Value, c.Source, c.IsDefault = kmsg.StringPtr(def.def), kmsg.ConfigSourceDefaultConfig, true
		}
		if withDocs {
			c.Documentation = kmsg.StringPtr(def.doc)
		}
		out = append(out, c)
	}
	return out, nil
}

// groupConfigCache holds the group configs an agent read lately.
type groupConfigCache struct {
	mu sync.Mutex
	m  map[string]cachedGroupConfigs
}

type cachedGroupConfigs struct {
	at  time.Time
	cfg map[string]string
}

func (s *Server) groupCfgs() *groupConfigCache {
	s.groupCfgOnce.Do(func() { s.groupCfgCache = &groupConfigCache{m: map[string]cachedGroupConfigs{}} })
	return s.groupCfgCache
}

func (c *groupConfigCache) forget(group string) {
	c.mu.Lock()
	delete(c.m, group)
	c.mu.Unlock()
}

// groupConfig returns a group config's value (its default when unset, or
// when etcd cannot be read: logged).
func (s *Server) groupConfig(ctx context.Context, group, name string) string {
	c := s.groupCfgs()
	c.mu.Lock()
	e, ok := c.m[group]
	c.mu.Unlock()
	if !ok || time.Since(e.at) > groupConfigTTL {
		cfg, err := s.meta.GroupConfigs(ctx, group)
		if err != nil {
			s.log.Warn("read group configs; using defaults", "group", group, "err", err)
		} else {
			e = cachedGroupConfigs{at: time.Now(), cfg: cfg}
			c.mu.Lock()
			if len(c.m) > 10000 {
				clear(c.m)
			}
			c.m[group] = e
			c.mu.Unlock()
		}
	}
	if v, ok := e.cfg[name]; ok {
		return v
	}
	return groupConfigDefs[name].def
}

// groupConfigInt is groupConfig for an integer config.
func (s *Server) groupConfigInt(ctx context.Context, group, name string) int64 {
	n, err := strconv.ParseInt(s.groupConfig(ctx, group, name), 10, 64)
	if err != nil {
		n, _ = strconv.ParseInt(groupConfigDefs[name].def, 10, 64)
	}
	return n
}

// shareResetByDuration prefixes share.auto.offset.reset's third form
// (KIP-1106).
const shareResetByDuration = "by_duration:"

func validShareReset(v string) error {
	if v == "earliest" || v == "latest" {
		return nil
	}
	if d, ok := strings.CutPrefix(v, shareResetByDuration); ok {
		_, err := parseISODuration(d)
		return err
	}
	return fmt.Errorf("want earliest, latest or by_duration:<ISO-8601 duration> (e.g. by_duration:PT1H), not %q", v)
}

// parseISODuration parses a non-negative ISO-8601 duration as Java's
// Duration.parse reads it (what Kafka uses): P[nD][T[nH][nM][n[.n]S]],
// letters in either case.
func parseISODuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("bad ISO-8601 duration %q: want P[nD][T[nH][nM][n[.n]S]], e.g. PT30M or P1DT12H", s)
	u := strings.ToUpper(s)
	rest, ok := strings.CutPrefix(u, "P")
	if !ok || rest == "" || rest == "T" || strings.HasSuffix(rest, "T") {
		return 0, bad
	}
	date, tm, hasT := strings.Cut(rest, "T")
	var total float64
	take := func(part string, units []string, scales []float64) bool {
		for part != "" {
			i := strings.IndexAny(part, "DHMS")
			if i <= 0 {
				return false
			}
			n, err := strconv.ParseFloat(part[:i], 64)
			if err != nil || n < 0 || strings.ContainsAny(part[:i], "eE+-") {
				return false
			}
			j := slices.Index(units, part[i:i+1])
			if j < 0 || (part[i] != 'S' && strings.Contains(part[:i], ".")) {
				return false
			}
			total += n * scales[j]
			units, scales = units[j+1:], scales[j+1:] // each unit once, in order
			part = part[i+1:]
		}
		return true
	}
	if !take(date, []string{"D"}, []float64{86400}) || hasT && !take(tm, []string{"H", "M", "S"}, []float64{3600, 60, 1}) {
		return 0, bad
	}
	if total > float64(math.MaxInt64)/1e9 {
		return 0, bad
	}
	return time.Duration(total * 1e9), nil
}
