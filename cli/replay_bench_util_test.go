package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
)

// benchEnvInt reads a positive integer setting of BenchmarkReplay.
func benchEnvInt(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// benchShale runs the test binary as the shale command against the
// benchmark's etcd and S3 server.
type benchShale struct {
	self string
	s3   testenv.S3Server
	etcd string
	ns   string
}

// flags are the cluster's etcd and bucket flags.
func (sh *benchShale) flags() []string {
	return []string{"--etcd-endpoints", sh.etcd, "--etcd-namespace", sh.ns,
		"--bucket", "s3://" + sh.s3.Bucket, "--s3-endpoint", sh.s3.Endpoint, "--s3-region", sh.s3.Region,
		"--s3-access-key", sh.s3.AccessKey, "--s3-secret-key", sh.s3.SecretKey}
}

// command is `shale args...`, profiled to prof (when not "") and saving
// its /proc status to hwm.
func (sh *benchShale) command(prof, hwm string, args ...string) *exec.Cmd {
	cmd := exec.Command(sh.self, args...)
	cmd.Env = append(os.Environ(), "SHALE_REPLAY_TEST_AS_SHALE=1", "SHALE_REPLAY_HWM_FILE="+hwm)
	if prof != "" {
		cmd.Env = append(cmd.Env, "SHALE_BENCH_PROFILE="+prof)
	}
	return cmd
}

// run runs `shale args...` to its end and returns its peak RSS and the
// CPU time it used (user and system).
func (sh *benchShale) run(b *testing.B, prof string, args ...string) (int64, time.Duration) {
	b.Helper()
	hwm := filepath.Join(b.TempDir(), "status")
	cmd := sh.command(prof, hwm, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("shale %s: %v: %s", args[0], err, stderr.String())
	}
	return vmHWM(b, hwm), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// benchAgent is a `shale agent` subprocess.
type benchAgent struct {
	cmd    *exec.Cmd
	addr   string
	hwm    string
	mu     sync.Mutex
	stderr strings.Builder
	drain  sync.WaitGroup
}

// startAgent starts a `shale agent` with an empty data directory (a cold
// read cache), no lifecycle jobs, and waits until it listens.
func (sh *benchShale) startAgent(b *testing.B, prof string) *benchAgent {
	b.Helper()
	a := &benchAgent{hwm: filepath.Join(b.TempDir(), "status")}
	args := append([]string{"agent", "--listen", "127.0.0.1:0", "--data-dir", b.TempDir(),
		"--lifecycle=false", "--log-level", "warn"}, sh.flags()...)
	a.cmd = sh.command(prof, a.hwm, args...)
	pr, err := a.cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ready := make(chan string, 1)
	a.drain.Add(1)
	go func() {
		defer a.drain.Done()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			a.mu.Lock()
			a.stderr.WriteString(line + "\n")
			a.mu.Unlock()
			if rest, ok := strings.CutPrefix(line, "shale agent listening on "); ok {
				ready <- strings.Fields(rest)[0]
			}
		}
		_, _ = io.Copy(io.Discard, pr)
		close(ready)
	}()
	select {
	case addr, ok := <-ready:
		if ok {
			a.addr = addr
			return a
		}
	case <-time.After(30 * time.Second):
	}
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	b.Fatalf("shale agent did not start: %s", a.stderr.String())
	return nil
}

// stop ends the agent with SIGTERM and returns its peak RSS and the CPU
// time it used.
func (a *benchAgent) stop(b *testing.B) (int64, time.Duration) {
	b.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	a.drain.Wait()
	if err := a.cmd.Wait(); err != nil {
		a.mu.Lock()
		defer a.mu.Unlock()
		b.Fatalf("shale agent: %v: %s", err, a.stderr.String())
	}
	return vmHWM(b, a.hwm), a.cmd.ProcessState.UserTime() + a.cmd.ProcessState.SystemTime()
}

// benchResults collects BenchmarkReplay's measures, per reader and round.
type benchResults struct {
	names  []string // in first-measured order
	runs   map[string][]benchRun
	shares map[string][]float64 // per consumer reader and round: share of its time spent receiving fetch answers
}

// answerShare records, for a consumer reader's round, the share of the
// consumers' time spent receiving fetch answers (the rest: decoding).
func (r *benchResults) answerShare(name string, share float64) {
	if r.shares == nil {
		r.shares = map[string][]float64{}
	}
	r.shares[name] = append(r.shares[name], share)
}

type benchRun struct {
	round int
	mbps  float64
	rss   int64
	cpu   float64 // CPU seconds per GB stored
}

// add records one run: bytes stored read in took by processes that used
// cpu (0: not measured) and peaked at rss bytes.
func (r *benchResults) add(name string, round int, bytes int64, took time.Duration, rss int64, cpu time.Duration) {
	if r.runs == nil {
		r.runs = map[string][]benchRun{}
	}
	if _, ok := r.runs[name]; !ok {
		r.names = append(r.names, name)
	}
	r.runs[name] = append(r.runs[name], benchRun{round: round, mbps: float64(bytes) / took.Seconds() / 1e6, rss: rss,
		cpu: cpu.Seconds() / (float64(bytes) / 1e9)})
}

// median and spread (min, max) of xs.
func medianSpread(xs []float64) (med, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

// report prints the table (and writes it to SHALE_REPLAY_BENCH_OUT).
func (r *benchResults) report(b *testing.B, mib int, stored int64, spans, parallel int) {
	b.Helper()
	raw := map[int]float64{}
	for _, run := range r.runs["raw-get"] {
		raw[run.round] = run.mbps
	}
	var sb strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&sb, "replay benchmark: %d MiB of records, %.1f MiB stored in %d spans, %d GETs at a time, %d round(s), %s, load average %s\n",
		mib, float64(stored)/(1<<20), spans, parallel, len(raw), time.Now().UTC().Format(time.RFC3339), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	fmt.Fprintf(&sb, "%-16s %24s %28s %14s %12s %14s\n", "reader", "MB/s median (min-max)", "/ raw GET median (min-max)", "peak RSS MiB", "CPU s/GB", "fetch answers")
	for _, name := range r.names {
		var mbps, ratios, cpus []float64
		var rss int64
		for _, run := range r.runs[name] {
			mbps = append(mbps, run.mbps)
			if g := raw[run.round]; g > 0 {
				ratios = append(ratios, run.mbps/g)
			}
			rss = max(rss, run.rss)
			if run.cpu > 0 {
				cpus = append(cpus, run.cpu)
			}
		}
		m, lo, hi := medianSpread(mbps)
		rm, rlo, rhi := medianSpread(ratios)
		rssCol, cpuCol := "", ""
		if rss > 0 {
			rssCol = fmt.Sprintf("%.0f", float64(rss)/(1<<20))
		}
		if len(cpus) > 0 {
			c, _, _ := medianSpread(cpus)
			cpuCol = fmt.Sprintf("%.2f", c)
		}
		shareCol := ""
		if sh := r.shares[name]; len(sh) > 0 {
			m, _, _ := medianSpread(sh)
			shareCol = fmt.Sprintf("%.0f%%", 100*m)
		}
		fmt.Fprintf(&sb, "%-16s %24s %28s %14s %12s %14s\n", name, fmt.Sprintf("%.1f (%.1f-%.1f)", m, lo, hi),
			fmt.Sprintf("%.2f (%.2f-%.2f)", rm, rlo, rhi), rssCol, cpuCol, shareCol)
	}
	sb.WriteString("fetch answers: the share of a consumer's time from sending a fetch to having read its answer (the agent's work and the transfer); the rest is franz-go decoding it\n")
	fmt.Print(sb.String())
	if out := os.Getenv("SHALE_REPLAY_BENCH_OUT"); out != "" {
		err := os.MkdirAll(filepath.Dir(out), 0o755)
		if err == nil {
			err = os.WriteFile(out, []byte(sb.String()), 0o644)
		}
		if err != nil {
			b.Errorf("write %s: %v", out, err)
		}
	}
}
