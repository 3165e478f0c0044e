package agent_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/auth"
)

// TestSASLOverTLS proves that franz-go clients authenticating with
// SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN over TLS produce and consume,
// with the user and its ACLs created through the Kafka API by a super user.
func TestSASLOverTLS(t *testing.T) {
	e := startSecure(t, 1)
	adm := e.admin(t, 0)
	mustCreateTopic(t, adm, "t-sasl")
	ctx := testCtx(t, 30*time.Second)
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "alice", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "alice-pw"},
		{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "alice-pw"},
	})
	// A user named twice in one request is DUPLICATE_RESOURCE, as in Kafka.
	if err != nil || res["alice"].Err == nil {
		t.Fatalf("alter with a duplicate user: %v %+v", err, res)
	}
	for _, u := range []kadm.UpsertSCRAM{
		{User: "alice", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "alice-pw"},
		{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "alice-pw"},
	} {
		res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{u})
		if err != nil || res["alice"].Err != nil {
			t.Fatalf("alter scram: %v %+v", err, res)
		}
	}
	desc, err := adm.DescribeUserSCRAMs(ctx, "alice")
	if err != nil || desc["alice"].Err != nil || len(desc["alice"].CredInfos) != 2 {
		t.Fatalf("describe scram: %v %+v", err, desc)
	}
	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Topics("t-").ResourcePatternType(kadm.ACLPatternPrefixed).
		Operations(kadm.OpRead, kadm.OpWrite))
	for i, m := range []sasl.Mechanism{scram256("alice", "alice-pw"), scram512("alice", "alice-pw"), plainM("alice", "alice-pw")} {
		t.Run(m.Name(), func(t *testing.T) {
			cl := e.client(t, 0, m, kgo.ConsumeTopics("t-sasl"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err := cl.ProduceSync(testCtx(t, 15*time.Second), &kgo.Record{Topic: "t-sasl", Value: []byte(m.Name())}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			recs := consumeN(t, cl, i+1)
			if got := string(recs[i].Value); got != m.Name() {
				t.Fatalf("record %d = %q, want %q", i, got, m.Name())
			}
		})
	}
}

// TestSASLRefused proves that a wrong password, an unknown user, a
// plaintext client on a TLS listener and requests before authentication
// are refused with the right error, slowly, and write nothing.
func TestSASLRefused(t *testing.T) {
	e := startSecure(t, 1)
	adm := e.admin(t, 0)
	mustCreateTopic(t, adm, "refused")
	e.putUser(t, "bob", "bob-pw")
	mustACL(t, adm, kadm.NewACLs().Allow("User:bob").Topics("refused").Operations(kadm.OpWrite))
	for _, tc := range []struct {
		name string
		m    sasl.Mechanism
	}{
		{"scram-256 wrong password", scram256("bob", "nope")},
		{"scram-512 wrong password", scram512("bob", "nope")},
		{"plain wrong password", plainM("bob", "nope")},
		{"scram-256 unknown user", scram256("mallory", "bob-pw")},
		{"plain unknown user", plainM("mallory", "bob-pw")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := e.client(t, 0, tc.m)
			start := time.Now()
			// kgo's producer would retry metadata until its context ends;
			// a direct request shows the error.
			_, err := kmsg.NewPtrMetadataRequest().RequestWith(testCtx(t, 15*time.Second), cl)
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("request: %v, want SASL_AUTHENTICATION_FAILED", err)
			}
			pctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := cl.ProduceSync(pctx, &kgo.Record{Topic: "refused", Value: []byte("x")}).FirstErr(); err == nil {
				t.Fatal("produce succeeded")
			}
			if d := time.Since(start); d < failureDelay {
				t.Fatalf("failure answered after %v, want >= %v", d, failureDelay)
			}
		})
	}
	t.Run("plaintext client on TLS listener", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.addr(0, lSASLSSL)), kgo.SASL(scram256("bob", "bob-pw")), kgo.RetryTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(testCtx(t, 2*time.Second), &kgo.Record{Topic: "refused", Value: []byte("x")}).FirstErr(); err == nil {
			t.Fatal("plaintext produce to a SASL_SSL listener succeeded")
		}
	})
	t.Run("request before authentication closes", func(t *testing.T) {
		rc := dialRaw(t, e.addr(0, lSASLPlain))
		rc.send(kmsg.NewPtrMetadataRequest())
		rc.expectClosed()
	})
	if n := endOffset(t, adm, "refused"); n != 0 {
		t.Fatalf("%d records written by refused clients", n)
	}
	// The right password still works after all that.
	if err := e.client(t, 0, scram512("bob", "bob-pw")).ProduceSync(testCtx(t, 15*time.Second), &kgo.Record{Topic: "refused", Value: []byte("ok")}).FirstErr(); err != nil {
		t.Fatalf("good produce: %v", err)
	}
}

// TestACLAppliesAtOnceOnTheAgentThatMadeIt proves an ACL created through
// an agent is enforced by that agent as soon as CreateAcls is answered (no
// watch lag): each round grants a fresh topic and produces to it at once.
func TestACLAppliesAtOnceOnTheAgentThatMadeIt(t *testing.T) {
	e := startSecure(t, 1)
	adm := e.admin(t, 0)
	cfg := e.tlsConfig()
	_, _, dave := e.ca.Issue(t, "dave", false)
	cfg.Certificates = []tls.Certificate{dave}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addr(0, lMTLS)), kgo.DialTLSConfig(cfg), kgo.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 15 {
		topic := fmt.Sprintf("at-once-%d", i)
		mustCreateTopic(t, adm, topic)
		mustACL(t, adm, kadm.NewACLs().Allow("User:dave").Topics(topic).Operations(kadm.OpWrite, kadm.OpDescribe))
		if err := cl.ProduceSync(testCtx(t, 10*time.Second), &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatalf("round %d: produce right after the grant: %v", i, err)
		}
	}
}

// TestMTLS proves that a client certificate from the configured CA
// authenticates as User:<CN> (and is authorized as such), while one from
// another CA is refused at the handshake.
func TestMTLS(t *testing.T) {
	e := startSecure(t, 1)
	adm := e.admin(t, 0)
	mustCreateTopic(t, adm, "mtls")
	mustACL(t, adm, kadm.NewACLs().Allow("User:carol").Topics("mtls").Operations(kadm.OpWrite))
	mtlsClient := func(pair tls.Certificate) *kgo.Client {
		cfg := e.tlsConfig()
		cfg.Certificates = []tls.Certificate{pair}
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.addr(0, lMTLS)), kgo.DialTLSConfig(cfg), kgo.RetryTimeout(2*time.Second),
			kgo.ConsumeTopics("mtls"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	_, _, carol := e.ca.Issue(t, "carol", false)
	cl := mtlsClient(carol)
	if err := cl.ProduceSync(testCtx(t, 15*time.Second), &kgo.Record{Topic: "mtls", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("carol produce: %v", err)
	}
	fs := cl.PollFetches(testCtx(t, 10*time.Second))
	if err := fs.Err(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("carol fetch without READ: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	other := agenttest.NewCA(t, "other-ca")
	_, _, mallory := other.Issue(t, "carol", false)
	if err := mtlsClient(mallory).ProduceSync(testCtx(t, 3*time.Second), &kgo.Record{Topic: "mtls", Value: []byte("evil")}).FirstErr(); err == nil {
		t.Fatal("certificate from another CA accepted")
	}
	if n := endOffset(t, adm, "mtls"); n != 1 {
		t.Fatalf("end offset %d, want 1 (carol's record only)", n)
	}
}

// TestACLs proves Kafka's ACL semantics end to end: a principal with READ
// but not WRITE consumes and cannot produce; one without DESCRIBE does not
// see the topic; prefixed ACLs match by prefix; deny wins; and users and
// ACLs created through agent A apply on agent B.
func TestACLs(t *testing.T) {
	e := startSecure(t, 2)
	admA := e.admin(t, 0)
	for _, tp := range []string{"app-orders", "app-secret", "other"} {
		mustCreateTopic(t, admA, tp)
	}
	if err := e.client(t, 0, scram256("admin", "admin-secret")).ProduceSync(testCtx(t, 15*time.Second),
		&kgo.Record{Topic: "app-orders", Value: []byte("1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Users created through agent A's Kafka API.
	ctx := testCtx(t, 60*time.Second)
	for _, u := range []string{"reader", "nodesc"} {
		res, err := admA.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: u, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: u + "-pw"}})
		if err != nil || res[u].Err != nil {
			t.Fatalf("create %s: %v %+v", u, err, res)
		}
	}
	mustACL(t, admA, kadm.NewACLs().Allow("User:reader").Topics("app-").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead))
	mustACL(t, admA, kadm.NewACLs().Deny("User:reader").Topics("app-secret").Operations(kadm.OpRead))
	mustACL(t, admA, kadm.NewACLs().Allow("User:reader").Groups("readers").Operations(kadm.OpRead))
	mustACL(t, admA, kadm.NewACLs().Allow("User:nodesc").Topics("other").Operations(kadm.OpRead))
	e.syncACLs(t)

	// Everything below goes through agent B.
	reader := e.client(t, 1, scram256("reader", "reader-pw"), kgo.ConsumerGroup("readers"), kgo.ConsumeTopics("app-orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	recs := consumeN(t, reader, 1)
	if string(recs[0].Value) != "1" {
		t.Fatalf("reader got %q", recs[0].Value)
	}
	// An idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE
	// on some topic first (InitProducerId), as in Kafka.
	err := reader.ProduceSync(testCtx(t, 15*time.Second), &kgo.Record{Topic: "app-orders", Value: []byte("2")}).FirstErr()
	if !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("reader idempotent produce: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
	plainProducer := e.client(t, 1, scram256("reader", "reader-pw"), kgo.DisableIdempotentWrite())
	err = plainProducer.ProduceSync(testCtx(t, 15*time.Second), &kgo.Record{Topic: "app-orders", Value: []byte("2")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("reader produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if n := endOffset(t, e.admin(t, 1), "app-orders"); n != 1 {
		t.Fatalf("app-orders end offset %d, want 1", n)
	}
	readerAdm := kadm.NewClient(e.client(t, 1, scram256("reader", "reader-pw")))
	topics, err := readerAdm.ListTopics(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(topics.Names(), ","); got != "app-orders,app-secret" {
		// app-secret: the deny is on READ only, DESCRIBE is still implied.
		t.Fatalf("reader sees topics %q, want app-orders,app-secret", got)
	}
	secret := e.client(t, 1, scram256("reader", "reader-pw"), kgo.ConsumeTopics("app-secret"))
	if err := secret.PollFetches(testCtx(t, 10*time.Second)).Err(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("reader fetch of denied topic: %v", err)
	}
	nodesc := kadm.NewClient(e.client(t, 1, scram256("nodesc", "nodesc-pw")))
	topics, err = nodesc.ListTopics(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(topics.Names(), ","); got != "other" {
		t.Fatalf("nodesc sees topics %q, want only other", got)
	}
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("app-orders")
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(testCtx(t, 10*time.Second), e.client(t, 1, scram256("nodesc", "nodesc-pw")))
	if err != nil {
		t.Fatal(err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code || len(mresp.Topics[0].Partitions) != 0 {
		t.Fatalf("nodesc metadata of app-orders: %+v, want TOPIC_AUTHORIZATION_FAILED", mresp.Topics)
	}
	// Non-admins may not manage ACLs or users.
	res, err := readerAdm.CreateACLs(testCtx(t, 10*time.Second), kadm.NewACLs().Allow("User:reader").AllowHosts("*").Topics("other").Operations(kadm.OpWrite))
	if err != nil || len(res) != 1 || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("reader creating an ACL: %v %+v, want CLUSTER_AUTHORIZATION_FAILED", err, res)
	}
	if _, err := readerAdm.AlterUserSCRAMs(testCtx(t, 10*time.Second), nil, []kadm.UpsertSCRAM{{User: "reader", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "x"}}); err == nil {
		t.Fatal("reader altered credentials")
	}
	ct, err := readerAdm.CreateTopics(testCtx(t, 10*time.Second), 1, 1, nil, "app-new")
	if err != nil || !errors.Is(ct.Error(), kerr.TopicAuthorizationFailed) {
		t.Fatalf("reader create topic: %v %v, want TOPIC_AUTHORIZATION_FAILED", err, ct.Error())
	}
	// An ACL removed through A stops applying on B.
	if _, err := admA.DeleteACLs(testCtx(t, 10*time.Second), kadm.NewACLs().Allow("User:nodesc").AllowHosts("*").Topics("other").Operations(kadm.OpRead)); err != nil {
		t.Fatal(err)
	}
	// Committed offsets of topics the principal may not describe are not
	// revealed (OffsetFetch v8+ names groups and topics together).
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "app-orders", Partition: 0, At: 1})
	offs.Add(kadm.Offset{Topic: "other", Partition: 0, At: 0})
	mustACL(t, admA, kadm.NewACLs().Allow("User:reader").Groups("audit").Operations(kadm.OpRead))
	e.syncACLs(t)
	cres, err := admA.CommitOffsets(testCtx(t, 10*time.Second), "audit", offs)
	if err == nil {
		err = cres.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	ofreq := kmsg.NewPtrOffsetFetchRequest()
	ofreq.Version = 9
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = "audit"
	ofreq.Groups = append(ofreq.Groups, g)
	ofresp, err := ofreq.RequestWith(testCtx(t, 10*time.Second), e.client(t, 1, scram256("reader", "reader-pw")))
	if err != nil || len(ofresp.Groups) != 1 || ofresp.Groups[0].ErrorCode != 0 {
		t.Fatalf("offset fetch: %v %+v", err, ofresp)
	}
	if len(ofresp.Groups[0].Topics) != 2 {
		t.Fatalf("offset fetch topics: %+v", ofresp.Groups[0].Topics)
	}
	for _, tp := range ofresp.Groups[0].Topics {
		p := tp.Partitions[0]
		switch {
		case tp.Topic == "app-orders" && (p.ErrorCode != 0 || p.Offset != 1):
			t.Fatalf("app-orders offset: %+v", p)
		case tp.Topic == "other" && (p.ErrorCode != kerr.TopicAuthorizationFailed.Code || p.Offset != -1):
			t.Fatalf("other offset revealed: %+v", p)
		}
	}
	// kadm's ListTopics may answer from the client's metadata cache: ask
	// for the topic by name.
	nodescCl := e.client(t, 1, scram256("nodesc", "nodesc-pw"))
	start := time.Now()
	for {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("other")
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(testCtx(t, 10*time.Second), nodescCl)
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == kerr.TopicAuthorizationFailed.Code {
			t.Logf("ACL deletion through agent A applied on agent B after %v", time.Since(start))
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("ACL deletion through agent A not applied on agent B: %v %+v", err, resp)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSASLBadInput proves malformed SASL exchanges fail cleanly: an error
// answer, then the connection closed, never a panic.
func TestSASLBadInput(t *testing.T) {
	e := startSecure(t, 1)
	addr := e.addr(0, lSASLPlain)
	handshake := func(rc *rawConn, mech string) *kmsg.SASLHandshakeResponse {
		req := kmsg.NewPtrSASLHandshakeRequest()
		req.Version, req.Mechanism = 1, mech
		return rc.roundTrip(req).(*kmsg.SASLHandshakeResponse)
	}
	authn := func(rc *rawConn, b []byte) *kmsg.SASLAuthenticateResponse {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version, req.SASLAuthBytes = 2, b
		return rc.roundTrip(req).(*kmsg.SASLAuthenticateResponse)
	}
	expectFailedThenClosed := func(t *testing.T, rc *rawConn, resp *kmsg.SASLAuthenticateResponse, want int16) {
		t.Helper()
		if resp.ErrorCode != want {
			t.Fatalf("error %d, want %d", resp.ErrorCode, want)
		}
		rc.send(kmsg.NewPtrMetadataRequest())
		rc.expectClosed()
	}
	t.Run("authenticate before handshake", func(t *testing.T) {
		rc := dialRaw(t, addr)
		expectFailedThenClosed(t, rc, authn(rc, []byte("\x00admin\x00admin-secret")), kerr.IllegalSaslState.Code)
	})
	t.Run("unknown mechanism", func(t *testing.T) {
		rc := dialRaw(t, addr)
		if resp := handshake(rc, "GSSAPI"); resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code || len(resp.SupportedMechanisms) != 3 {
			t.Fatalf("%+v", resp)
		}
	})
	for _, tc := range []struct{ name, mech, msg string }{
		{"malformed plain", auth.Plain, "admin-secret"},
		{"malformed scram first", auth.ScramSHA256, "n,,r=abc"},
		{"channel binding", auth.ScramSHA256, "p=tls-unique,,n=admin,r=abc"},
		{"oversized", auth.ScramSHA512, "n,,n=admin,r=" + strings.Repeat("a", 10000)},
		{"binary", auth.ScramSHA256, "\xff\x00\x01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			handshake(rc, tc.mech)
			expectFailedThenClosed(t, rc, authn(rc, []byte(tc.msg)), kerr.SaslAuthenticationFailed.Code)
		})
	}
	for _, tc := range []struct{ name, final string }{
		{"wrong nonce", "c=biws,r=notthenonce,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"wrong proof", ""},
		{"garbage final", "zzz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			handshake(rc, auth.ScramSHA256)
			resp := authn(rc, []byte("n,,n=admin,r=clientnonce"))
			if resp.ErrorCode != 0 || !strings.HasPrefix(string(resp.SASLAuthBytes), "r=clientnonce") {
				t.Fatalf("server-first: %+v", resp)
			}
			final := tc.final
			if final == "" {
				nonce := strings.TrimPrefix(strings.Split(string(resp.SASLAuthBytes), ",")[0], "r=")
				final = "c=biws,r=" + nonce + ",p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
			}
			expectFailedThenClosed(t, rc, authn(rc, []byte(final)), kerr.SaslAuthenticationFailed.Code)
		})
	}
	t.Run("huge frame before authentication", func(t *testing.T) {
		rc := dialRaw(t, addr)
		if err := rc.write([]byte{0, 0x10, 0, 0}); err != nil { // 1 MiB
			t.Fatal(err)
		}
		rc.expectClosed()
	})
	t.Run("handshake on a non-SASL listener", func(t *testing.T) {
		rc := dialRaw(t, e.c.Agents[0].Addr)
		if resp := handshake(rc, auth.Plain); resp.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("%+v", resp)
		}
	})
	// The agent still serves.
	if err := e.client(t, 0, plainM("admin", "admin-secret")).Ping(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// TestSCRAMUnknownUserIndistinguishable proves an unknown user gets a
// server-first message of the same shape as a known one (salt length,
// iterations), with a salt that is stable across attempts, so probing
// names learns nothing from it.
func TestSCRAMUnknownUserIndistinguishable(t *testing.T) {
	e := startSecure(t, 1)
	cred, err := auth.NewCredential(auth.ScramSHA256, "pw", auth.DefaultIterations)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.Meta.PutCredential(context.Background(), "known", cred); err != nil {
		t.Fatal(err)
	}
	serverFirst := func(user string) (salt, iters string) {
		rc := dialRaw(t, e.addr(0, lSASLPlain))
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = 1, auth.ScramSHA256
		rc.roundTrip(hs)
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version, req.SASLAuthBytes = 1, []byte("n,,n="+user+",r=abcdef")
		resp := rc.roundTrip(req).(*kmsg.SASLAuthenticateResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("server-first for %s: error %d", user, resp.ErrorCode)
		}
		parts := strings.Split(string(resp.SASLAuthBytes), ",")
		return parts[1], parts[2]
	}
	ks, ki := serverFirst("known")
	us1, ui1 := serverFirst("unknown")
	us2, _ := serverFirst("unknown")
	if len(ks) != len(us1) || ki != ui1 {
		t.Fatalf("known %s %s vs unknown %s %s: shapes differ", ks, ki, us1, ui1)
	}
	if us1 != us2 {
		t.Fatalf("unknown user's salt changes between attempts: %s vs %s", us1, us2)
	}
}
