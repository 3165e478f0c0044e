package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shale-dev/shale/internal/testenv"
)

// This file holds what the harness does once per test process: build the
// agent binary (with the race detector under SHALE_AGENT_RACE=1), the
// memory allowance that follows from it, and TestMain's body.

// hermeticEnv is the environment minus settings the agent would read
// (SHALE_*) and AWS credentials or endpoints that would override the test's.
func hermeticEnv() []string { return testenv.EnvWithout("SHALE_", "AWS_") }

// binary is the shale binary built for this test process.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary builds the shale binary once per test process (`go build` in the
// module root) and returns its path. Main removes it at exit.
func Binary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		root, err := testenv.ModuleRoot()
		if err != nil {
			binary.err = err
			return
		}
		dir, err := os.MkdirTemp("", "shale-tests-bin-")
		if err != nil {
			binary.err = err
			return
		}
		binary.dir = dir
		path := filepath.Join(dir, "shale")
		args := []string{"build", "-o", path}
		if os.Getenv(envAgentRace) == "1" {
			args = append(args, "-race") // stopAll fails a test whose agents report a race
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		if err := cmd.Run(); err != nil {
			binary.err = fmt.Errorf("go build -o %s in %s: %w\n%s", path, root, err, out.String())
			return
		}
		binary.path = path
	})
	if binary.err != nil {
		t.Fatalf("cluster: build shale: %v", binary.err)
	}
	return binary.path
}

// envAgentRace set to 1 makes Binary build the agents with the race
// detector (`make test-race` does).
const envAgentRace = "SHALE_AGENT_RACE"

// RaceMemFactor is how much more memory an agent built with the race
// detector may use than one built without: the race detector's documented
// cost is 5-10x. Tests that bound an agent's RSS multiply their bound by
// MemFactor(), so they run under `make test-race` too (their concurrency
// checked for races) while `make test-go` checks the real bound.
const RaceMemFactor = 10

// MemFactor is RaceMemFactor when the agents under test are built with
// the race detector (SHALE_AGENT_RACE=1), else 1.
func MemFactor() int64 {
	if os.Getenv(envAgentRace) == "1" {
		return RaceMemFactor
	}
	return 1
}

// Main serves as an etcd process when started as one
// (testenv.RunEtcdIfAsked, for Start's etcd), else runs the tests and
// removes the binary Binary built. Use it as
// `func TestMain(m *testing.M) { cluster.Main(m) }`.
func Main(m *testing.M) {
	testenv.RunEtcdIfAsked() // returns unless started as StartEtcdProcess's etcd
	code := m.Run()
	if binary.dir != "" {
		_ = os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}
