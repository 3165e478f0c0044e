package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
	"github.com/shale-dev/shale/s3tier"
)

// Defaults of the flags several commands share, each in one place.
const (
	// DefaultDataDir is --data-dir's default: the agent's local directory
	// (with --dev also its etcd and bucket), where recover and the etcd
	// reading commands look for a stopped dev agent's etcd.
	DefaultDataDir = "data"
	// DevEtcdListen is the client address of a dev agent's embedded etcd
	// (--dev-etcd-listen), hence the commands' default --etcd-endpoints.
	DevEtcdListen = "127.0.0.1:2379"
	// DefaultEtcdDialTimeout bounds an agent's (and recover's) first
	// connection to etcd when StackOptions.EtcdDialTimeout is unset.
	DefaultEtcdDialTimeout = 5 * time.Second
)

// StackOptions configures one agent and what it connects to. Engine and
// Agent are the packages' own configurations, passed on as they are (but
// for the fields StartStack sets: Engine.DataDir, under DataDir, and both
// Metrics).
type StackOptions struct {
	Dev     bool
	DataDir string

	// AdminListen serves /metrics, /healthz and /readyz ("" = none).
	AdminListen string
	// WrapStore, when set, wraps the object store (fault injection in tests).
	WrapStore func(s3tier.Store) s3tier.Store

	EtcdEndpoints   []string
	EtcdNamespace   string
	DevEtcdListen   string
	EtcdDialTimeout time.Duration
	// EtcdCertFile/EtcdKeyFile (client certificate) and EtcdCAFile (the
	// CA that signed etcd's certificate) turn on TLS to etcd.
	EtcdCertFile, EtcdKeyFile, EtcdCAFile string

	Bucket string // s3://bucket/prefix, file:///path or a directory
	// CreateBucket creates a missing S3 bucket at start instead of refusing.
	CreateBucket bool
	S3Endpoint   string
	S3Region     string
	S3PathStyle  bool
	S3AccessKey  string
	S3SecretKey  string
	// S3AttemptTimeout bounds the silences of one S3 attempt (0: the
	// default, negative: none); see s3tier.S3Config.AttemptTimeout.
	S3AttemptTimeout time.Duration

	// Engine configures the storage engine (zero fields: its defaults).
	Engine engine.Config
	// Agent configures the Kafka server (zero fields: its defaults).
	Agent agent.Config

	// NoLifecycle keeps this agent out of the lifecycle jobs; Lifecycle
	// tunes them (zero fields: lifecycle defaults).
	NoLifecycle bool
	Lifecycle   lifecycle.Config
}

// Stack is a running agent with its storage engine, metadata store and
// object store (and, in dev mode, its embedded etcd).
type Stack struct {
	Agent  *agent.Server
	Engine *engine.Engine
	Meta   *metastore.Store
	Store  s3tier.Store
	Etcd   *metastore.Embedded // nil unless dev mode started one
	// Lifecycle runs compaction, retention, GC and group offset expiry
	// (nil with NoLifecycle).
	Lifecycle *lifecycle.Runner
	// Metrics are this agent's; Admin serves them (nil without AdminListen).
	Metrics *metrics.Metrics
	Admin   *metrics.Server

	cli *clientv3.Client
	log *slog.Logger
}

// OpenMeta connects to etcd (starting the embedded one in dev mode).
func OpenMeta(ctx context.Context, o StackOptions, log *slog.Logger) (*metastore.Store, *metastore.Embedded, *clientv3.Client, error) {
	var emb *metastore.Embedded
	endpoints := o.EtcdEndpoints
	if len(endpoints) == 0 {
		if !o.Dev {
			return nil, nil, nil, errors.New("no etcd endpoints: pass --etcd-endpoints host:2379 (or --dev for an embedded etcd)")
		}
		var err error
		emb, err = metastore.StartEmbedded(ctx, metastore.EmbedConfig{
			Dir:        filepath.Join(o.DataDir, "etcd"),
			ClientAddr: o.DevEtcdListen,
			Logger:     log,
		})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("start embedded etcd in %s: %w", filepath.Join(o.DataDir, "etcd"), err)
		}
		endpoints = emb.Endpoints()
		log.Info("embedded etcd started", "endpoints", strings.Join(endpoints, ","), "dir", filepath.Join(o.DataDir, "etcd"))
	}
	dial := o.EtcdDialTimeout
	if dial <= 0 {
		dial = DefaultEtcdDialTimeout
	}
	tlsCfg, err := etcdTLS(o)
	if err != nil {
		if emb != nil {
			emb.Close()
		}
		return nil, nil, nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: dial, Logger: quietZap(), TLS: tlsCfg})
	if err != nil {
		if emb != nil {
			emb.Close()
		}
		return nil, nil, nil, fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	// Fail early with a clear message when etcd is unreachable.
	pctx, cancel := context.WithTimeout(ctx, dial)
	defer cancel()
	if _, err := cli.Get(pctx, "health-probe"); err != nil {
		cli.Close()
		if emb != nil {
			emb.Close()
		}
		return nil, nil, nil, fmt.Errorf("etcd at %v is not answering (%v): is it running and reachable?", endpoints, err)
	}
	ns := o.EtcdNamespace
	if ns == "" {
		ns = metastore.DefaultNamespace
	}
	return metastore.New(cli, ns), emb, cli, nil
}

// OpenStore opens the object store named by o.Bucket.
func OpenStore(ctx context.Context, o StackOptions) (s3tier.Store, error) {
	b := o.Bucket
	if b == "" {
		if !o.Dev {
			return nil, errors.New("no bucket: pass --bucket s3://bucket/prefix (or --dev for a local directory)")
		}
		b = filepath.Join(o.DataDir, "bucket")
	}
	if strings.HasPrefix(b, "s3://") {
		bucket, prefix, err := s3tier.ParseS3URL(b)
		if err != nil {
			return nil, err
		}
		return s3tier.NewS3Store(ctx, s3tier.S3Config{
			Bucket: bucket, Prefix: prefix, Endpoint: o.S3Endpoint, Region: o.S3Region,
			PathStyle: o.S3PathStyle || o.S3Endpoint != "", AccessKey: o.S3AccessKey, SecretKey: o.S3SecretKey,
			AttemptTimeout: o.S3AttemptTimeout,
		})
	}
	b = strings.TrimPrefix(b, "file://")
	if err := os.MkdirAll(b, 0o755); err != nil {
		return nil, fmt.Errorf("create bucket directory %s: %w", b, err)
	}
	return s3tier.NewDirStore(b)
}

// StartStack starts everything one agent needs and the agent itself.
func StartStack(ctx context.Context, o StackOptions, log *slog.Logger) (*Stack, error) {
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	meta, emb, cli, err := OpenMeta(ctx, o, log)
	if err != nil {
		return nil, err
	}
	s := &Stack{Meta: meta, Etcd: emb, cli: cli, log: log}
	fail := func(err error) (*Stack, error) {
		s.Close(context.Background())
		return nil, err
	}
	if s.Store, err = OpenStore(ctx, o); err != nil {
		return fail(err)
	}
	if err := checkBucket(ctx, s.Store, o.CreateBucket, log); err != nil {
		return fail(err)
	}
	if err := checkCluster(ctx, meta, o); err != nil {
		return fail(err)
	}
	if o.WrapStore != nil {
		s.Store = o.WrapStore(s.Store)
	}
	s.Metrics = metrics.New()
	s.Store = s3tier.Observed(s.Store, s.Metrics.S3)
	ecfg := o.Engine
	ecfg.Metrics, ecfg.DataDir = s.Metrics, filepath.Join(o.DataDir, "agent")
	if s.Engine, err = engine.New(ecfg, s.Store, meta, log); err != nil {
		return fail(err)
	}
	acfg := o.Agent
	acfg.Metrics = s.Metrics
	// The admin server starts before the agent registers, so that the
	// registration records its address (adminAdvertised); /readyz answers
	// "not ready" until the agent has started.
	var started atomic.Pointer[agent.Server]
	if o.AdminListen != "" {
		ready := func(ctx context.Context) error {
			if a := started.Load(); a != nil {
				return a.Ready(ctx)
			}
			return errors.New("agent starting")
		}
		if s.Admin, err = metrics.Serve(o.AdminListen, s.Metrics, ready); err != nil {
			return fail(fmt.Errorf("start admin server (metrics, health) on %s: %w", o.AdminListen, err))
		}
		acfg.AdminAddr = adminAdvertised(s.Admin.Addr(), acfg.AdvertisedHost)
		log.Info("admin server listening", "addr", s.Admin.Addr().String(), "paths", "/metrics /healthz /readyz")
	}
	if s.Agent, err = agent.New(acfg, s.Engine, meta, log); err != nil {
		return fail(err)
	}
	started.Store(s.Agent)
	if err := s.Agent.Start(ctx); err != nil {
		s.Agent = nil
		return fail(fmt.Errorf("start Kafka listener on %s: %w", acfg.Listen, err))
	}
	if !o.NoLifecycle {
		lc := o.Lifecycle
		if lc.Holder == "" {
			lc.Holder = fmt.Sprintf("node %d (%s)", s.Agent.NodeID(), s.Agent.Addr())
		}
		lc.Observe = s.observeLifecycle
		if lc.Compaction.TempDir == "" {
			lc.Compaction.TempDir = filepath.Join(o.DataDir, "agent", "spool") // wiped at start
		}
		if s.Lifecycle, err = lifecycle.New(lc, s.Store, meta, log); err != nil {
			return fail(err)
		}
		s.Lifecycle.Start()
	}
	return s, nil
}

func (s *Stack) observeLifecycle(_ string, stats any) {
	switch st := stats.(type) {
	case lifecycle.CompactStats:
		s.Metrics.Compaction(st.Segments, st.EntriesReplaced, st.BytesWritten)
	case lifecycle.KeyCompactStats:
		s.Metrics.KeyCompaction(metrics.KeyCompactionRun{Passes: st.Passes, Failures: st.Failed, Keys: st.Keys, Removed: st.RecordsRemoved,
			BytesRead: st.BytesRead, BytesWritten: st.BytesWritten, Segments: st.Segments, EntriesReplaced: st.EntriesReplaced, Duration: st.Duration})
	case lifecycle.GCStats:
		s.Metrics.GC(st.Deleted+st.TableFiles, st.Bytes+st.TableBytes)
	case lifecycle.RetentionStats:
		s.Metrics.Retention(st.OffsetsDropped)
	case metastore.GroupExpiryStats:
		s.Metrics.GroupOffsetsExpired(st.Offsets)
	case lifecycle.ManifestStats:
		if st.Key != "" {
			s.Metrics.Manifest(time.Now())
		}
	case icetable.Stats:
		s.Metrics.Iceberg(st.Commits, st.Rows, st.Files, st.Rewritten, st.Skipped, st.Raw, st.Failed)
	}
}

// Close stops the agent (answering what it can), flushes the engine and
// releases etcd.
func (s *Stack) Close(ctx context.Context) error {
	var errs []error
	if s.Admin != nil {
		errs = append(errs, s.Admin.Close(ctx))
	}
	if s.Lifecycle != nil {
		s.Lifecycle.Close()
	}
	if s.Agent != nil {
		errs = append(errs, s.Agent.Close(ctx))
	}
	if s.Engine != nil {
		errs = append(errs, s.Engine.Close(ctx))
	}
	// After the engine committed what it acknowledged: a manifest that
	// holds it, so a graceful stop loses nothing to recover.
	if s.Lifecycle != nil {
		if err := s.Lifecycle.FinalManifest(ctx); err != nil {
			s.log.Warn("final manifest not written: recover would restore the one before", "err", err)
		}
	}
	if s.cli != nil {
		errs = append(errs, s.cli.Close())
	}
	if s.Etcd != nil {
		errs = append(errs, s.Etcd.Close())
	}
	return errors.Join(errs...)
}

// addS3Flags adds the object-store flags shared by the agent and replay.
func addS3Flags(cmd *cobra.Command, bucketHelp string) {
	f := cmd.Flags()
	f.String("bucket", "", bucketHelp)
	f.String("s3-endpoint", "", "S3 endpoint URL for MinIO and other S3-compatible stores, e.g. http://127.0.0.1:9000 (implies path-style)")
	f.String("s3-region", "", "S3 region (default: from the AWS configuration, else us-east-1)")
	f.Bool("s3-path-style", false, "use path-style S3 addressing")
	f.String("s3-access-key", "", "S3 access key (default: the AWS credential chain)")
	f.String("s3-secret-key", "", "S3 secret key (default: the AWS credential chain)")
	f.Duration("s3-attempt-timeout", s3tier.DefaultAttemptTimeout, "give up an S3 attempt (and retry) after this long without response headers or body bytes; -1s: never")
}

// setS3Options copies the flags of addS3Flags (but --bucket) into o.
func setS3Options(o *StackOptions, v *viper.Viper) {
	o.S3Endpoint = v.GetString("s3-endpoint")
	o.S3Region = v.GetString("s3-region")
	o.S3PathStyle = v.GetBool("s3-path-style")
	o.S3AccessKey = v.GetString("s3-access-key")
	o.S3SecretKey = v.GetString("s3-secret-key")
	o.S3AttemptTimeout = v.GetDuration("s3-attempt-timeout")
}
