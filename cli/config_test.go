package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/metastore"
)

// syncBuffer is a bytes.Buffer safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExampleConfigAccepted proves `shale agent --config
// testdata/config/agent.yaml` accepts the annotated example: every key is a
// known setting, its values parse, and an agent starts with it (only the
// addresses that cannot exist on a test machine are overridden by flags,
// which win over the file) — and its settings apply (JSON logs, the node
// registered in etcd under the file's namespace).
func TestExampleConfigAccepted(t *testing.T) {
	_, endpoints := testenv.Etcd(t)
	dir := t.TempDir()
	kafka := freeTCPAddr(t)
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Execute(ctx, []string{"agent", "--config", "../testdata/config/agent.yaml",
			"--etcd-endpoints", strings.Join(endpoints, ","), "--bucket", filepath.Join(dir, "bucket"),
			"--s3-endpoint", "", "--data-dir", dir, "--listen", kafka, "--advertised-host", "127.0.0.1",
			"--admin-listen", "127.0.0.1:0"}, nil, &stderr, &stderr)
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("agent exited %d:\n%s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop")
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	meta := metastore.New(testenv.EtcdClient(t, endpoints), "/shale")
	for {
		agents, _ := meta.ListAgents(context.Background())
		if len(agents) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent with the example config never registered:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	line := strings.SplitN(strings.TrimSpace(stderr.String()), "\n", 2)[0]
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("log-format: json from the file not applied; first line %q", line)
	}

	// A key that is no flag is refused with a message naming it.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("flush-intervall: 1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs, code := run(t, "", "agent", "--config", bad)
	if code == 0 || !strings.Contains(errs, `unknown setting "flush-intervall"`) {
		t.Fatalf("misspelt key: exit %d, %q", code, errs)
	}
}

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
