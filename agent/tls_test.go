package agent_test

import (
	"crypto/tls"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// TestCertificateReload proves a listener serves a renewed certificate
// once its files change, without a restart.
func TestCertificateReload(t *testing.T) {
	ca := agenttest.NewCA(t, "reload-ca")
	certA, keyA, _ := ca.Issue(t, "first", true)
	certB, keyB, _ := ca.Issue(t, "second", true)
	c := agenttest.Start(t, agenttest.Options{Agent: func(_ int, cfg *agent.Config) {
		cfg.Listeners = []agent.Listener{{Name: "tls", Address: "127.0.0.1:0", Protocol: agent.ProtocolSSL, CertFile: certA, KeyFile: keyA}}
		cfg.Auth.Authorizer = false
	}})
	addr := c.Agents[0].Server.ListenerAddr("tls").String()
	cn := func() string {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := cn(); got != "first" {
		t.Fatalf("served %q, want first", got)
	}
	for _, p := range [][2]string{{certB, certA}, {keyB, keyA}} {
		b, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		future := time.Now().Add(time.Minute)
		if err := os.Chtimes(p[1], future, future); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for cn() != "second" {
		if time.Now().After(deadline) {
			t.Fatal("renewed certificate not served")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMetadataAdvertisesListener proves Metadata answers with the
// addresses of the listener the client is connected to.
func TestMetadataAdvertisesListener(t *testing.T) {
	e := startSecure(t, 2)
	for _, tc := range []struct {
		name     string
		cl       *kgo.Client
		listener string
	}{
		{"SASL_SSL", e.client(t, 0, scram256("admin", "admin-secret")), lSASLSSL},
		{"default", e.c.Client(t), agent.DefaultListenerName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := kmsg.NewPtrMetadataRequest().RequestWith(testCtx(t, 10*time.Second), tc.cl)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, a := range e.c.Agents {
				want[a.Server.ListenerAddr(tc.listener).String()] = true
			}
			if len(resp.Brokers) != 2 {
				t.Fatalf("%d brokers", len(resp.Brokers))
			}
			for _, b := range resp.Brokers {
				if hp := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))); !want[hp] {
					t.Fatalf("broker %d advertised at %s, want one of %v", b.NodeID, hp, want)
				}
			}
		})
	}
}
