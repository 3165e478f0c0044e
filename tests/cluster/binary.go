package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// binaries holds the shale binary built without (index 0) and with (1)
// the race detector, each built at most once per test process.
var binaries [2]struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary builds the shale binary once per test process (`go build` in the
// module root), with the race detector when the agents under test are
// built with it (SHALE_AGENT_RACE=1, MainWithRaceAgents), and returns its
// path. Main removes it at exit.
func Binary(t testing.TB) string {
	t.Helper()
	return binaryFor(t, raceAgents())
}

func binaryFor(t testing.TB, race bool) string {
	t.Helper()
	b := &binaries[0]
	if race {
		b = &binaries[1]
	}
	b.once.Do(func() {
		root, err := testenv.ModuleRoot()
		if err != nil {
			b.err = err
			return
		}
		dir, err := os.MkdirTemp("", "shale-tests-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.dir = dir
		path := filepath.Join(dir, "shale")
		args := []string{"build", "-o", path}
		if race {
			args = append(args, "-race") // stopAll fails a test whose agents report a race
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		if err := cmd.Run(); err != nil {
			b.err = fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), root, err, out.String())
			return
		}
		b.path = path
	})
	if b.err != nil {
		t.Fatalf("cluster: build shale: %v", b.err)
	}
	return b.path
}

// envAgentRace set to 1 makes Binary build the agents with the race
// detector (`make test-race` does for tests/cluster and tests/reliability;
// MainWithRaceAgents makes it the default of a package); 0 builds them
// without it.
const envAgentRace = "SHALE_AGENT_RACE"

func raceAgents() bool { return os.Getenv(envAgentRace) == "1" }

// RaceMemFactor is how much more memory an agent built with the race
// detector may use than one built without: the race detector's documented
// cost is 5-10x. Tests that bound an agent's RSS multiply their bound by
// MemFactor, so they run with race-built agents too (their concurrency
// checked for races) while a run without checks the real bound.
const RaceMemFactor = 10

// MemFactor is RaceMemFactor when c's agents are built with the race
// detector, else 1.
func (c *Cluster) MemFactor() int64 {
	if c.race {
		return RaceMemFactor
	}
	return 1
}

// Main serves as an etcd process when started as one
// (testenv.RunEtcdIfAsked, for Start's etcd), else runs the tests and
// removes the binaries Binary built. Use it as
// `func TestMain(m *testing.M) { cluster.Main(m) }`.
func Main(m *testing.M) {
	testenv.RunEtcdIfAsked() // returns unless started as StartEtcdProcess's etcd
	code := m.Run()
	for i := range binaries {
		if dir := binaries[i].dir; dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// MainWithRaceAgents is Main for a package whose agents are built with the
// race detector unless SHALE_AGENT_RACE says otherwise (0): tests/interop,
// whose one pass in `make test` is thereby also its race pass.
func MainWithRaceAgents(m *testing.M) {
	if os.Getenv(envAgentRace) == "" {
		_ = os.Setenv(envAgentRace, "1")
	}
	Main(m)
}
