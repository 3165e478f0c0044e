package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/internal/testenv"
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

// secureAgent runs `shale agent` with a SASL_SSL listener and User:admin as
// super user (created first with `shale user create`), and returns the
// listener address, the CA file and the etcd flags.
func secureAgent(t *testing.T) (addr, caFile string, etcd []string) {
	addr, caFile, etcd, _ = secureAgentLogs(t)
	return addr, caFile, etcd
}

// secureAgentLogs is secureAgent that also returns the agent's log (info
// level and above).
func secureAgentLogs(t *testing.T) (addr, caFile string, etcd []string, logs *testenv.CappedBuffer) {
	t.Helper()
	_, endpoints := testenv.Etcd(t)
	etcd = []string{"--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-namespace", "/shale"}
	if _, errs, code := run(t, "admin-pw\n", append([]string{"user", "create", "admin", "--password-stdin"}, etcd...)...); code != 0 {
		t.Fatalf("user create admin: %s", errs)
	}
	ca := agenttest.NewCA(t, "cli-ca")
	cert, key, _ := ca.Issue(t, "agent", true)
	addr = freeAddr(t)
	dir := t.TempDir()
	logs = testenv.NewCappedBuffer(4 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Execute(ctx, append([]string{"agent", "--listen", "127.0.0.1:0", "--data-dir", dir, "--bucket", filepath.Join(dir, "bucket"),
			"--listener", "secure=SASL_SSL://" + addr, "--tls-cert", cert, "--tls-key", key, "--super-users", "User:admin", "--sasl-oauthbearer-unsecured",
			"--flush-interval", "20ms", "--lifecycle=false", "--log-level", "debug"}, etcd...), strings.NewReader(""), logs, logs)
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not listening on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, ca.CertFile, etcd, logs
}

// TestCLISecurity proves the security commands and flags end to end: users
// and ACLs managed with `shale user` / `shale acl`, client commands over
// SASL_SSL with SCRAM, refused with a wrong password or without an ACL; and
// no password shows in the agent's log, `shale status` or `--help`.
func TestCLISecurity(t *testing.T) {
	addr, ca, etcd, logs := secureAgentLogs(t)
	client := func(user, pass, mech string) []string {
		return []string{"-b", addr, "--tls-ca", ca, "--sasl-mechanism", mech, "--sasl-user", user, "--sasl-password", pass, "--timeout", "5s"}
	}
	admin := client("admin", "admin-pw", "SCRAM-SHA-512")
	if _, errs, code := run(t, "", append([]string{"topic", "create", "secure"}, admin...)...); code != 0 {
		t.Fatalf("topic create as admin: %s", errs)
	}
	if _, errs, code := run(t, "alice-pw\n", append([]string{"user", "create", "alice", "--password-stdin"}, etcd...)...); code != 0 {
		t.Fatalf("user create alice: %s", errs)
	}
	out, _, code := run(t, "", append([]string{"user", "list"}, etcd...)...)
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "SCRAM-SHA-512") || strings.Contains(out, "alice-pw") {
		t.Fatalf("user list:\n%s", out)
	}
	alice := client("alice", "alice-pw", "SCRAM-SHA-256")
	if _, _, code := run(t, "nope\n", append([]string{"produce", "-t", "secure"}, alice...)...); code == 0 {
		t.Fatal("alice produced without an ACL")
	}
	if _, errs, code := run(t, "", append([]string{"acl", "add", "--principal", "User:alice", "--operation", "read,write", "--topic", "sec", "--prefixed"}, etcd...)...); code != 0 {
		t.Fatalf("acl add: %s", errs)
	}
	out, _, _ = run(t, "", append([]string{"acl", "list", "--principal", "alice"}, etcd...)...)
	if !strings.Contains(out, "User:alice") || !strings.Contains(out, "prefixed") || strings.Count(out, "\n") != 3 {
		t.Fatalf("acl list:\n%s", out)
	}
	var errs string
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errs, code = run(t, "hello\n", append([]string{"produce", "-t", "secure"}, alice...)...)
		if code == 0 || time.Now().After(deadline) {
			break
		}
	}
	if code != 0 {
		t.Fatalf("alice produce with ACL: %s", errs)
	}
	out, errs, code = run(t, "", append([]string{"consume", "-t", "secure", "-n", "1"}, alice...)...)
	if code != 0 || strings.TrimSpace(out) != "hello" {
		t.Fatalf("alice consume: %q %s", out, errs)
	}
	if _, _, code := run(t, "x\n", append([]string{"produce", "-t", "secure"}, client("alice", "wrong", "PLAIN")...)...); code == 0 {
		t.Fatal("wrong password produced")
	}
	if out, errs, code := run(t, "", append([]string{"acl", "remove", "--principal", "User:alice", "--topic", "sec", "--prefixed"}, etcd...)...); code != 0 || strings.Count(out, "removed:") != 2 {
		t.Fatalf("acl remove: %s %s", out, errs)
	}
	if _, errs, code := run(t, "", append([]string{"user", "delete", "alice"}, etcd...)...); code != 0 {
		t.Fatalf("user delete: %s", errs)
	}
	out, _, _ = run(t, "", append([]string{"user", "list"}, etcd...)...)
	if strings.Contains(out, "alice") {
		t.Fatalf("alice still listed:\n%s", out)
	}
	status, _, _ := run(t, "", append([]string{"status", "-o", "json"}, etcd...)...)
	help, _, _ := run(t, "", "agent", "--help")
	for what, text := range map[string]string{"agent log": logs.String(), "status": status, "agent --help": help} {
		for _, secret := range []string{"admin-pw", "alice-pw", "stored_key", "server_key"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows %q", what, secret)
			}
		}
	}
	if !strings.Contains(logs.String(), "SASL authentication failed") {
		t.Error("failed login not logged")
	}
	for _, flag := range []string{"--listener", "--tls-cert", "--tls-client-ca", "--super-users", "--authorizer", "--etcd-cert"} {
		if !strings.Contains(help, flag) {
			t.Errorf("agent --help lacks %s", flag)
		}
	}
}

// TestKcatSCRAMOverTLS proves librdkafka (kcat) produces and consumes over
// SASL_SSL with SCRAM-SHA-256 and SCRAM-SHA-512, and is refused with a wrong
// password; and with OAUTHBEARER, its own unsecured JWT.
func TestKcatSCRAMOverTLS(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is missing (%v): run `make test-deps` to install it", err)
	}
	addr, ca, _ := secureAgent(t)
	admin := []string{"-b", addr, "--tls-ca", ca, "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "admin", "--sasl-password", "admin-pw"}
	if _, errs, code := run(t, "", append([]string{"topic", "create", "kc"}, admin...)...); code != 0 {
		t.Fatalf("topic create: %s", errs)
	}
	kc := func(mech, pass, stdin string, args ...string) (string, error) {
		base := []string{"-b", addr, "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=" + mech,
			"-X", "sasl.username=admin", "-X", "sasl.password=" + pass, "-X", "ssl.ca.location=" + ca}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append(base, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for i, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		if out, err := kc(mech, "admin-pw", mech+"\n", "-P", "-t", "kc"); err != nil {
			t.Fatalf("kcat produce %s: %v\n%s", mech, err, out)
		}
		out, err := kc(mech, "admin-pw", "", "-C", "-t", "kc", "-o", "beginning", "-e", "-q")
		if err != nil || strings.Count(out, "SCRAM-SHA-") != i+1 {
			t.Fatalf("kcat consume %s: %v\n%s", mech, err, out)
		}
	}
	out, err := kc("SCRAM-SHA-256", "wrong", "", "-L")
	if err == nil || !strings.Contains(strings.ToLower(out), "authentication") {
		t.Fatalf("kcat with a wrong password: %v\n%s", err, out)
	}
	// OAUTHBEARER (--sasl-oauthbearer-unsecured) with the unsecured JWT
	// librdkafka makes itself: principal admin produces and consumes
	// (agent's TestOAuthBearerUnsecured covers refused tokens and ACLs).
	oauth := func(principal, stdin string, args ...string) (string, error) {
		base := []string{"-b", addr, "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=OAUTHBEARER",
			"-X", "enable.sasl.oauthbearer.unsecure.jwt=true", "-X", "sasl.oauthbearer.config=principal=" + principal,
			"-X", "ssl.ca.location=" + ca}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append(base, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := oauth("admin", "OAUTHBEARER\n", "-P", "-t", "kc"); err != nil {
		t.Fatalf("kcat produce with OAUTHBEARER: %v\n%s", err, out)
	}
	out, err = oauth("admin", "", "-C", "-t", "kc", "-o", "beginning", "-e", "-q")
	if err != nil || !strings.Contains(out, "OAUTHBEARER") {
		t.Fatalf("kcat consume with OAUTHBEARER: %v\n%s", err, out)
	}
}

// TestPythonSCRAMOverTLS proves confluent-kafka for Python (librdkafka)
// produces and consumes over SASL_SSL with SCRAM-SHA-256 and SCRAM-SHA-512
// with the right password, and is refused (nothing acknowledged) with a
// wrong one.
func TestPythonSCRAMOverTLS(t *testing.T) {
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import confluent_kafka").CombinedOutput(); err != nil {
		t.Fatalf("python3-confluent-kafka is missing (%v: %s): run `make test-deps` to install it", err, out)
	}
	script, err := filepath.Abs("../tests/python/sasl.py")
	if err != nil {
		t.Fatal(err)
	}
	addr, ca, _ := secureAgent(t)
	admin := []string{"-b", addr, "--tls-ca", ca, "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "admin", "--sasl-password", "admin-pw"}
	type result struct {
		Acked    int    `json:"acked"`
		Consumed int    `json:"consumed"`
		ValuesOK bool   `json:"values_ok"`
		Error    string `json:"error"`
	}
	py := func(mech, pass, topic string) (result, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, python, script, addr, ca, mech, "admin", pass, topic, "200").Output()
		var r result
		if jerr := json.Unmarshal(out, &r); jerr != nil {
			return r, fmt.Errorf("no result line (%v): %s (run error %v)", jerr, out, err)
		}
		return r, err
	}
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		topic := "py-" + strings.ToLower(mech)
		if _, errs, code := run(t, "", append([]string{"topic", "create", topic}, admin...)...); code != 0 {
			t.Fatalf("topic create: %s", errs)
		}
		r, err := py(mech, "admin-pw", topic)
		if err != nil || r.Acked != 200 || r.Consumed != 200 || !r.ValuesOK {
			t.Fatalf("python %s: %+v, %v", mech, r, err)
		}
	}
	if _, errs, code := run(t, "", append([]string{"topic", "create", "py-refused"}, admin...)...); code != 0 {
		t.Fatalf("topic create: %s", errs)
	}
	r, err := py("SCRAM-SHA-512", "wrong", "py-refused")
	if err == nil || r.Acked != 0 || !strings.Contains(strings.ToLower(r.Error), "authentication") {
		t.Fatalf("python with a wrong password: %+v, %v; want refused with an authentication error", r, err)
	}
	out, errs, code := run(t, "", append([]string{"consume", "-t", "py-refused"}, admin...)...)
	if code != 0 || strings.TrimSpace(out) != "" {
		t.Fatalf("the refused producer wrote something: %q %s", out, errs)
	}
}
