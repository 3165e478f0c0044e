package agent

// Dynamic broker configs (BROKER config resources): what Kafka's
// DynamicBrokerConfig lets AlterConfigs and IncrementalAlterConfigs change
// without a restart, per broker (resource name: a node ID) or as
// cluster-wide defaults (resource name ""). shale stores them in etcd
// (metastore.UpdateBrokerConfigs, compare-and-swap), any agent answers for
// any live agent, and DescribeConfigs shows them with source
// DYNAMIC_BROKER_CONFIG or DYNAMIC_DEFAULT_BROKER_CONFIG (a node's own
// value over the default).
//
// Decisions:
//   - Accepted (dynamicBrokerConfigs): the dynamic configs that mean
//     nothing on shale (Kerberos, thread pools, the log cleaner's tuning,
//     replication throttles, per-IP connection limits, the remote tier...).
//     They are validated by their Kafka type, stored and described, and
//     have no effect: their documentation says "Accepted, no effect on
//     shale" and why. None of them changes what an agent does.
//   - Refused with INVALID_REQUEST "Cannot update these configs
//     dynamically": every static Kafka broker config, any name shale does
//     not know (Kafka would keep a custom name; shale does not store what
//     nothing reads), and the dynamic configs that map onto a setting shale
//     takes elsewhere (brokerConfigsElsewhere): topic defaults such as
//     log.retention.ms (set the topic config instead), TLS and listeners
//     (agent flags), max.connections (--max-connections). The message names
//     where each of those is set on shale.
//   - A config Kafka takes only per broker (SASL/Kerberos and listener
//     settings) set on "" is INVALID_REQUEST, as in Kafka.
//   - A bad value is INVALID_CONFIG naming the config and its type. A node
//     ID that is no live agent is INVALID_REQUEST "Unexpected broker id"
//     (Kafka's answer from a broker asked about another), a name that is
//     no integer INVALID_REQUEST "Broker id must be an integer".
//   - No accepted config is a password (the ssl.* ones are refused); were
//     one added, DescribeConfigs answers its value null, IsSensitive.
//   - DescribeConfigs of a node lists the static settings (brokerConfigs in
//     describe_configs.go, read-only) and the dynamic configs set; of "" only the
//     dynamic defaults, as Kafka. Configs not set are not listed with
//     Kafka's defaults, which shale would not apply anyway.
// ACLs: ALTER_CONFIGS / DESCRIBE_CONFIGS on the cluster (acl_enforce.go's
// onConfigs), as Kafka.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type brokerConfigDef struct {
	typ kmsg.ConfigType
	// perBroker: Kafka takes it only for one broker, not as a default.
	perBroker bool
	doc       string
}

const (
	noKerberos   = "Accepted, no effect on shale: shale has no Kerberos (GSSAPI)."
	noLogin      = "Accepted, no effect on shale: agents do not log in to one another (no inter-broker SASL)."
	noThreads    = "Accepted, no effect on shale: an agent has no such thread pool (Go schedules its work)."
	noCleaner    = "Accepted, no effect on shale: key compaction is one elected job that reads the bucket; it takes none of Kafka's cleaner tuning."
	noReplicas   = "Accepted, no effect on shale: there are no replicas; the bucket holds every byte."
	noLocalLog   = "Accepted, no effect on shale: there is no local log (records are acknowledged once in the bucket)."
	noRemoteTier = "Accepted, no effect on shale: there is no remote tier; all data is in the bucket."
)

// dynamicBrokerConfigs are Kafka's dynamic broker configs that shale
// accepts, by name, with Kafka's types.
var dynamicBrokerConfigs = map[string]brokerConfigDef{
	"sasl.kerberos.service.name":               {typ: kmsg.ConfigTypeString, perBroker: true, doc: noKerberos},
	"sasl.kerberos.kinit.cmd":                  {typ: kmsg.ConfigTypeString, perBroker: true, doc: noKerberos},
	"sasl.kerberos.ticket.renew.window.factor": {typ: kmsg.ConfigTypeDouble, perBroker: true, doc: noKerberos},
	"sasl.kerberos.ticket.renew.jitter":        {typ: kmsg.ConfigTypeDouble, perBroker: true, doc: noKerberos},
	"sasl.kerberos.min.time.before.relogin":    {typ: kmsg.ConfigTypeLong, perBroker: true, doc: noKerberos},
	"sasl.kerberos.principal.to.local.rules":   {typ: kmsg.ConfigTypeList, perBroker: true, doc: noKerberos},
	"sasl.login.refresh.window.factor":         {typ: kmsg.ConfigTypeDouble, perBroker: true, doc: noLogin},
	"sasl.login.refresh.window.jitter":         {typ: kmsg.ConfigTypeDouble, perBroker: true, doc: noLogin},
	"sasl.login.refresh.min.period.seconds":    {typ: kmsg.ConfigTypeShort, perBroker: true, doc: noLogin},
	"sasl.login.refresh.buffer.seconds":        {typ: kmsg.ConfigTypeShort, perBroker: true, doc: noLogin},

	"num.io.threads":                    {typ: kmsg.ConfigTypeInt, doc: noThreads},
	"num.network.threads":               {typ: kmsg.ConfigTypeInt, doc: noThreads},
	"num.replica.fetchers":              {typ: kmsg.ConfigTypeInt, doc: noThreads},
	"num.recovery.threads.per.data.dir": {typ: kmsg.ConfigTypeInt, doc: noThreads},
	"background.threads":                {typ: kmsg.ConfigTypeInt, doc: noThreads},

	"log.cleaner.threads":                            {typ: kmsg.ConfigTypeInt, doc: noCleaner},
	"log.cleaner.dedupe.buffer.size":                 {typ: kmsg.ConfigTypeLong, doc: noCleaner},
	"log.cleaner.io.buffer.load.factor":              {typ: kmsg.ConfigTypeDouble, doc: noCleaner},
	"log.cleaner.io.buffer.size":                     {typ: kmsg.ConfigTypeInt, doc: noCleaner},
	"log.cleaner.io.max.bytes.per.second":            {typ: kmsg.ConfigTypeDouble, doc: noCleaner},
	"log.cleaner.backoff.ms":                         {typ: kmsg.ConfigTypeLong, doc: noCleaner},
	"log.flush.interval.messages":                    {typ: kmsg.ConfigTypeLong, doc: noLocalLog},
	"log.flush.interval.ms":                          {typ: kmsg.ConfigTypeLong, doc: noLocalLog},
	"log.preallocate":                                {typ: kmsg.ConfigTypeBoolean, doc: noLocalLog},
	"log.index.interval.bytes":                       {typ: kmsg.ConfigTypeInt, doc: noLocalLog},
	"log.index.size.max.bytes":                       {typ: kmsg.ConfigTypeInt, doc: noLocalLog},
	"log.segment.delete.delay.ms":                    {typ: kmsg.ConfigTypeLong, doc: noLocalLog},
	"log.roll.jitter.ms":                             {typ: kmsg.ConfigTypeLong, doc: noLocalLog},
	"log.roll.jitter.hours":                          {typ: kmsg.ConfigTypeInt, doc: noLocalLog},
	"log.message.downconversion.enable":              {typ: kmsg.ConfigTypeBoolean, doc: "Accepted, no effect on shale: shale never down-converts."},
	"log.message.timestamp.difference.max.ms":        {typ: kmsg.ConfigTypeLong, doc: "Accepted, no effect on shale: timestamps are not checked (as the topic config message.timestamp.difference.max.ms)."},
	"unclean.leader.election.enable":                 {typ: kmsg.ConfigTypeBoolean, doc: noReplicas},
	"min.insync.replicas":                            {typ: kmsg.ConfigTypeInt, doc: noReplicas},
	"follower.replication.throttled.rate":            {typ: kmsg.ConfigTypeLong, doc: noReplicas},
	"leader.replication.throttled.rate":              {typ: kmsg.ConfigTypeLong, doc: noReplicas},
	"replica.alter.log.dirs.io.max.bytes.per.second": {typ: kmsg.ConfigTypeLong, doc: noReplicas},

	"metric.reporters":                 {typ: kmsg.ConfigTypeList, doc: "Accepted, no effect on shale: metrics are served in Prometheus format by the agent's admin server (--admin-listen)."},
	"max.connections.per.ip":           {typ: kmsg.ConfigTypeInt, doc: "Accepted, no effect on shale: connections are limited per agent only (--max-connections)."},
	"max.connections.per.ip.overrides": {typ: kmsg.ConfigTypeString, doc: "Accepted, no effect on shale: connections are limited per agent only (--max-connections)."},
	"max.connection.creation.rate":     {typ: kmsg.ConfigTypeInt, doc: "Accepted, no effect on shale: connections are limited per agent only (--max-connections)."},

	"remote.log.index.file.cache.total.size.bytes":  {typ: kmsg.ConfigTypeLong, doc: noRemoteTier},
	"remote.log.manager.copy.max.bytes.per.second":  {typ: kmsg.ConfigTypeLong, doc: noRemoteTier},
	"remote.log.manager.fetch.max.bytes.per.second": {typ: kmsg.ConfigTypeLong, doc: noRemoteTier},
}

// brokerConfigsElsewhere are dynamic in Kafka but map onto a setting shale
// takes elsewhere; they are refused, the message saying where.
var brokerConfigsElsewhere = map[string]string{
	"message.max.bytes":                 "the topic config max.message.bytes",
	"log.retention.ms":                  "the topic config retention.ms (default -1: kept forever)",
	"log.retention.minutes":             "the topic config retention.ms (default -1: kept forever)",
	"log.retention.hours":               "the topic config retention.ms (default -1: kept forever)",
	"log.retention.bytes":               "the topic config retention.bytes",
	"log.cleanup.policy":                "the topic config cleanup.policy",
	"log.segment.bytes":                 "the topic config segment.bytes",
	"log.roll.ms":                       "the topic config segment.ms",
	"log.roll.hours":                    "the topic config segment.ms",
	"log.cleaner.delete.retention.ms":   "the topic config delete.retention.ms",
	"log.cleaner.min.compaction.lag.ms": "the topic config min.compaction.lag.ms",
	"log.cleaner.max.compaction.lag.ms": "the topic config max.compaction.lag.ms",
	"log.cleaner.min.cleanable.ratio":   "the topic config min.cleanable.dirty.ratio",
	"compression.type":                  "the topic config compression.type",
	"log.message.timestamp.type":        "the topic config message.timestamp.type",
	"max.connections":                   "the agent flag --max-connections",
	"listeners":                         "the agent flags --listen and --listener",
	"advertised.listeners":              "the agent flags --advertised-host, --advertised-port and --listener",
	"listener.security.protocol.map":    "the agent flag --listener",
	"sasl.enabled.mechanisms":           "the agent's SASL listeners (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; OAUTHBEARER with --sasl-oauthbearer-unsecured)",
	"producer.id.expiration.ms":         "a fixed day (Kafka's default)",
}

// tlsElsewhere covers the ssl.* configs: shale's TLS is the agent flags.
const tlsElsewhere = "the agent flags --tls-cert, --tls-key and --tls-client-ca (files re-read when they change)"

// brokerRequestError is a broker config change refused as INVALID_REQUEST;
// its text is the answer's message.
type brokerRequestError string

func (e brokerRequestError) Error() string { return string(e) }

// checkBrokerResource checks a BROKER resource name: "" (the cluster-wide
// defaults) or the node ID of a live agent. Errors are brokerRequestError.
func (s *Server) checkBrokerResource(ctx context.Context, name string) error {
	if name == "" {
		return nil
	}
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil {
		return brokerRequestError(fmt.Sprintf("Broker id must be an integer, but it is: %s", name))
	}
	var live []int32
	for _, a := range s.liveAgents(ctx) {
		if a.NodeID == int32(id) {
			return nil
		}
		live = append(live, a.NodeID)
	}
	return brokerRequestError(fmt.Sprintf("Unexpected broker id, expected one of the live agents %v or empty string, but received %s", live, name))
}

// checkBrokerConfigNames refuses the names that are not dynamic broker
// configs shale accepts, and on the defaults ("") those Kafka takes only per
// broker. Errors are brokerRequestError.
func checkBrokerConfigNames(resource string, names []string) error {
	var static, perBroker, where []string
	for _, n := range names {
		def, ok := dynamicBrokerConfigs[n]
		switch {
		case !ok:
			static = append(static, n)
			if w, ok := brokerConfigsElsewhere[n]; ok {
				where = append(where, n+" is "+w)
			} else if strings.HasPrefix(n, "ssl.") {
				where = append(where, n+" is "+tlsElsewhere)
			}
		case def.perBroker && resource == "":
			perBroker = append(perBroker, n)
		}
	}
	if static != nil {
		slices.Sort(static)
		msg := "Cannot update these configs dynamically: " + strings.Join(slices.Compact(static), ", ")
		if where != nil {
			slices.Sort(where)
			msg += "; on shale " + strings.Join(slices.Compact(where), "; ")
		}
		return brokerRequestError(msg)
	}
	if perBroker != nil {
		slices.Sort(perBroker)
		return brokerRequestError(fmt.Sprintf("Cannot update these configs at default cluster level, broker id must be specified: %s", strings.Join(slices.Compact(perBroker), ", ")))
	}
	return nil
}

// validateBrokerConfig checks a value against its Kafka type; errors wrap
// errConfig (INVALID_CONFIG).
func validateBrokerConfig(name string, value *string) error {
	def := dynamicBrokerConfigs[name]
	if value == nil {
		return fmt.Errorf("%w: null value for broker config %q", errConfig, name)
	}
	if checkConfigType(def.typ, *value) != nil {
		return fmt.Errorf("%w: Invalid value %q for configuration %s: not a %s", errConfig, *value, name, def.typ)
	}
	return nil
}

// setBrokerConfigs replaces a BROKER resource's whole dynamic set
// (AlterConfigs' non-incremental semantics).
func (s *Server) setBrokerConfigs(ctx context.Context, resource string, validateOnly bool, cfgs []kmsg.AlterConfigsRequestResourceConfig) error {
	if err := s.checkBrokerResource(ctx, resource); err != nil {
		return err
	}
	names := make([]string, 0, len(cfgs))
	next := map[string]string{}
	for _, c := range cfgs {
		names = append(names, c.Name)
	}
	if err := checkBrokerConfigNames(resource, names); err != nil {
		return err
	}
	for _, c := range cfgs {
		if err := validateBrokerConfig(c.Name, c.Value); err != nil {
			return err
		}
		next[c.Name] = *c.Value
	}
	if validateOnly {
		return nil
	}
	return s.writeBrokerConfigs(ctx, resource, func(map[string]string) (map[string]string, error) { return next, nil })
}

// alterBrokerConfigs applies IncrementalAlterConfigs operations to a BROKER
// resource: SET, DELETE, and APPEND / SUBTRACT on list configs.
func (s *Server) alterBrokerConfigs(ctx context.Context, resource string, validateOnly bool, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) error {
	if err := s.checkBrokerResource(ctx, resource); err != nil {
		return err
	}
	names := make([]string, 0, len(ops))
	for _, op := range ops {
		names = append(names, op.Name)
	}
	if err := checkBrokerConfigNames(resource, names); err != nil {
		return err
	}
	apply := func(cur map[string]string) (map[string]string, error) {
		next := maps.Clone(cur)
		if next == nil {
			next = map[string]string{}
		}
		for _, op := range ops {
			switch op.Op {
			case kmsg.IncrementalAlterConfigOpSet:
				if err := validateBrokerConfig(op.Name, op.Value); err != nil {
					return nil, err
				}
				next[op.Name] = *op.Value
			case kmsg.IncrementalAlterConfigOpDelete:
				delete(next, op.Name)
			case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
				if dynamicBrokerConfigs[op.Name].typ != kmsg.ConfigTypeList {
					return nil, fmt.Errorf("%w: %q is not a list config", errConfig, op.Name)
				}
				if op.Value == nil {
					return nil, fmt.Errorf("%w: null value for %q", errConfig, op.Name)
				}
				items := appendSubtract(next[op.Name], op)
				if len(items) == 0 {
					delete(next, op.Name)
				} else {
					next[op.Name] = strings.Join(items, ",")
				}
			default:
				return nil, fmt.Errorf("%w: unknown operation %d for %q", errConfig, op.Op, op.Name)
			}
		}
		return next, nil
	}
	if validateOnly {
		_, err := apply(nil)
		return err
	}
	return s.writeBrokerConfigs(ctx, resource, apply)
}

func (s *Server) writeBrokerConfigs(ctx context.Context, resource string, fn func(map[string]string) (map[string]string, error)) error {
	var stored map[string]string
	err := s.meta.UpdateBrokerConfigs(ctx, resource, func(cur map[string]string) (map[string]string, error) {
		next, err := fn(cur)
		stored = next
		return next, err
	})
	if err != nil {
		return err
	}
	s.log.Info("dynamic broker configs changed", "broker", resource, "configs", slices.Sorted(maps.Keys(stored)))
	return nil
}

// describeDynamicBrokerConfigs lists the dynamic configs set for a BROKER
// resource: for a node its own over the cluster defaults, for "" the
// defaults only.
func (s *Server) describeDynamicBrokerConfigs(ctx context.Context, resource string, names []string, withDocs bool) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	defaults, err := s.meta.BrokerConfigs(ctx, "")
	if err != nil {
		return nil, err
	}
	var own map[string]string
	if resource != "" {
		if own, err = s.meta.BrokerConfigs(ctx, resource); err != nil {
			return nil, err
		}
	}
	set := map[string]kmsg.ConfigSource{}
	for n := range defaults {
		set[n] = kmsg.ConfigSourceDynamicDefaultBrokerConfig
	}
	for n := range own {
		set[n] = kmsg.ConfigSourceDynamicBrokerConfig
	}
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, n := range slices.Sorted(maps.Keys(set)) {
		def, ok := dynamicBrokerConfigs[n]
		if !ok || names != nil && !slices.Contains(names, n) {
			continue // a name no longer accepted is not shown
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.ConfigType, c.Source = n, def.typ, set[n]
		v := defaults[n]
		if c.Source == kmsg.ConfigSourceDynamicBrokerConfig {
			v = own[n]
		}
		if def.typ == kmsg.ConfigTypePassword {
			c.IsSensitive = true
		} else {
			c.Value = kmsg.StringPtr(v)
		}
		if withDocs {
			c.Documentation = kmsg.StringPtr(def.doc)
		}
		out = append(out, c)
	}
	return out, nil
}

// brokerConfigErr answers a broker config change's error.
func brokerConfigErr(s *Server, err error) (int16, *string) {
	var re brokerRequestError
	if errors.As(err, &re) {
		return kerr.InvalidRequest.Code, errMessage(err)
	}
	return configErrCode(s, err), errMessage(err)
}
