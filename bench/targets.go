package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
)

// target is one system under test.
type target struct {
	name  string
	flush time.Duration // shale's --flush-interval; 0: the agent's default
	start func(ctx context.Context, dir string, partitions int) (*instance, error)
}

// instance is a running system under test.
type instance struct {
	addr     string
	proc     *os.Process               // the server process, for CPU and RSS
	s3       func() (puts, gets int64) // nil when there is no S3
	etcdTxns func() (int64, error)     // nil when there is no etcd
	etcdURL  string                    // etcd's client URL (its /metrics), "" when there is none
	admin    string                    // shale's admin server (/metrics), "" for kfake
	stop     func()
	created  bool // topic created by the server itself
}

func moduleRoot() (string, error) { return testenv.ModuleRoot() }

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// runKfake is the child-process mode: kfake serving one topic until killed.
func runKfake(port string, partitions int32) {
	p, err := strconv.Atoi(port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(p), kfake.SeedTopics(partitions, "bench"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer c.Close()
	select {}
}

func startProcess(name string, args []string, env []string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// waitKafka waits until addr answers a Kafka request.
func waitKafka(ctx context.Context, addr string, cmd *exec.Cmd) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err = cl.Ping(pctx)
			cancel()
			cl.Close()
			if err == nil {
				return nil
			}
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s never answered: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func kfakeTarget() target {
	return target{name: "kfake", start: func(ctx context.Context, dir string, partitions int) (*instance, error) {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		cmd, err := startProcess(self, []string{"-serve-kfake", port, "-partitions", strconv.Itoa(partitions)}, nil)
		if err != nil {
			return nil, err
		}
		if err := waitKafka(ctx, addr, cmd); err != nil {
			stopProcess(cmd)
			return nil, err
		}
		return &instance{addr: addr, proc: cmd.Process, stop: func() { stopProcess(cmd) }, created: true}, nil
	}}
}

// flushArgs sets --flush-interval when the run asks for one.
func flushArgs(flush time.Duration) []string {
	if flush <= 0 {
		return nil
	}
	return []string{"--flush-interval", flush.String()}
}

func shaleDevTarget(shale string, flush time.Duration) target {
	return target{name: "shale-dev", flush: flush, start: func(ctx context.Context, dir string, partitions int) (*instance, error) {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		etcd, err := freeAddr()
		if err != nil {
			return nil, err
		}
		admin, err := freeAddr()
		if err != nil {
			return nil, err
		}
		cmd, err := startProcess(shale, append([]string{"agent", "--dev", "--data-dir", dir, "--listen", addr, "--admin-listen", admin,
			"--dev-etcd-listen", etcd, "--log-level", "warn"}, flushArgs(flush)...), nil)
		if err != nil {
			return nil, err
		}
		if err := waitKafka(ctx, addr, cmd); err != nil {
			stopProcess(cmd)
			return nil, err
		}
		return &instance{addr: addr, proc: cmd.Process, stop: func() { stopProcess(cmd) }, admin: admin, etcdURL: "http://" + etcd,
			etcdTxns: func() (int64, error) { return etcdTxnTotal("http://" + etcd) }}, nil
	}}
}

// s3Starter starts an S3 server serving a directory: versitygw
// (testenv.StartS3Process) or MinIO (testenv.StartMinIOProcess).
type s3Starter func(dir string) (testenv.S3Server, func(), error)

func shaleS3Target(shale string, flush time.Duration) target {
	return shaleOnS3("shale-s3", testenv.StartS3Process, shale, flush)
}

// shaleMinIOTarget is shale-s3 on MinIO instead of versitygw.
func shaleMinIOTarget(shale string, flush time.Duration) target {
	return shaleOnS3("shale-minio", testenv.StartMinIOProcess, shale, flush)
}

func shaleOnS3(name string, startS3 s3Starter, shale string, flush time.Duration) target {
	return target{name: name, flush: flush, start: func(ctx context.Context, dir string, partitions int) (*instance, error) {
		emb, err := metastore.StartEmbedded(ctx, metastore.EmbedConfig{Dir: dir + "/etcd", ClientAddr: "127.0.0.1:0"})
		if err != nil {
			return nil, err
		}
		s3, stopS3, err := startS3(dir + "/s3")
		if err != nil {
			emb.Close()
			return nil, err
		}
		proxy, counts, stopProxy, err := countingProxy(s3.Endpoint)
		if err != nil {
			stopS3()
			emb.Close()
			return nil, err
		}
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		admin, err := freeAddr()
		if err != nil {
			return nil, err
		}
		cmd, err := startProcess(shale, append([]string{"agent", "--data-dir", dir + "/agent", "--listen", addr, "--admin-listen", admin,
			"--etcd-endpoints", strings.Join(emb.Endpoints(), ","), "--bucket", "s3://" + s3.Bucket + "/bench",
			"--s3-endpoint", proxy, "--s3-region", s3.Region, "--log-level", "warn"}, flushArgs(flush)...),
			[]string{"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey})
		if err != nil {
			return nil, err
		}
		stop := func() { stopProcess(cmd); stopProxy(); stopS3(); emb.Close() }
		if err := waitKafka(ctx, addr, cmd); err != nil {
			stop()
			return nil, err
		}
		ep := emb.Endpoints()[0]
		return &instance{addr: addr, proc: cmd.Process, stop: stop, s3: counts, admin: admin, etcdURL: ep,
			etcdTxns: func() (int64, error) { return etcdTxnTotal(ep) }}, nil
	}}
}

// countingProxy forwards to an S3 endpoint and counts requests by kind:
// what the bucket bills.
func countingProxy(endpoint string) (string, func() (int64, int64), func(), error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", nil, nil, err
	}
	var puts, gets atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(u)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut, http.MethodPost:
			puts.Add(1)
		case http.MethodGet:
			gets.Add(1)
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() (int64, int64) { return puts.Load(), gets.Load() }, func() { srv.Close() }, nil
}

// etcdTxnTotal reads etcd's own count of transactions from its /metrics.
func etcdTxnTotal(endpoint string) (int64, error) {
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "etcd_mvcc_txn_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("no etcd_mvcc_txn_total in %s/metrics", endpoint)
}

// procStats returns a process's CPU seconds used so far and its peak RSS.
func procStats(p *os.Process) (cpu float64, peakRSS int64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid)); err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			f := strings.Fields(s[i+2:])
			if len(f) > 13 {
				ut, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				cpu = (ut + st) / 100 // clock ticks (USER_HZ is 100 on Linux)
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				peakRSS = kb << 10
			}
		}
	}
	return cpu, peakRSS
}
