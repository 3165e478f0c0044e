package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/internal/testenv"
)

// Bounds of the harness's waits. They bound failures, they are not
// assertions about speed.
const (
	readyTimeout  = 30 * time.Second // an agent answers ApiVersions and sees its peers
	stopTimeout   = 15 * time.Second // SIGTERM to exit, before SIGKILL
	startAttempts = 3                // a free port taken by someone else: try another
	outputLimit   = 1 << 20          // bytes of each incarnation's output kept
)

// Options configures Start.
type Options struct {
	// Agents is the number of agent processes (default 1).
	Agents int
	// Args are extra `shale agent` flags for every agent; they come after
	// the harness's own, so they win (e.g. "--flush-interval", "1s").
	Args []string
	// AgentArgs, when set, gives agent i flags of its own (e.g. a listener
	// port), after Args.
	AgentArgs func(i int) []string
	// LogLevel is the agents' --log-level (default "warn").
	LogLevel string
	// EtcdEndpoints, when set, is an etcd the test runs itself (e.g. as a
	// process it can kill); the harness then starts none. Otherwise it
	// starts an etcd process at a stock etcd's limits
	// (testenv.StartEtcdProcess: 128 operations per transaction, 1.5 MiB
	// per request), so every multi-process test meets the commit splits
	// and request sizes production meets.
	EtcdEndpoints []string
	// S3, when set, is the S3 server the agents use instead of one the
	// harness starts (e.g. a fault-injecting proxy's address in Endpoint).
	S3 *testenv.S3Server
	// NoRace starts agents built without the race detector even where
	// agents are built with it (SHALE_AGENT_RACE=1, MainWithRaceAgents):
	// for a test whose assertion the race detector's cost would void,
	// e.g. a bound on the agents' memory that MemFactor would multiply
	// by 10.
	NoRace bool
}

// Cluster is a set of running shale agent processes sharing an etcd and an
// S3 bucket.
type Cluster struct {
	t      testing.TB
	bin    string
	race   bool // the agents are built with the race detector
	opts   Options
	etcd   []string
	s3     testenv.S3Server
	mu     sync.Mutex
	agents []*agentProc
}

// agentProc is one agent slot: a fixed address and data directory, and the
// process currently running there (if any).
type agentProc struct {
	index   int
	addr    string
	admin   string // the admin server (/metrics)
	dataDir string

	mu    sync.Mutex
	cur   *incarnation
	past  []*incarnation
	count int
}

// incarnation is one OS process of an agent slot.
type incarnation struct {
	n        int
	cmd      *exec.Cmd
	out      *testenv.CappedBuffer
	exited   chan struct{} // closed when the process has exited
	waitErr  error         // valid after exited is closed
	expected bool          // we killed or stopped it
}

// Start builds the shale binary (once per process), starts etcd, an S3
// server and opts.Agents agent processes, and waits until each answers and
// sees all the others. t.Cleanup stops everything.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Agents <= 0 {
		opts.Agents = 1
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	race := raceAgents() && !opts.NoRace
	bin := binaryFor(t, race)
	endpoints := opts.EtcdEndpoints
	if len(endpoints) == 0 {
		endpoints = testenv.StartEtcdProcess(t).Endpoints()
	}
	var s3 testenv.S3Server
	if opts.S3 != nil {
		s3 = *opts.S3
	} else {
		s3 = testenv.S3(t)
	}
	c := &Cluster{t: t, bin: bin, race: race, opts: opts, etcd: endpoints, s3: s3}
	// Registered after etcd's and S3's cleanups, so it runs before them.
	t.Cleanup(c.stopAll)
	for i := range opts.Agents {
		a := &agentProc{index: i, dataDir: t.TempDir()}
		c.mu.Lock()
		c.agents = append(c.agents, a)
		c.mu.Unlock()
		if err := c.launch(a, true); err != nil {
			t.Fatalf("cluster: agent %d: %v", i, err)
		}
	}
	for i := range opts.Agents {
		if err := c.waitPeers(i, opts.Agents); err != nil {
			t.Fatalf("cluster: agent %d: %v", i, err)
		}
	}
	return c
}

// Addrs returns every agent's host:port, in agent order. An agent keeps its
// address across Kill and Restart.
func (c *Cluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.agents))
	for i, a := range c.agents {
		out[i] = a.addr
	}
	return out
}

// Addr returns agent i's host:port.
func (c *Cluster) Addr(i int) string { return c.agent(i).addr }

// AdminAddr is agent i's admin server address (/metrics, /healthz,
// /readyz), fixed across Kill and Restart.
func (c *Cluster) AdminAddr(i int) string { return c.agent(i).admin }

// S3 returns the S3 server holding the cluster's bucket (prefix "test").
func (c *Cluster) S3() testenv.S3Server { return c.s3 }

// EtcdEndpoints returns the endpoints of the cluster's etcd.
func (c *Cluster) EtcdEndpoints() []string { return c.etcd }

// Pid returns the process ID of agent i's running process (0 when it is
// not running), e.g. to read its memory use from /proc.
func (c *Cluster) Pid(i int) int {
	inc := c.agent(i).current()
	if inc == nil {
		return 0
	}
	return inc.cmd.Process.Pid
}

// Running reports whether agent i has a process (it may be exiting).
func (c *Cluster) Running(i int) bool { return c.agent(i).current() != nil }

// Kill sends SIGKILL to agent i and waits until the process is gone.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	a := c.agent(i)
	inc := a.current()
	if inc == nil {
		c.t.Fatalf("cluster: kill agent %d: not running", i)
	}
	a.mu.Lock()
	inc.expected = true
	a.mu.Unlock()
	_ = inc.cmd.Process.Signal(syscall.SIGKILL)
	<-inc.exited
	a.retire(inc)
}

// Stop sends SIGTERM to agent i, waits for it to exit (SIGKILL after a
// bound) and fails the test if it did not exit cleanly.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if err := c.stop(c.agent(i)); err != nil {
		c.t.Errorf("cluster: stop agent %d: %v", i, err)
	}
}

// Restart starts agent i again, on the same address and data directory,
// after Kill or Stop, and waits until it answers and sees every running
// agent.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	a := c.agent(i)
	if a.current() != nil {
		c.t.Fatalf("cluster: restart agent %d: still running (Kill or Stop it first)", i)
	}
	if err := c.launch(a, false); err != nil {
		c.t.Fatalf("cluster: restart agent %d: %v", i, err)
	}
	if err := c.waitPeers(i, c.running()); err != nil {
		c.t.Fatalf("cluster: restart agent %d: %v", i, err)
	}
}

// Client returns a franz-go client seeded with every agent, closed by
// t.Cleanup.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addrs()...)}, opts...)...)
	if err != nil {
		t.Fatalf("cluster: kgo client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates a topic with the given partitions through agent i
// and fails the test if the cluster refuses.
func (c *Cluster) CreateTopic(t testing.TB, i int, name string, partitions int32) {
	t.Helper()
	cl := c.Client(t, kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(DialTo(c.Addr(i))))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, name)
	if err != nil {
		t.Fatalf("cluster: create topic %s (%d partitions) via agent %d: %v", name, partitions, i, err)
	}
	if resp.Err != nil {
		t.Fatalf("cluster: create topic %s (%d partitions) via agent %d: %v (%s)", name, partitions, i, resp.Err, resp.ErrMessage)
	}
}

// DialTo returns a dial function that connects to addr whatever address it
// is asked for. Every shale agent serves every partition, so a client whose
// connections all go to one agent reads and writes everything through it.
// It fits kgo.Dialer, kafka-go's Transport.Dial and Dialer.DialFunc.
func DialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func (c *Cluster) agent(i int) *agentProc {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.agents) {
		c.t.Fatalf("cluster: no agent %d (have %d)", i, len(c.agents))
	}
	return c.agents[i]
}

func (c *Cluster) running() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.agents {
		if a.current() != nil {
			n++
		}
	}
	return n
}

func (a *agentProc) current() *incarnation {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur
}

func (a *agentProc) retire(inc *incarnation) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == inc {
		a.cur = nil
	}
}

// launch starts one process for slot a and waits until it answers
// ApiVersions. A first launch picks a free port, retrying when another
// process takes it first; a restart reuses the slot's address.
func (c *Cluster) launch(a *agentProc, fresh bool) error {
	var lastErr error
	for range startAttempts {
		if fresh {
			port, err := testenv.FreePort()
			if err != nil {
				return err
			}
			a.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			if port, err = testenv.FreePort(); err != nil {
				return err
			}
			a.admin = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
		inc, err := c.spawn(a)
		if err != nil {
			return err
		}
		err = waitAPIVersions(a.addr, inc.exited)
		if err == nil {
			return nil
		}
		a.mu.Lock()
		inc.expected = true
		a.mu.Unlock()
		_ = inc.cmd.Process.Signal(syscall.SIGKILL)
		<-inc.exited
		a.retire(inc)
		lastErr = fmt.Errorf("on %s: %w; output:\n%s", a.addr, err, inc.out.String())
		if !strings.Contains(inc.out.String(), "address already in use") {
			break
		}
	}
	return lastErr
}

func (c *Cluster) spawn(a *agentProc) (*incarnation, error) {
	args := []string{"agent",
		"--listen", a.addr,
		"--admin-listen", a.admin,
		"--etcd-endpoints", strings.Join(c.etcd, ","),
		"--bucket", "s3://" + c.s3.Bucket + "/test",
		"--s3-endpoint", c.s3.Endpoint,
		"--s3-region", c.s3.Region,
		"--s3-access-key", c.s3.AccessKey,
		"--s3-secret-key", c.s3.SecretKey,
		"--data-dir", a.dataDir,
		"--agent-ttl", "3s",
		"--flush-interval", "50ms",
		"--auto-create-topics",
		"--log-level", c.opts.LogLevel,
	}
	args = append(args, c.opts.Args...)
	if c.opts.AgentArgs != nil {
		args = append(args, c.opts.AgentArgs(a.index)...)
	}
	a.mu.Lock()
	a.count++
	inc := &incarnation{n: a.count, out: testenv.NewCappedBuffer(outputLimit), exited: make(chan struct{})}
	a.mu.Unlock()
	inc.cmd = exec.Command(c.bin, args...)
	inc.cmd.Env = hermeticEnv()
	inc.cmd.Stdout = inc.out
	inc.cmd.Stderr = inc.out
	inc.cmd.SysProcAttr = dieWithParent()
	if err := inc.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.bin, err)
	}
	go func() {
		inc.waitErr = inc.cmd.Wait()
		close(inc.exited)
	}()
	a.mu.Lock()
	a.cur = inc
	a.past = append(a.past, inc)
	a.mu.Unlock()
	return inc, nil
}

// stop sends SIGTERM and waits; SIGKILL after stopTimeout. It reports an
// agent that needed SIGKILL or exited with an error.
func (c *Cluster) stop(a *agentProc) error {
	inc := a.current()
	if inc == nil {
		return nil
	}
	a.mu.Lock()
	inc.expected = true
	a.mu.Unlock()
	defer a.retire(inc)
	select {
	case <-inc.exited:
		return fmt.Errorf("had already exited: %v", inc.waitErr)
	default:
	}
	_ = inc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-inc.exited:
		if inc.waitErr != nil {
			return fmt.Errorf("exited after SIGTERM with %v", inc.waitErr)
		}
		return nil
	case <-time.After(stopTimeout):
		_ = inc.cmd.Process.Signal(syscall.SIGKILL)
		<-inc.exited
		return fmt.Errorf("did not exit within %v of SIGTERM; killed", stopTimeout)
	}
}

// stopAll stops every agent in parallel, reports agents that died on their
// own or did not stop cleanly, and prints every agent's output if the test
// failed.
func (c *Cluster) stopAll() {
	c.mu.Lock()
	agents := append([]*agentProc(nil), c.agents...)
	c.mu.Unlock()
	// An agent that exited although nobody killed it is a crash.
	for _, a := range agents {
		a.mu.Lock()
		for _, inc := range a.past {
			select {
			case <-inc.exited:
				if !inc.expected {
					c.t.Errorf("cluster: agent %d (run %d) exited on its own: %v", a.index, inc.n, inc.waitErr)
					inc.expected = true
				}
			default:
			}
		}
		a.mu.Unlock()
	}
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() { errs[i] = c.stop(a) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.t.Errorf("cluster: stop agent %d: %v", i, err)
		}
	}
	for _, a := range agents {
		a.mu.Lock()
		for _, inc := range a.past {
			if strings.Contains(inc.out.String(), "WARNING: DATA RACE") {
				c.t.Errorf("cluster: agent %d run %d: the race detector reported a data race (output below)", a.index, inc.n)
			}
		}
		a.mu.Unlock()
	}
	if !c.t.Failed() {
		return
	}
	for _, a := range agents {
		a.mu.Lock()
		for _, inc := range a.past {
			c.t.Logf("cluster: agent %d (%s) run %d, pid %d, exit %v; output:\n%s",
				a.index, a.addr, inc.n, inc.cmd.Process.Pid, inc.waitErr, inc.out.String())
		}
		a.mu.Unlock()
	}
}

// waitAPIVersions retries an ApiVersions request to addr until it succeeds,
// the process exits or readyTimeout passes.
func waitAPIVersions(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		select {
		case <-exited:
			return errors.New("exited before answering ApiVersions")
		default:
		}
		lastErr = apiVersions(addr)
		if lastErr == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before answering ApiVersions")
		case <-time.After(min(time.Duration(attempt+1)*20*time.Millisecond, 250*time.Millisecond)):
		}
	}
	return fmt.Errorf("no ApiVersions answer within %v: %w", readyTimeout, lastErr)
}

func apiVersions(addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.Dialer(DialTo(addr)), kgo.RequestRetries(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req := kmsg.NewPtrApiVersionsRequest()
	// Kafka (and shale) reject v3+ without a valid client software name.
	req.ClientSoftwareName, req.ClientSoftwareVersion = "shale-tests", "1.0.0"
	resp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return err
	}
	if code := resp.(*kmsg.ApiVersionsResponse).ErrorCode; code != 0 {
		return fmt.Errorf("ApiVersions error code %d", code)
	}
	return nil
}

// waitPeers waits until agent i's Metadata lists exactly want brokers (an
// agent killed moments ago stays listed until its lease expires).
func (c *Cluster) waitPeers(i, want int) error {
	addr := c.Addr(i)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.Dialer(DialTo(addr)))
	if err != nil {
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{} // brokers only
		resp, err := cl.SeedBrokers()[0].Request(ctx, req)
		cancel()
		if err == nil {
			brokers := resp.(*kmsg.MetadataResponse).Brokers
			if len(brokers) == want {
				return nil
			}
			last = fmt.Sprintf("%d brokers listed, want %d", len(brokers), want)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("metadata never listed %d agents within %v: %s", want, readyTimeout, last)
}
