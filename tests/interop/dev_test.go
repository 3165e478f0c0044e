package interop

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shale-dev/shale/tests/cluster"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startDev runs `shale agent --dev` in dir (as `make run` does, on free
// ports) and waits until kcat can list the cluster.
func startDev(t *testing.T, dir, kafka, etcd string) *exec.Cmd {
	t.Helper()
	var logs bytes.Buffer
	cmd := exec.Command(cluster.Binary(t), "agent", "--dev", "--listen", kafka, "--dev-etcd-listen", etcd, "--admin-listen", "127.0.0.1:0", "--flush-interval", "50ms")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// Built with -race under `make test-race`: the agent reports races
		// in its output (the harness in tests/cluster checks its own).
		if strings.Contains(logs.String(), "WARNING: DATA RACE") {
			t.Errorf("shale agent --dev reported a data race:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := execTool(t, 10*time.Second, nil, nil, "kcat", "-b", kafka, "-L", "-m", "5")
		if r.err == nil && bytes.Contains(r.stdout, []byte("1 brokers")) {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("shale agent --dev did not answer kcat -L: %v\n%s\nagent log:\n%s", r.err, r.stderr, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDevModeSurvivesKill proves the README's first steps: `shale agent
// --dev` answers `kcat -L`, auto-creates a topic on produce, and after a
// kill -9 and a restart on the same ./data every acknowledged record is
// still there (the embedded default is the same system, not a toy).
func TestDevModeSurvivesKill(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatalf("kcat is missing (%v): run `make test-deps` (scripts/test-deps.sh) to install it", err)
	}
	dir := t.TempDir()
	kafka, etcd := freeAddr(t), freeAddr(t)
	cmd := startDev(t, dir, kafka, etcd)
	var in strings.Builder
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&in, "k%d:v%d\n", i, i)
	}
	runTool(t, bytes.NewBufferString(in.String()), "kcat", "-b", kafka, "-t", "devtopic", "-K:", "-P", "-X", "acks=all")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, "data", "bucket")); err != nil {
		t.Fatalf("dev mode keeps no bucket under ./data: %v", err)
	}
	startDev(t, dir, kafka, etcd)
	out := runTool(t, nil, "kcat", "-b", kafka, "-t", "devtopic", "-C", "-e", "-f", "%k=%s\n")
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 500 {
		t.Fatalf("after kill -9 and restart: %d records, want 500", len(lines))
	}
	for i, l := range lines {
		if l != fmt.Sprintf("k%d=v%d", i, i) {
			t.Fatalf("record %d is %q", i, l)
		}
	}
}
