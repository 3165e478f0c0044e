// Package agenttest starts real shale agents for tests: N agents sharing one
// embedded etcd and one bucket (a local-directory store), each with its own
// engine, data directory and etcd client, listening on 127.0.0.1 random
// ports. Everything is stopped by t.Cleanup. Other packages' tests (cli,
// consumer groups, end-to-end suites) reuse it.
package agenttest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// Options configures Start. The zero value starts one agent with topic
// auto-creation on.
type Options struct {
	// Agents is how many agents to start (default 1).
	Agents int
	// Agent adjusts agent i's config before it starts. Listen defaults to
	// 127.0.0.1:0, NodeID to -1 (allocated) and AutoCreateTopics to true.
	Agent func(i int, cfg *agent.Config)
	// Engine adjusts agent i's engine config. DataDir defaults to a
	// t.TempDir() and FlushInterval to 20ms.
	Engine func(i int, cfg *engine.Config)
	// Store wraps the shared bucket (for fault injection); nil: the
	// local-directory store itself.
	Store func(s3tier.Store) s3tier.Store
	// S3, when set, makes the shared bucket this S3 server's bucket
	// (testenv.S3 or testenv.MinIO) instead of a local directory;
	// BucketDir is then empty.
	S3 *testenv.S3Server
	// Namespace is the etcd namespace (default "/shale-test").
	Namespace string
	// LogLevel is the level of the agents' and engines' logs, written to
	// the test log (default slog.LevelWarn).
	LogLevel slog.Level
	// Log, when set, receives the agents' and engines' logs instead (for
	// tests about what is logged).
	Log *slog.Logger
}

// Cluster is a running set of agents.
type Cluster struct {
	Agents    []*Agent
	Etcd      *clientv3.Client
	Endpoints []string // etcd endpoints
	Meta      *metastore.Store
	Store     s3tier.Store
	BucketDir string
	Namespace string
}

// Agent is one running agent.
type Agent struct {
	Server  *agent.Server
	Engine  *engine.Engine
	Meta    *metastore.Store
	Addr    string // host:port clients connect to
	DataDir string

	stopOnce sync.Once
	stopErr  error
}

// Start starts the cluster and registers its shutdown with t.Cleanup.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Agents <= 0 {
		opts.Agents = 1
	}
	if opts.Namespace == "" {
		opts.Namespace = "/shale-test"
	}
	if opts.LogLevel == 0 {
		opts.LogLevel = slog.LevelWarn
	}
	log := TestLogger(t, opts.LogLevel)
	if opts.Log != nil {
		log = opts.Log
	}
	cli, endpoints := testenv.Etcd(t)
	var (
		bucket string
		base   s3tier.Store
		err    error
	)
	if s3 := opts.S3; s3 != nil {
		base, err = s3tier.NewS3Store(context.Background(), s3tier.S3Config{Bucket: s3.Bucket, Prefix: "agenttest",
			Endpoint: s3.Endpoint, Region: s3.Region, PathStyle: true, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	} else {
		bucket = t.TempDir()
		base, err = s3tier.NewDirStore(bucket)
	}
	if err != nil {
		t.Fatalf("agenttest: bucket: %v", err)
	}
	store := base
	if opts.Store != nil {
		store = opts.Store(base)
	}
	c := &Cluster{Etcd: cli, Endpoints: endpoints, Meta: metastore.New(cli, opts.Namespace).WithLogger(log),
		Store: store, BucketDir: bucket, Namespace: opts.Namespace}
	for i := range opts.Agents {
		c.Agents = append(c.Agents, c.startAgent(t, i, opts, log))
	}
	return c
}

func (c *Cluster) startAgent(t testing.TB, i int, opts Options, log *slog.Logger) *Agent {
	t.Helper()
	ecfg := engine.Config{DataDir: t.TempDir(), FlushInterval: 20 * time.Millisecond, Name: fmt.Sprintf("agent%d", i)}
	if opts.Engine != nil {
		opts.Engine(i, &ecfg)
	}
	meta := metastore.New(testenv.EtcdClient(t, c.Endpoints), opts.Namespace).WithLogger(log)
	alog := log.With("agent", i)
	eng, err := engine.New(ecfg, c.Store, meta, alog)
	if err != nil {
		t.Fatalf("agenttest: engine %d: %v", i, err)
	}
	acfg := agent.Config{Listen: "127.0.0.1:0", NodeID: -1, AutoCreateTopics: true}
	if opts.Agent != nil {
		opts.Agent(i, &acfg)
	}
	srv, err := agent.New(acfg, eng, meta, alog)
	if err != nil {
		t.Fatalf("agenttest: agent %d: %v", i, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		_ = eng.Close(ctx)
		t.Fatalf("agenttest: start agent %d: %v", i, err)
	}
	a := &Agent{Server: srv, Engine: eng, Meta: meta, Addr: srv.Addr().String(), DataDir: ecfg.DataDir}
	t.Cleanup(func() {
		if err := a.Stop(); err != nil {
			t.Errorf("agenttest: stop agent %d: %v", i, err)
		}
	})
	return a
}

// Stop closes the agent's server, then its engine (flushing what it
// buffered). It is safe to call more than once.
func (a *Agent) Stop() error {
	a.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		serr := a.Server.Close(ctx)
		eerr := a.Engine.Close(ctx)
		if serr != nil {
			a.stopErr = serr
		} else {
			a.stopErr = eerr
		}
	})
	return a.stopErr
}

// Addrs returns every agent's address.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Agents))
	for i, a := range c.Agents {
		out[i] = a.Addr
	}
	return out
}

// Client returns a kgo client seeded with the given agents' addresses (all
// agents when none are given), closed by t.Cleanup.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addrs()...)}, opts...)...)
	if err != nil {
		t.Fatalf("agenttest: kgo client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns a kadm client over a kgo client seeded with the cluster.
func (c *Cluster) Admin(t testing.TB, opts ...kgo.Opt) *kadm.Client {
	t.Helper()
	return kadm.NewClient(c.Client(t, opts...))
}

// TestLogger returns a logger writing to t's log at level and above. Lines
// logged after the test's cleanups have run are dropped (background
// goroutines may outlive a test by a moment).
func TestLogger(t testing.TB, level slog.Level) *slog.Logger {
	t.Helper()
	w := &testWriter{w: t.Output()}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.w.Write(p)
}
