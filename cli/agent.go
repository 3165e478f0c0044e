package cli

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
)

func newAgentCmd() *cobra.Command {
	flushBytes := ByteSize(engine.DefaultFlushBytes)
	cacheBytes := ByteSize(engine.DefaultCacheBytes)
	readAhead := ByteSize(engine.DefaultReadAheadBytes)
	maxPending := ByteSize(engine.DefaultMaxPendingBytes)
	maxRequest := ByteSize(agent.DefaultMaxFrameBytes)
	offsetRetention := Retention(lifecycle.DefaultGroupOffsetRetention)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a shale agent (a Kafka-protocol server)",
		Long: `Run a shale agent. Agents are stateless: they buffer writes on local disk, seal them
into objects in the bucket, and commit the offset index to etcd. Run as many as you like
against the same etcd and bucket; any agent serves any partition.

Every flag can also be set as an environment variable (SHALE_ and the flag name in upper
case with _ for -, e.g. SHALE_ETCD_ENDPOINTS) or in a YAML file passed with --config, whose
keys are the flag names. Flags win over the environment, which wins over the file.

S3 credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
~/.aws, instance roles) unless --s3-access-key/--s3-secret-key are given.`,
		Example: `  # everything embedded, data under ./data
  shale agent --dev

  # against etcd and MinIO
  AWS_ACCESS_KEY_ID=minio AWS_SECRET_ACCESS_KEY=minio123 shale agent \
    --etcd-endpoints 127.0.0.1:2379 --bucket s3://shale/prod \
    --s3-endpoint http://127.0.0.1:9000 --listen 0.0.0.0:9092 --advertised-host kafka1.internal`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	addConfigFileFlag(cmd)
	f.Bool("dev", false, "embedded defaults: etcd and a local-directory bucket under --data-dir, topic auto-creation on, --flush-interval "+DevFlushInterval.String())
	f.String("data-dir", DefaultDataDir, "local directory for the write spool and read cache (and, with --dev, etcd and the bucket)")
	f.String("listen", agent.DefaultListen, "Kafka listener address")
	f.String("admin-listen", "", "address of the admin HTTP server: /metrics (Prometheus), /healthz, /readyz (default with --dev: "+DevAdminListen+"; otherwise off)")
	f.String("advertised-host", "", "host clients should connect to (default: the listener's host)")
	f.Int("advertised-port", 0, "port clients should connect to (default: the listener's port)")
	f.Int("node-id", -1, "Kafka broker ID to advertise (-1: allocate a free one in etcd)")
	f.Duration("agent-ttl", agent.DefaultAgentTTL, "lease of this agent's registration in etcd: how long a dead agent stays listed")
	f.StringSlice("etcd-endpoints", nil, "etcd endpoints, comma-separated (required unless --dev)")
	f.String("etcd-namespace", metastore.DefaultNamespace, "key prefix of this cluster in etcd")
	addEtcdTLSFlags(cmd)
	addSecurityFlags(cmd)
	f.String("dev-etcd-listen", DevEtcdListen, "with --dev: client address of the embedded etcd")
	addS3Flags(cmd, "object store: s3://bucket/prefix, or a local directory (default with --dev: <data-dir>/bucket)")
	f.Bool("create-bucket", false, "create the S3 bucket at start if it does not exist (default: refuse to start, naming it)")
	f.Var(&flushBytes, "flush-bytes", "seal the write buffer into an object at this size")
	f.Duration("flush-interval", engine.DefaultFlushInterval, "seal the write buffer at least this often (bounds acks=all latency; each seal is one PUT; default with --dev: "+DevFlushInterval.String()+")")
	f.Var(&cacheBytes, "cache-bytes", "local read cache budget")
	f.Var(&readAhead, "read-ahead-bytes", "memory for spans read ahead of consumers replaying history; twice the largest fetch.max.bytes of such consumers lets their next fetch be read while they decode one")
	f.Var(&maxPending, "max-pending-bytes", "sealed records not yet committed (uploading, committing); above it produces wait, then get REQUEST_TIMED_OUT. Up to half of it is held in memory, the rest spills to <data-dir>/agent/spool")
	f.Var(&maxRequest, "max-request-bytes", "largest Kafka request accepted (Kafka's socket.request.max.bytes); a topic's max.message.bytes is honoured up to it, and a record batch larger than --flush-bytes goes into an object of its own")
	f.Bool("auto-create-topics", false, "create unknown topics on first produce or metadata request (on with --dev)")
	f.Int("transaction-version", 2, "the transaction.version feature level advertised to clients: 2 lets them run KIP-890 part 2 (an epoch bump per transaction, partitions and groups added by Produce v12+ and TxnOffsetCommit v5+ themselves), 1 keeps them to part 1; give every agent of a cluster the same")
	f.Int("default-partitions", agent.DefaultPartitions, "partitions of auto-created topics")
	f.Duration("idle-timeout", agent.DefaultIdleTimeout, "close client connections that send no request, or no whole request, for this long")
	f.Int("max-connections", agent.DefaultMaxConnections, "client connections served at once; more are closed at accept")
	f.Bool("lifecycle", true, "take part in the lifecycle jobs (compaction, retention, garbage collection, group offset expiry, Iceberg tables; one agent runs each at a time)")
	f.Duration("lifecycle-interval", lifecycle.DefaultInterval, "pause between two passes of a lifecycle job")
	f.Duration("iceberg-snapshot-max-age", icetable.DefaultSnapshotMaxAge, "the iceberg job's commits expire the table snapshots older than this (the current one is always kept; time travel reaches this far back); 0 keeps every snapshot")
	f.Duration("iceberg-interval", lifecycle.DefaultIcebergInterval, "pause between two passes of the iceberg job, which materializes topics with shale.iceberg.mode into Iceberg tables in the bucket (about how far a table lags its topic)")
	f.Duration("compaction-settle", lifecycle.DefaultCompactSettle, "compaction (merge and cleanup.policy=compact) rewrites only objects committed at least this long ago")
	f.Duration("gc-grace", lifecycle.DefaultGCGrace, "age an unreferenced object must reach before garbage collection deletes it (must exceed upload and commit times)")
	f.Duration("manifest-interval", lifecycle.DefaultManifestInterval, "how often the manifest job snapshots etcd into the bucket (meta/manifests/) for shale recover: the recovery point (a graceful stop writes one too); 0: no manifests, nothing for recover")
	f.Var(&offsetRetention, "group-offsets-retention", "how long the committed offsets of a consumer group without members outlive its newest commit and its emptying (Kafka's offsets.retention.minutes); -1 keeps them forever")
	f.Duration("group-consumer-session-timeout", agent.DefaultConsumerSessionTimeout, "KIP-848 consumer groups: a member with no heartbeat for this long is removed (Kafka's group.consumer.session.timeout.ms)")
	f.Duration("group-consumer-heartbeat-interval", agent.DefaultConsumerHeartbeatInterval, "KIP-848 consumer groups: how often members heartbeat (Kafka's group.consumer.heartbeat.interval.ms); must be below the session timeout")
	f.String("group-consumer-migration-policy", string(agent.MigrationBidirectional), "which way a consumer group with members may change protocol online, classic to KIP-848 and back: bidirectional, upgrade, downgrade or disabled (Kafka's group.consumer.migration.policy)")
	f.String("log-level", "info", "debug, info, warn or error")
	f.String("log-format", "text", "text or json")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := newViper(cmd)
		if err != nil {
			return err
		}
		log, err := newLogger(cmd.ErrOrStderr(), v.GetString("log-level"), v.GetString("log-format"))
		if err != nil {
			return err
		}
		fb, err := ParseByteSize(v.GetString("flush-bytes"))
		if err != nil {
			return fmt.Errorf("--flush-bytes: %w", err)
		}
		cb, err := ParseByteSize(v.GetString("cache-bytes"))
		if err != nil {
			return fmt.Errorf("--cache-bytes: %w", err)
		}
		rab, err := ParseByteSize(v.GetString("read-ahead-bytes"))
		if err != nil {
			return fmt.Errorf("--read-ahead-bytes: %w", err)
		}
		mp, err := ParseByteSize(v.GetString("max-pending-bytes"))
		if err != nil {
			return fmt.Errorf("--max-pending-bytes: %w", err)
		}
		mr, err := ParseByteSize(v.GetString("max-request-bytes"))
		if err != nil {
			return fmt.Errorf("--max-request-bytes: %w", err)
		}
		if mr < 1<<20 || mr > math.MaxInt32 {
			return fmt.Errorf("--max-request-bytes: %s not in 1MiB..2GiB", HumanBytes(int64(mr)))
		}
		if st, hb := v.GetDuration("group-consumer-session-timeout"), v.GetDuration("group-consumer-heartbeat-interval"); hb <= 0 || st <= hb {
			return fmt.Errorf("--group-consumer-heartbeat-interval (%v) must be positive and below --group-consumer-session-timeout (%v)", hb, st)
		}
		migration, err := agent.ParseMigrationPolicy(v.GetString("group-consumer-migration-policy"))
		if err != nil {
			return fmt.Errorf("--group-consumer-migration-policy: %w", err)
		}
		retention, err := ParseRetention(v.GetString("group-offsets-retention"))
		if err != nil {
			return fmt.Errorf("--group-offsets-retention: %w", err)
		}
		dev := v.GetBool("dev")
		o := StackOptions{
			Dev:           dev,
			DataDir:       v.GetString("data-dir"),
			AdminListen:   adminListen(v.GetString("admin-listen"), dev),
			EtcdEndpoints: splitList(v.GetStringSlice("etcd-endpoints")),
			EtcdNamespace: v.GetString("etcd-namespace"),
			DevEtcdListen: v.GetString("dev-etcd-listen"),
			Bucket:        v.GetString("bucket"),
			Engine: engine.Config{
				FlushBytes:      int64(fb),
				FlushInterval:   flushInterval(cmd, v, dev),
				CacheBytes:      int64(cb),
				ReadAheadBytes:  int64(rab),
				MaxPendingBytes: int64(mp),
				MaxRecordsBytes: int(mr),
			},
			Agent: agent.Config{
				Listen:                    v.GetString("listen"),
				AdvertisedHost:            v.GetString("advertised-host"),
				AdvertisedPort:            int32(v.GetInt("advertised-port")),
				NodeID:                    int32(v.GetInt("node-id")),
				AgentTTL:                  v.GetDuration("agent-ttl"),
				AutoCreateTopics:          v.GetBool("auto-create-topics") || (dev && !cmd.Flags().Changed("auto-create-topics") && !v.IsSet("auto-create-topics")),
				DefaultPartitions:         int32(v.GetInt("default-partitions")),
				TransactionVersion:        int16(v.GetInt("transaction-version")),
				IdleTimeout:               v.GetDuration("idle-timeout"),
				ConsumerSessionTimeout:    v.GetDuration("group-consumer-session-timeout"),
				ConsumerHeartbeatInterval: v.GetDuration("group-consumer-heartbeat-interval"),
				ConsumerMigrationPolicy:   migration,
				MaxConnections:            v.GetInt("max-connections"),
				MaxFrameBytes:             int32(mr),
			},
			NoLifecycle: !v.GetBool("lifecycle"),
			Lifecycle: lifecycle.Config{Interval: v.GetDuration("lifecycle-interval"), GCGrace: v.GetDuration("gc-grace"),
				GroupOffsetRetention: retention, ManifestInterval: manifestInterval(v.GetDuration("manifest-interval")),
				IcebergInterval: v.GetDuration("iceberg-interval"), Iceberg: icebergConfig(v), Compaction: lifecycle.CompactConfig{Settle: v.GetDuration("compaction-settle")}},
		}
		o.EtcdCertFile, o.EtcdKeyFile, o.EtcdCAFile = v.GetString("etcd-cert"), v.GetString("etcd-key"), v.GetString("etcd-ca")
		setS3Options(&o, v)
		o.CreateBucket = v.GetBool("create-bucket")
		if o.Agent.Listeners, o.Agent.Auth, err = securityOptions(v); err != nil {
			return err
		}
		if o.Engine.FlushBytes <= 0 || o.Engine.FlushInterval <= 0 || o.Engine.MaxPendingBytes <= 0 {
			return fmt.Errorf("--flush-bytes, --flush-interval and --max-pending-bytes must be positive")
		}
		ctx := cmd.Context()
		st, err := StartStack(ctx, o, log)
		if err != nil {
			return err
		}
		log.Info("shale agent ready",
			"kafka", st.Agent.Addr().String(), "node_id", st.Agent.NodeID(),
			"bucket", st.Store.String(), "etcd_namespace", o.EtcdNamespace, "dev", dev,
			"flush_bytes", HumanBytes(o.Engine.FlushBytes), "flush_interval", o.Engine.FlushInterval)
		fmt.Fprintf(cmd.ErrOrStderr(), "shale agent listening on %s (Ctrl-C to stop)\n", st.Agent.Addr())
		<-ctx.Done()
		log.Info("shutting down: flushing buffered records")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return st.Close(sctx)
	}
	return cmd
}

// splitList accepts both repeated flags and comma-separated values (env
// variables arrive as one string).
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			out = append(out, p)
		}
	}
	return out
}

// DevFlushInterval is --flush-interval's default with --dev: the bucket is a
// local directory, with no PUT bill, so local development gets Kafka-like
// acks=all latency.
const DevFlushInterval = 5 * time.Millisecond

// DevAdminListen is --admin-listen's default with --dev.
const DevAdminListen = "127.0.0.1:9644"

// flushInterval applies the dev default of --flush-interval unless it was
// set (flag, environment or file).
func flushInterval(cmd *cobra.Command, v *viper.Viper, dev bool) time.Duration {
	if dev && !cmd.Flags().Changed("flush-interval") && !v.IsSet("flush-interval") {
		return DevFlushInterval
	}
	return v.GetDuration("flush-interval")
}

// adminListen applies the dev default of --admin-listen.
func adminListen(flag string, dev bool) string {
	if flag == "" && dev {
		return DevAdminListen
	}
	return flag
}

// Retention is a flag value for a retention time: a duration ("168h",
// "30m") or -1 for forever (any negative duration means the same).
type Retention time.Duration

// ParseRetention parses a Retention: "-1" or a negative duration is
// forever (-1), otherwise a positive duration.
func ParseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "-1" {
		return -1, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("bad retention %q: use a duration such as 168h, or -1 for forever", s)
	case d < 0:
		return -1, nil
	case d == 0:
		return 0, fmt.Errorf("bad retention %q: must be positive, or -1 for forever", s)
	}
	return d, nil
}

func (r *Retention) Set(s string) error {
	d, err := ParseRetention(s)
	if err != nil {
		return err
	}
	*r = Retention(d)
	return nil
}

func (r *Retention) Type() string { return "duration" }

func (r *Retention) String() string {
	if *r < 0 {
		return "-1"
	}
	return time.Duration(*r).String()
}

// manifestInterval maps --manifest-interval to lifecycle's: 0 there means
// the default, so "never" is negative.
func manifestInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// icebergConfig is the iceberg job's tuning from the agent's flags.
func icebergConfig(v *viper.Viper) icetable.Config {
	age := v.GetDuration("iceberg-snapshot-max-age")
	if age <= 0 {
		age = -1 // keep every snapshot
	}
	return icetable.Config{SnapshotMaxAge: age}
}
