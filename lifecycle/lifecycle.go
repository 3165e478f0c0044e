package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/internal/retry"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// Lifecycle job names: each is an etcd election (metastore.CampaignJob), so
// one agent at a time runs it.
const (
	JobCompaction = "compaction"
	JobRetention  = "retention"
	JobGC         = "gc"
	// JobGroupExpiry deletes the committed offsets of consumer groups
	// nobody coordinates once they are older than GroupOffsetRetention
	// (metastore.ExpireGroupOffsets).
	JobGroupExpiry = "group-expiry"
	// JobKeyCompaction compacts topics whose cleanup.policy includes
	// compact by key (CompactKeys).
	JobKeyCompaction = "key-compaction"
	// JobManifest snapshots the namespace into the bucket for `shale
	// recover` every ManifestInterval (WriteManifest).
	JobManifest = "manifest"
	// JobIceberg materializes the topics whose shale.iceberg.mode is set
	// into Iceberg tables in the bucket (icetable.Materialize), every
	// IcebergInterval.
	JobIceberg = "iceberg"
)

// Config configures the lifecycle jobs an agent runs. Zero fields
// take the defaults.
type Config struct {
	// Holder names this agent in the job elections (for operators).
	Holder string
	// Interval is the pause between two passes of a job while this agent
	// leads it (default 1 min).
	Interval time.Duration
	// LeaseTTL is the TTL of a job leadership lease: how long a dead
	// leader's job stays unrun (default 10 s).
	LeaseTTL time.Duration
	// Compaction tunes compaction; its CommitDeadline defaults to a third of
	// GCGrace. Key compaction uses it too.
	Compaction CompactConfig
	// KeyMapBytes is key compaction's key map budget per pass
	// (DefaultKeyMapBytes).
	KeyMapBytes int64
	// GCGrace is how old an unreferenced object must be before it is
	// deleted (DefaultGCGrace). It must exceed the engine's UploadTimeout;
	// New refuses one that does not exceed Compaction.CommitDeadline.
	GCGrace time.Duration
	// GCPrefixes are the key prefixes garbage collection looks under.
	GCPrefixes []string
	// GroupOffsetRetention is how long the committed offsets of a consumer
	// group nobody coordinates outlive its newest commit and its emptying
	// (Kafka's offsets.retention.minutes; DefaultGroupOffsetRetention).
	// Negative keeps them forever (the group-expiry job does not run).
	GroupOffsetRetention time.Duration
	// ManifestInterval is the pause between two manifests
	// (DefaultManifestInterval): the recovery point. Negative: no
	// manifest job.
	ManifestInterval time.Duration
	// ManifestKeep is how many manifests stay in the bucket
	// (DefaultManifestKeep); ManifestPinTTL bounds one manifest write
	// (DefaultManifestPinTTL).
	ManifestKeep   int
	ManifestPinTTL time.Duration
	// IcebergInterval is the pause between two passes of the iceberg job
	// (DefaultIcebergInterval); Iceberg tunes it.
	IcebergInterval time.Duration
	// Iceberg tunes table materialization.
	Iceberg icetable.Config
	// Now returns wall-clock time (tests may override).
	Now func() time.Time
	// Observe, when set, receives each finished pass's counts (metrics):
	// a CompactStats, KeyCompactStats, RetentionStats, GCStats,
	// metastore.GroupExpiryStats or icetable.Stats.
	Observe func(job string, stats any)
}

// Lifecycle defaults.
const (
	DefaultInterval = time.Minute
	// DefaultIcebergInterval is the pause between two iceberg job passes:
	// about how far a table lags its topic.
	DefaultIcebergInterval = time.Minute
	DefaultJobLeaseTTL     = 10 * time.Second
	// DefaultGroupOffsetRetention is Kafka's offsets.retention.minutes
	// default (KIP-211): 7 days.
	DefaultGroupOffsetRetention = 7 * 24 * time.Hour
)

func (c *Config) setDefaults() error {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.IcebergInterval <= 0 {
		c.IcebergInterval = DefaultIcebergInterval
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultJobLeaseTTL
	}
	if c.GCGrace <= 0 {
		c.GCGrace = DefaultGCGrace
	}
	if c.Compaction.CommitDeadline <= 0 {
		c.Compaction.CommitDeadline = c.GCGrace / 3
	}
	if c.GCGrace <= c.Compaction.CommitDeadline {
		return fmt.Errorf("lifecycle: gc grace %v must exceed the compaction commit deadline %v", c.GCGrace, c.Compaction.CommitDeadline)
	}
	if c.ManifestInterval == 0 {
		c.ManifestInterval = DefaultManifestInterval
	}
	if c.ManifestKeep <= 0 {
		c.ManifestKeep = DefaultManifestKeep
	}
	if c.ManifestPinTTL <= 0 {
		c.ManifestPinTTL = DefaultManifestPinTTL
	}
	if c.GroupOffsetRetention == 0 {
		c.GroupOffsetRetention = DefaultGroupOffsetRetention
	}
	if len(c.GCPrefixes) == 0 {
		c.GCPrefixes = DefaultGCPrefixes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Compaction.Now == nil {
		c.Compaction.Now = c.Now
	}
	c.Compaction.setDefaults()
	return nil
}

// Runner runs compaction, retention, garbage collection and consumer
// group offset expiry in the background of an agent. Every agent runs one; for each job, the agent
// that wins the job's etcd election runs passes every Interval until it
// loses its lease or closes, then another agent takes over. Every pass is
// idempotent and crash-safe (new index first, old objects to GC), so a pass
// cut short by a crash or a lost lease is simply run again.
type Runner struct {
	cfg   Config
	store s3tier.Store
	meta  *metastore.Store
	log   *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks cfg and returns a Runner; Start runs it.
func New(cfg Config, store s3tier.Store, meta *metastore.Store, log *slog.Logger) (*Runner, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, store: store, meta: meta, log: log.With("component", "lifecycle")}, nil
}

// Start campaigns for every job in the background until Close.
func (l *Runner) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	jobs := []string{JobCompaction, JobKeyCompaction, JobRetention, JobGC, JobIceberg}
	if l.cfg.GroupOffsetRetention >= 0 {
		jobs = append(jobs, JobGroupExpiry)
	}
	if l.cfg.ManifestInterval > 0 {
		jobs = append(jobs, JobManifest)
	}
	for _, job := range jobs {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.lead(ctx, job) }()
	}
}

// FinalManifest writes a manifest now, without election: a graceful
// shutdown calls it after the engine has committed everything it
// acknowledged, so that recover loses nothing it acknowledged. Nothing is
// written if the manifest job is off.
func (l *Runner) FinalManifest(ctx context.Context) error {
	if l.cfg.ManifestInterval <= 0 {
		return nil
	}
	st, err := WriteManifest(ctx, l.store, l.meta, l.cfg.Holder, l.cfg.Now(), l.cfg.ManifestPinTTL, l.cfg.ManifestKeep, l.log)
	if err == nil {
		l.log.Info("final manifest written", "key", st.Key, "keys", st.Keys)
	}
	return err
}

// Close stops the jobs (a pass in progress is canceled) and resigns.
func (l *Runner) Close() {
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
}

// RunOnce runs one pass of job now, without election (tests, operators).
func (l *Runner) RunOnce(ctx context.Context, job string) error {
	now := l.cfg.Now()
	var (
		stats any
		err   error
	)
	switch job {
	case JobCompaction:
		stats, err = Compact(ctx, l.store, l.meta, l.cfg.Compaction, l.log)
	case JobKeyCompaction:
		stats, err = CompactKeys(ctx, l.store, l.meta, KeyCompactConfig{CompactConfig: l.cfg.Compaction, MapBytes: l.cfg.KeyMapBytes}, l.log)
	case JobRetention:
		stats, err = ApplyRetention(ctx, l.meta, now, l.log)
	case JobIceberg:
		stats, err = icetable.Materialize(ctx, l.store, l.meta, l.cfg.Iceberg, l.log)
	case JobGC:
		var st GCStats
		st, err = CollectGarbage(ctx, l.store, l.meta, l.cfg.GCPrefixes, now, l.cfg.GCGrace, l.log)
		// The tables' orphans, under the same grace (at least
		// icetable.MinOrphanAge: a table commit may take that long).
		ost, oerr := icetable.CollectOrphans(ctx, l.store, l.meta, now, l.cfg.GCGrace, l.log)
		st.TableFiles, st.TableBytes = ost.Deleted, ost.Bytes
		stats, err = st, errors.Join(err, oerr)
	case JobManifest:
		var st ManifestStats
		if st, err = WriteManifest(ctx, l.store, l.meta, l.cfg.Holder, now, l.cfg.ManifestPinTTL, l.cfg.ManifestKeep, l.log); err != nil {
			st = ManifestStats{} // none written
		}
		stats = st
	case JobGroupExpiry:
		var st metastore.GroupExpiryStats
		st, err = l.meta.ExpireGroupOffsets(ctx, now, l.cfg.GroupOffsetRetention)
		if st.Groups > 0 {
			l.log.Info("expired consumer group offsets", "groups", st.Groups, "offsets", st.Offsets, "retention", l.cfg.GroupOffsetRetention)
		}
		stats = st
	default:
		return fmt.Errorf("lifecycle: unknown job %q", job)
	}
	if l.cfg.Observe != nil {
		l.cfg.Observe(job, stats)
	}
	return err
}

// interval is the pause between two passes of job.
func (l *Runner) interval(job string) time.Duration {
	switch job {
	case JobIceberg:
		return l.cfg.IcebergInterval
	case JobManifest:
		return l.cfg.ManifestInterval
	}
	return l.cfg.Interval
}

// campaignRetry paces the campaigns for a job that fail (etcd unreachable).
var campaignRetry = retry.Policy{Initial: time.Second, Max: 30 * time.Second}

// lead campaigns for job and runs it while leading, until ctx ends.
func (l *Runner) lead(ctx context.Context, job string) {
	pause := campaignRetry.BackOff()
	for ctx.Err() == nil {
		lease, err := l.meta.CampaignJob(ctx, job, l.cfg.Holder, l.cfg.LeaseTTL)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("job campaign failed", "job", job, "err", err)
				retry.Wait(ctx, pause)
			}
			continue
		}
		pause.Reset()
		l.log.Info("leading lifecycle job", "job", job)
		jctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lease.Done():
			case <-jctx.Done():
			}
			cancel()
		}()
		for jctx.Err() == nil {
			start := time.Now()
			if err := l.RunOnce(jctx, job); err != nil && !errors.Is(err, context.Canceled) {
				l.log.Warn("lifecycle pass failed", "job", job, "err", err)
			} else {
				l.log.Debug("lifecycle pass done", "job", job, "took", time.Since(start))
			}
			retry.Sleep(jctx, l.interval(job))
		}
		cancel()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = lease.Close(cctx)
		ccancel()
	}
}
