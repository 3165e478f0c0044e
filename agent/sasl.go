package agent

// SaslHandshake (key 17): v0-v1. SaslAuthenticate (key 36): v0-v2.
//
// Mechanisms: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, on SASL_PLAINTEXT and
// SASL_SSL listeners (tls.go). Credentials are SCRAM credentials kept in
// etcd (metastore/auth.go); PLAIN derives the user's SCRAM-SHA-256
// StoredKey from the password and compares, so no password is stored.
//
// OAUTHBEARER is offered only when AuthConfig.OAuthBearerUnsecured is set
// (--sasl-oauthbearer-unsecured): tokens are checked as Kafka's default
// handler checks them, unsecured JWS (alg "none", no signature; see
// auth/oauthbearer.go), and the principal is User:<sub>. Nothing proves a
// token's origin, so it is for development and tests only, as Kafka says of
// its default. A refused token gets RFC 7628's error challenge
// ({"status":"invalid_token"}); the client's 0x01 reply is then failed
// with SASL_AUTHENTICATION_FAILED and that same message, as Kafka does. No
// JWKS-validated tokens yet (Kafka's OAuthBearerValidatorCallbackHandler).
//
// Until a connection on a SASL listener has authenticated it may send only
// ApiVersions, SaslHandshake and SaslAuthenticate; anything else closes it,
// and so does any request after a failed authentication (the failure is
// answered first, SASL_AUTHENTICATION_FAILED with the same message
// whatever went wrong). Frames before authentication are bounded by
// maxPreAuthFrameBytes (Kafka's sasl.server.max.receive.size). Every
// failure waits AuthConfig.FailureDelay before it is answered; an unknown
// user is checked against a fake credential so that it takes the same path
// and time as a wrong password. Failures are logged with the mechanism,
// user and remote address, never a secret.
//
// Unlike Kafka: SaslHandshake v0 (raw SASL frames after the handshake) is
// answered UNSUPPORTED_VERSION; it is advertised only because librdkafka
// requires v0 in the range before it uses v1 with SaslAuthenticate, as every
// current client does.
// Sessions do not expire (SessionLifetimeMillis 0). Re-authentication
// (KIP-368) is refused with ILLEGAL_SASL_STATE.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/auth"
	"github.com/shale-dev/shale/internal/retry"
	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.SASLHandshake, 0, 1, (*Server).handleSASLHandshake, public[*kmsg.SASLHandshakeRequest]())
	register(kmsg.SASLAuthenticate, 0, 2, (*Server).handleSASLAuthenticate, public[*kmsg.SASLAuthenticateRequest]())
}

// AuthConfig configures authentication and authorization.
type AuthConfig struct {
	// Authorizer turns ACL enforcement on. It is on anyway whenever a
	// listener uses SASL or verifies client certificates: then a client
	// may do only what ACLs (or SuperUsers) allow; connections on the
	// default PLAINTEXT listener are User:ANONYMOUS.
	Authorizer bool
	// SuperUsers are principals ("User:admin") allowed everything.
	SuperUsers []string
	// FailureDelay is waited before answering a failed authentication
	// (default DefaultAuthFailureDelay).
	FailureDelay time.Duration
	// OAuthBearerUnsecured offers SASL/OAUTHBEARER with Kafka's default
	// validator: unsigned tokens, whoever makes them (tests only).
	OAuthBearerUnsecured bool
}

// DefaultAuthFailureDelay slows password guessing down.
const DefaultAuthFailureDelay = 300 * time.Millisecond

// maxPreAuthFrameBytes bounds frames read before SASL authentication.
const maxPreAuthFrameBytes = 512 << 10

// mechanisms are the SASL mechanisms the agent offers.
func (sec *security) mechanisms() []string {
	ms := []string{auth.Plain, auth.ScramSHA256, auth.ScramSHA512}
	if sec.cfg.OAuthBearerUnsecured {
		ms = append(ms, auth.OAuthBearer)
	}
	return ms
}

// security holds the agent's authentication and authorization state.
type security struct {
	cfg     AuthConfig
	meta    *metastore.Store
	log     *slog.Logger
	faker   *auth.Faker
	enabled bool                            // authorization enforced
	authz   atomic.Pointer[auth.Authorizer] // current ACLs; nil until loaded
	reload  chan struct{}                   // nudges the ACL watcher

	mu  sync.Mutex // orders stores into authz
	rev int64      // etcd revision the ACLs in authz were read at
}

func newSecurity(cfg Config, meta *metastore.Store, log *slog.Logger) *security {
	sec := &security{cfg: cfg.Auth, meta: meta, log: log, faker: auth.NewFaker(), reload: make(chan struct{}, 1)}
	if sec.cfg.FailureDelay <= 0 {
		sec.cfg.FailureDelay = DefaultAuthFailureDelay
	}
	sec.enabled = cfg.Auth.Authorizer
	for _, l := range cfg.Listeners {
		if l.usesSASL() || l.ClientCAFile != "" {
			sec.enabled = true
		}
	}
	return sec
}

// startSecurity opens the extra listeners (adding them to info) and, when
// authorization is on, loads the ACLs and keeps them fresh with a watch.
func (s *Server) startSecurity(ctx context.Context, info *metastore.AgentInfo) ([]*boundListener, error) {
	var out []*boundListener
	seen := map[string]bool{}
	for _, l := range s.cfg.Listeners {
		if seen[l.Name] {
			closeListeners(out)
			return nil, fmt.Errorf("agent: listener %q named twice", l.Name)
		}
		seen[l.Name] = true
		bl, err := listen(l, time.Second)
		if err != nil {
			closeListeners(out)
			return nil, fmt.Errorf("agent: %w", err)
		}
		out = append(out, bl)
		info.Listeners = append(info.Listeners, metastore.ListenerAddr{Name: l.Name, Host: bl.host, Port: bl.port})
		s.log.Info("listener open", "listener", l.Name, "protocol", l.Protocol, "addr", bl.ln.Addr().String())
	}
	if s.sec.enabled {
		acls, rev, err := s.meta.ListACLs(ctx)
		if err != nil {
			closeListeners(out)
			return nil, fmt.Errorf("agent: load ACLs: %w", err)
		}
		s.sec.storeACLs(acls, rev)
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.sec.watchACLs(s.ctx, rev) }()
		s.log.Info("authorization on", "acls", len(acls), "super_users", len(s.cfg.Auth.SuperUsers))
	}
	return out, nil
}

// watchACLs reloads the ACLs whenever etcd reports a change (or a local
// change nudges it) until ctx ends.
func (sec *security) watchACLs(ctx context.Context, rev int64) {
	ch := sec.meta.WatchACLs(ctx, rev)
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-sec.reload:
		}
		// Drain what queued meanwhile: one reload covers it all.
		for len(ch) > 0 {
			<-ch
		}
		sec.reloadACLs(ctx)
	}
}

// storeACLs installs ACLs read at etcd revision rev unless newer ones are
// installed already (the watcher and a local change may reload at once).
func (sec *security) storeACLs(acls []auth.ACL, rev int64) {
	sec.mu.Lock()
	defer sec.mu.Unlock()
	if rev < sec.rev {
		return
	}
	sec.rev = rev
	sec.authz.Store(auth.NewAuthorizer(acls, sec.cfg.SuperUsers))
}

// loadACLs reads the ACLs from etcd once and installs them.
func (sec *security) loadACLs(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	acls, rev, err := sec.meta.ListACLs(rctx)
	if err != nil {
		return err
	}
	sec.storeACLs(acls, rev)
	return nil
}

// applyLocalChange makes a change this agent just wrote to etcd effective
// here before the request that made it is answered (a client that creates
// an ACL and then produces through the same agent is not refused); other
// agents apply it through their watch, within a moment.
func (sec *security) applyLocalChange(ctx context.Context) {
	if !sec.enabled {
		return // no ACLs are loaded while authorization is off
	}
	if err := sec.loadACLs(ctx); err != nil {
		sec.log.Warn("reload ACLs after a change failed; the watcher retries", "err", err)
		sec.nudge()
	}
}

// aclReloadRetry paces ACL reloads that fail (etcd unreachable): the
// previous ACLs stay in force meanwhile.
var aclReloadRetry = retry.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Growth: retry.Linear}

func (sec *security) reloadACLs(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	_ = retry.Do(ctx, aclReloadRetry, func(int) error {
		err := sec.loadACLs(ctx)
		if err != nil {
			sec.log.Warn("reload ACLs failed; keeping the previous ones", "err", err)
		}
		return err
	})
}

// nudge makes the watcher reload now (after a change made here).
func (sec *security) nudge() {
	select {
	case sec.reload <- struct{}{}:
	default:
	}
}

func closeListeners(ls []*boundListener) {
	for _, l := range ls {
		l.ln.Close()
	}
}

func defaultListener(_ net.Listener, host string, port int32) *boundListener {
	return &boundListener{cfg: Listener{Name: DefaultListenerName, Protocol: ProtocolPlaintext}, host: host, port: port}
}

// connAuth is a connection's authentication state. Only the read loop
// touches it (SASL handlers answer at once).
type connAuth struct {
	principal     string // "" until the first request
	authenticated bool   // SASL done (always true on non-SASL listeners)
	failed        bool   // a SASL attempt failed: close at the next request
	mech          string // chosen by SaslHandshake
	scram         *auth.ScramServer
	tokenRefused  bool // OAUTHBEARER: the error challenge was sent
}

// admit decides whether the connection may send a request with this key
// now; an error closes the connection.
func (c *conn) admit(key int16) error {
	a := &c.auth
	if a.principal == "" {
		a.principal = c.tlsPrincipal()
		a.authenticated = c.lst == nil || !c.lst.cfg.usesSASL()
	}
	if a.failed {
		return errors.New("request after a failed SASL authentication")
	}
	if a.authenticated {
		return nil
	}
	switch key {
	case kmsg.ApiVersions.Int16(), kmsg.SASLHandshake.Int16(), kmsg.SASLAuthenticate.Int16():
		return nil
	}
	return fmt.Errorf("%s before SASL authentication", kmsg.NameForKey(key))
}

// preAuthLimit is the frame size bound of the connection right now.
func (c *conn) preAuthLimit(size int32) error {
	if c.lst != nil && c.lst.cfg.usesSASL() && !c.auth.authenticated && size > maxPreAuthFrameBytes {
		return fmt.Errorf("request of %d bytes before SASL authentication (at most %d)", size, maxPreAuthFrameBytes)
	}
	return nil
}

// tlsPrincipal is "User:<CN>" of a verified client certificate, else
// User:ANONYMOUS.
func (c *conn) tlsPrincipal() string {
	if tc, ok := c.nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		if len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 && st.PeerCertificates[0].Subject.CommonName != "" {
			return "User:" + st.PeerCertificates[0].Subject.CommonName
		}
	}
	return auth.Anonymous
}

func (s *Server) handleSASLHandshake(_ context.Context, rc *reqCtx, req *kmsg.SASLHandshakeRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = s.sec.mechanisms()
	c := rc.conn
	switch {
	case req.Version == 0:
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	case c == nil || c.lst == nil || !c.lst.cfg.usesSASL() || c.auth.authenticated:
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case !slices.Contains(resp.SupportedMechanisms, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	default:
		c.auth.mech, c.auth.scram, c.auth.tokenRefused = req.Mechanism, nil, false
	}
	return now(resp)
}

// authFailedMessage is the only explanation a failed login gets.
const authFailedMessage = "Authentication failed: invalid username or password"

func (s *Server) handleSASLAuthenticate(ctx context.Context, rc *reqCtx, req *kmsg.SASLAuthenticateRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	c := rc.conn
	if c == nil || c.lst == nil || !c.lst.cfg.usesSASL() || c.auth.authenticated || c.auth.mech == "" {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = kmsg.StringPtr("SaslAuthenticate without a SaslHandshake, or after authentication")
		if c != nil {
			c.auth.failed = !c.auth.authenticated
		}
		return now(resp)
	}
	out, user, done, err := s.saslStep(ctx, c, req.SASLAuthBytes)
	if err != nil {
		c.auth.failed, c.auth.scram = true, nil
		reason, msg := "bad credentials", authFailedMessage
		if errors.Is(err, auth.ErrInvalidToken) {
			reason, msg = "invalid token", auth.OAuthBearerInvalidToken
		} else if errors.Is(err, auth.ErrMalformed) {
			reason = "malformed message"
		} else if !errors.Is(err, auth.ErrAuthFailed) {
			reason = "error"
			c.log.Warn("SASL authentication error", "err", err)
		}
		c.log.Info("SASL authentication failed", "mechanism", c.auth.mech, "user", user, "reason", reason)
		retry.Sleep(ctx, s.sec.cfg.FailureDelay)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = kmsg.StringPtr(msg)
		return now(resp)
	}
	resp.SASLAuthBytes = out
	if done {
		c.auth.authenticated, c.auth.principal, c.auth.scram = true, "User:"+user, nil
		c.log.Debug("SASL authenticated", "mechanism", c.auth.mech, "principal", c.auth.principal)
	}
	return now(resp)
}

// saslStep runs one step of the chosen mechanism. It returns the bytes to
// answer, the user named so far (for logs), and whether authentication
// completed.
func (s *Server) saslStep(ctx context.Context, c *conn, in []byte) ([]byte, string, bool, error) {
	if len(in) > auth.MaxMessageBytes && c.auth.mech != auth.OAuthBearer {
		return nil, "", false, fmt.Errorf("%w: %d auth bytes", auth.ErrMalformed, len(in))
	}
	switch c.auth.mech {
	case auth.OAuthBearer:
		if c.auth.tokenRefused {
			// RFC 7628 3.2.3: the client acknowledged the error challenge.
			return nil, "", false, fmt.Errorf("%w: after the error challenge", auth.ErrInvalidToken)
		}
		ir, err := auth.ParseOAuthBearerInitial(in)
		if err != nil {
			return nil, "", false, err
		}
		sub, err := auth.ValidateUnsecuredJWS(ir.Token, time.Now())
		if err != nil {
			c.auth.tokenRefused = true
			c.log.Info("OAUTHBEARER token refused; error challenge sent", "reason", err)
			return []byte(auth.OAuthBearerInvalidToken), "", false, nil
		}
		if ir.AuthzID != "" && ir.AuthzID != sub {
			return nil, sub, false, fmt.Errorf("%w: authorization id %q is not the token's principal", auth.ErrAuthFailed, ir.AuthzID)
		}
		return nil, sub, true, nil
	case auth.Plain:
		user, pass, err := auth.ParsePlain(in)
		if err != nil {
			return nil, "", false, err
		}
		cred, err := s.credential(ctx, user, auth.ScramSHA256)
		if err != nil {
			return nil, user, false, err
		}
		if !auth.VerifyPassword(cred, pass) {
			return nil, user, false, auth.ErrAuthFailed
		}
		return nil, user, true, nil
	case auth.ScramSHA256, auth.ScramSHA512:
		if c.auth.scram == nil {
			cf, err := auth.ParseClientFirst(in)
			if err != nil {
				return nil, "", false, err
			}
			srv, err := auth.NewScramServer(c.auth.mech)
			if err != nil {
				return nil, cf.User, false, err
			}
			cred, err := s.credential(ctx, cf.User, c.auth.mech)
			if err != nil {
				return nil, cf.User, false, err
			}
			out, err := srv.Start(cf, cred)
			if err != nil {
				return nil, cf.User, false, err
			}
			c.auth.scram = srv
			return out, cf.User, false, nil
		}
		out, err := c.auth.scram.Finish(in)
		if err != nil {
			return nil, c.auth.scram.User(), false, err
		}
		return out, c.auth.scram.User(), true, nil
	}
	return nil, "", false, fmt.Errorf("%w: %q", auth.ErrUnknownMechanism, c.auth.mech)
}

// credential returns user's credential, or a fake one when there is none
// (same path and timing as a wrong password).
func (s *Server) credential(ctx context.Context, user, mech string) (auth.Credential, error) {
	cred, err := s.meta.GetCredential(ctx, user, mech)
	if errors.Is(err, metastore.ErrUserNotFound) {
		return s.sec.faker.Credential(mech, user), nil
	}
	return cred, err
}
