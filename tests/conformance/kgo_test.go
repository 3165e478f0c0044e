package conformance

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/tests/cluster"
)

func TestMain(m *testing.M) { cluster.Main(m) }

// kgoTestTimeout bounds one kgo test process. The slowest passing test
// (TestClient_Produce on the cluster) takes about 75 s on a loaded 2-core
// machine; a pending test that hangs (TestTxnEtl) costs this much.
const kgoTestTimeout = 150 * time.Second

// clusterFlush is the cluster agents' --flush-interval. TestClient_Produce
// runs 50 producers that each wait for one record's acknowledgement before
// sending the next, 20,000 records in all: at the default 250ms it takes
// many minutes, at 50ms two and a half, at 20ms about a minute. An
// operator picks the interval per deployment (latency against PUTs); this
// is the low-latency choice.
const clusterFlush = "20ms"

// SCRAM user the kgo SCRAM tests log in as (KGO_TEST_SCRAM).
const scramUser, scramPass = "kgo", "kgo-secret"

// TestKgoSuite proves that franz-go's own kgo integration tests pass
// against shale — a dev agent, and a two-agent cluster on a real S3 server
// — except the pending ones, each waiting on its open issue (pending_test.go).
func TestKgoSuite(t *testing.T) {
	if topo := os.Getenv("SHALE_KGO_TOPOLOGY"); topo == "kafka-go" || topo == "librdkafka" {
		return // a focused rerun of another suite
	}
	// Alongside librdkafka's suite (TestLibrdkafkaSuite), after the
	// sequential tests (kafka-go's suite among them).
	t.Parallel()
	s := buildKgo(t)
	var filter *regexp.Regexp
	if f := os.Getenv("SHALE_KGO_RUN"); f != "" {
		filter = regexp.MustCompile(f)
	}
	records := envInt("SHALE_KGO_RECORDS", 20000)
	parallel := envInt("SHALE_KGO_PARALLEL", 3)
	only := os.Getenv("SHALE_KGO_TOPOLOGY")

	topologies := []struct {
		name  string
		title string
		start func(t *testing.T) (seed, saslSeed string)
	}{
		{"dev", "franz-go kgo integration suite vs `shale agent --dev`", func(t *testing.T) (string, string) { return startDevAgent(t) }},
		{"cluster", "franz-go kgo integration suite vs 2 agents, etcd + versitygw S3 (seed: agent 0)", startCluster},
	}
	for _, topo := range topologies {
		if only != "" && only != topo.name {
			continue // a focused rerun of another topology or suite
		}
		t.Run(topo.name, func(t *testing.T) {
			seed, saslSeed := topo.start(t)
			createSCRAMUser(t, seed)
			env := append(testenv.EnvWithout("KGO_"),
				"KGO_SEEDS="+seed,
				"KGO_TEST_RF=1",
				"KGO_TEST_RECORDS="+strconv.Itoa(records),
				"KGO_TEST_SCRAM_SEEDS="+saslSeed,
				"KGO_TEST_SCRAM="+scramUser+":"+scramPass+":256",
				"KGO_TEST_OAUTH_SEEDS="+saslSeed,
				"KGO_LOG_LEVEL=info",
			)
			start := time.Now()
			rs := runSuite(s, filter, env, kgoTestTimeout, parallel, kgoPending)
			title := fmt.Sprintf("%s, KGO_TEST_RECORDS=%d, %d at a time", topo.title, records, parallel)
			fmt.Print(table(title, rs, time.Since(start)))
			for _, r := range rs {
				if r.outcome == outFail {
					t.Errorf("%s: %s\n%s", r.name, r.note, tail(r.output, 60))
				}
			}
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// agentArgs gives an agent a SASL_PLAINTEXT listener for the SCRAM and
// OAUTHBEARER tests (kgo's TestOAuthAuth mints unsecured JWS tokens, which
// Kafka's default OAUTHBEARER validator accepts, and so does
// --sasl-oauthbearer-unsecured). A SASL listener turns authorization on;
// User:ANONYMOUS (the plaintext listener every other test uses) is made a
// super user so that nothing else changes.
func agentArgs(saslAddr string) []string {
	return []string{"--listener", "sasl=SASL_PLAINTEXT://" + saslAddr, "--sasl-oauthbearer-unsecured",
		"--super-users", "User:ANONYMOUS," + "User:" + scramUser}
}

// startDevAgent runs `shale agent --dev` (as `make run` does, on free ports
// and in a temporary directory, with extra flags) and returns its
// plaintext and SASL addresses once it answers.
func startDevAgent(t *testing.T, extra ...string) (string, string) {
	kafka, etcd, sasl := freeAddr(t), freeAddr(t), freeAddr(t)
	args := append([]string{"agent", "--dev", "--listen", kafka, "--dev-etcd-listen", etcd,
		"--admin-listen", "127.0.0.1:0", "--log-level", "warn"}, agentArgs(sasl)...)
	args = append(args, extra...)
	cmd := exec.Command(cluster.Binary(t), args...)
	logs := startAgent(t, cmd, "dev agent")
	waitKafka(t, kafka, logs)
	return kafka, sasl
}

// startCluster starts two agent processes on an embedded etcd and a
// versitygw S3 server; the seed broker is agent 0, and clients reach agent
// 1 through Metadata as they would in production.
func startCluster(t *testing.T) (string, string) {
	sasl := []string{freeAddr(t), freeAddr(t)}
	c := cluster.Start(t, cluster.Options{Agents: 2, Args: []string{"--flush-interval", clusterFlush},
		AgentArgs: func(i int) []string { return agentArgs(sasl[i]) }})
	return c.Addr(0), sasl[0]
}

// startAgent starts an agent command (in a temporary directory, without
// the caller's SHALE_ and AWS_ environment, killed if the test process
// dies) and returns its output. Cleanup stops it with SIGTERM (SIGKILL
// after 15 s) and logs the tail of its output when the test failed.
func startAgent(t *testing.T, cmd *exec.Cmd, what string) *testenv.CappedBuffer {
	t.Helper()
	cmd.Dir = t.TempDir()
	cmd.Env = testenv.EnvWithout("SHALE_", "AWS_")
	logs := testenv.NewCappedBuffer(1 << 20)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", what, tail(logs.String(), 200))
		}
	})
	return logs
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitKafka waits until addr answers a Kafka request.
func waitKafka(t *testing.T, addr string, logs fmt.Stringer) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := cl.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent on %s does not answer: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// createSCRAMUser creates the SCRAM-SHA-256 user of the SCRAM tests
// through the Kafka API (AlterUserScramCredentials), as an operator would.
func createSCRAMUser(t *testing.T, seed string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seed))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: scramUser, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: scramPass,
	}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("create SCRAM user %s: %v", scramUser, err)
	}
}
