package agent_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/auth"
)

// Listener names of secure clusters.
const (
	lSASLSSL   = "SASL_SSL"
	lSASLPlain = "SASL_PLAIN"
	lMTLS      = "MTLS"
)

const failureDelay = 200 * time.Millisecond

// secEnv is a cluster whose agents have a SASL_SSL, a SASL_PLAINTEXT and an
// mTLS listener, User:admin as super user, and admin's credentials.
type secEnv struct {
	c  *agenttest.Cluster
	ca *agenttest.CA
}

func startSecure(t *testing.T, agents int) *secEnv {
	t.Helper()
	ca := agenttest.NewCA(t, "shale-test-ca")
	cert, key, _ := ca.Issue(t, "agent", true)
	c := agenttest.Start(t, agenttest.Options{Agents: agents, Agent: func(_ int, cfg *agent.Config) {
		cfg.AutoCreateTopics = false
		cfg.Listeners = []agent.Listener{
			{Name: lSASLSSL, Address: "127.0.0.1:0", Protocol: agent.ProtocolSASLSSL, CertFile: cert, KeyFile: key},
			{Name: lSASLPlain, Address: "127.0.0.1:0", Protocol: agent.ProtocolSASLPlaintext},
			{Name: lMTLS, Address: "127.0.0.1:0", Protocol: agent.ProtocolSSL, CertFile: cert, KeyFile: key, ClientCAFile: ca.CertFile},
		}
		cfg.Auth = agent.AuthConfig{SuperUsers: []string{"User:admin"}, FailureDelay: failureDelay}
	}})
	e := &secEnv{c: c, ca: ca}
	e.putUser(t, "admin", "admin-secret")
	return e
}

// putUser stores SCRAM-SHA-256 and -512 credentials straight in etcd (how
// the first user is bootstrapped: `shale user create`).
func (e *secEnv) putUser(t *testing.T, user, pass string) {
	t.Helper()
	for _, m := range []string{auth.ScramSHA256, auth.ScramSHA512} {
		cred, err := auth.NewCredential(m, pass, auth.MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.c.Meta.PutCredential(context.Background(), user, cred); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *secEnv) addr(i int, listener string) string {
	return e.c.Agents[i].Server.ListenerAddr(listener).String()
}

func (e *secEnv) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: e.ca.Pool(), ServerName: "127.0.0.1"}
}

// client connects to agent i's SASL_SSL listener (only to it).
func (e *secEnv) client(t *testing.T, i int, m sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	addr := e.addr(i, lSASLSSL)
	var d net.Dialer
	tcfg := e.tlsConfig()
	base := []kgo.Opt{kgo.SeedBrokers(addr), kgo.SASL(m), kgo.RetryTimeout(3 * time.Second),
		kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return tls.Client(nc, tcfg.Clone()), nil
		})}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func scram256(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha256Mechanism() }
func scram512(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha512Mechanism() }
func plainM(u, p string) sasl.Mechanism   { return plain.Auth{User: u, Pass: p}.AsMechanism() }

func (e *secEnv) admin(t *testing.T, i int) *kadm.Client {
	return kadm.NewClient(e.client(t, i, scram256("admin", "admin-secret")))
}

func mustCreateTopic(t *testing.T, adm *kadm.Client, topic string) {
	t.Helper()
	res, err := adm.CreateTopics(testCtx(t, 10*time.Second), 1, 1, nil, topic)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

func mustACL(t *testing.T, adm *kadm.Client, b *kadm.ACLBuilder) {
	t.Helper()
	res, err := adm.CreateACLs(testCtx(t, 10*time.Second), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("create ACL: %v", r.Err)
		}
	}
}

func endOffset(t *testing.T, adm *kadm.Client, topic string) int64 {
	t.Helper()
	offs, err := adm.ListEndOffsets(testCtx(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := offs.Lookup(topic, 0)
	if !ok || o.Err != nil {
		t.Fatalf("end offset of %s: %+v", topic, o)
	}
	return o.Offset
}

func consumeN(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t, 15*time.Second)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", len(out), n)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// syncACLs waits until every agent enforces the ACLs etcd holds now. An
// agent applies its own changes before answering; the others follow
// through their watch, which lags on a loaded machine, as Kafka's brokers
// follow their metadata log.
func (e *secEnv) syncACLs(t *testing.T) {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	// The newest ACL change is the highest ModRevision under the ACL
	// prefix (metastore/doc.go's key schema); an agent that reloaded at or
	// after it enforces it.
	resp, err := e.c.Etcd.Get(ctx, strings.TrimRight(e.c.Namespace, "/")+"/acls/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		t.Fatal("syncACLs: no ACL keys in etcd (wrong prefix?)")
	}
	var rev int64
	for _, kv := range resp.Kvs {
		rev = max(rev, kv.ModRevision)
	}
	for _, a := range e.c.Agents {
		for agent.ACLRevision(a.Server) < rev {
			if ctx.Err() != nil {
				t.Fatalf("agent %d enforces ACLs of revision %d, want %d", a.Server.NodeID(), agent.ACLRevision(a.Server), rev)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
