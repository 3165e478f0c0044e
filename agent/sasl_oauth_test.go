package agent_test

import (
	"encoding/base64"
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
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// unsecuredJWS makes a token as Kafka's unsecured login handler does:
// header, claims, empty signature.
func unsecuredJWS(header, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "."
}

func oauthM(zid, token string) sasl.Mechanism {
	return oauth.Auth{Zid: zid, Token: token}.AsMechanism()
}

// TestOAuthBearerUnsecured proves SASL/OAUTHBEARER with Kafka's default
// (unsecured JWS) validator, on an agent started with OAuthBearerUnsecured:
// the token's "sub" is the principal ACLs apply to (User:alice may write
// where she is allowed, User:carol may not); an expired token, a signed
// one, one without "sub" and an authorization id other than the token's
// principal are refused with SASL_AUTHENTICATION_FAILED, the token ones
// with RFC 7628's invalid_token as kgo's own TestOAuthAuth expects; and an
// agent without the option does not offer the mechanism.
func TestOAuthBearerUnsecured(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{Agents: 2, Agent: func(i int, cfg *agent.Config) {
		cfg.AutoCreateTopics = false
		cfg.Listeners = []agent.Listener{{Name: lSASLPlain, Address: "127.0.0.1:0", Protocol: agent.ProtocolSASLPlaintext}}
		cfg.Auth = agent.AuthConfig{SuperUsers: []string{"User:admin"}, FailureDelay: failureDelay, OAuthBearerUnsecured: i == 0}
	}})
	addr := c.Agents[0].Server.ListenerAddr(lSASLPlain).String()
	client := func(m sasl.Mechanism) *kgo.Client {
		return c.Client(t, kgo.SeedBrokers(addr), pinnedDialer(addr), kgo.SASL(m), kgo.RetryTimeout(3*time.Second))
	}
	exp := time.Now().Add(time.Hour).Unix()
	token := func(sub string) string {
		return unsecuredJWS(`{"alg":"none"}`, fmt.Sprintf(`{"sub":%q,"exp":%d,"iat":%d}`, sub, exp, time.Now().Unix()))
	}

	adm := kadm.NewClient(client(oauthM("", token("admin"))))
	mustCreateTopic(t, adm, "oauth")
	mustACL(t, adm, kadm.NewACLs().Allow("User:alice").Topics("oauth").Operations(kadm.OpWrite, kadm.OpDescribe))
	ctx := testCtx(t, 30*time.Second)
	if err := client(oauthM("alice", token("alice"))).ProduceSync(ctx, &kgo.Record{Topic: "oauth", Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatalf("User:alice (token sub) produce: %v", err)
	}
	if err := client(oauthM("", token("carol"))).ProduceSync(ctx, &kgo.Record{Topic: "oauth", Value: []byte("c")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("User:carol produce: %v, want TOPIC_AUTHORIZATION_FAILED (her token authenticates, ACLs refuse)", err)
	}

	for _, tc := range []struct {
		name, zid, token, want string
	}{
		{"expired", "", unsecuredJWS(`{"alg":"none"}`, fmt.Sprintf(`{"sub":"alice","exp":%d}`, time.Now().Add(-time.Minute).Unix())), "invalid_token"},
		{"signed", "", strings.TrimSuffix(unsecuredJWS(`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"alice","exp":%d}`, exp)), ".") + ".c2ln", "invalid_token"},
		{"no sub", "", unsecuredJWS(`{"alg":"none"}`, fmt.Sprintf(`{"exp":%d}`, exp)), "invalid_token"},
		{"issued in the future", "", unsecuredJWS(`{"alg":"none"}`, fmt.Sprintf(`{"sub":"alice","exp":%d,"iat":%d}`, exp, exp-60)), "invalid_token"},
		{"not a JWS", "", "opaque-token", "invalid_token"},
		{"authzid is another user", "admin", token("alice"), "Authentication failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kmsg.NewPtrMetadataRequest().RequestWith(testCtx(t, 15*time.Second), client(oauthM(tc.zid, tc.token)))
			if !errors.Is(err, kerr.SaslAuthenticationFailed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("request: %v, want SASL_AUTHENTICATION_FAILED with %q", err, tc.want)
			}
		})
	}
	if n := endOffset(t, adm, "oauth"); n != 1 {
		t.Fatalf("end offset %d, want 1 (alice's record only)", n)
	}

	t.Run("not offered without the option", func(t *testing.T) {
		rc := dialRaw(t, c.Agents[1].Server.ListenerAddr(lSASLPlain).String())
		req := kmsg.NewPtrSASLHandshakeRequest()
		req.Version, req.Mechanism = 1, "OAUTHBEARER"
		resp := rc.roundTrip(req).(*kmsg.SASLHandshakeResponse)
		if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code || strings.Contains(strings.Join(resp.SupportedMechanisms, ","), "OAUTHBEARER") {
			t.Fatalf("handshake: code %d, mechanisms %v; want UNSUPPORTED_SASL_MECHANISM without OAUTHBEARER", resp.ErrorCode, resp.SupportedMechanisms)
		}
	})
}
