package agent

// Listeners and TLS.
//
// Config.Listen is always the "default" listener, speaking PLAINTEXT.
// Config.Listeners adds more, each with its own security protocol:
//
//	PLAINTEXT       no TLS, no SASL
//	SSL             TLS; with ClientCAFile the client must present a
//	                certificate signed by it (mTLS) and its principal is
//	                "User:<subject CN>"
//	SASL_PLAINTEXT  SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), no TLS
//	SASL_SSL        TLS, then SASL
//
// Certificates and the client CA are re-read when their files' mtime
// changes (checked at each handshake, at most once a second), so a
// renewed certificate is served without a restart. Each agent registers
// every listener's advertised address in etcd, and Metadata,
// FindCoordinator and DescribeCluster answer with the addresses of the
// listener the client is connected to (as Kafka does).

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/shale-dev/shale/metastore"
)

// Security protocols of a listener.
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// DefaultListenerName names the listener of Config.Listen.
const DefaultListenerName = "default"

// Listener is one extra listener (see Config.Listeners).
type Listener struct {
	// Name identifies the listener (unique; not DefaultListenerName).
	Name string
	// Address is the TCP address to listen on.
	Address string
	// Protocol is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
	Protocol string
	// AdvertisedHost and AdvertisedPort: what clients of this listener
	// are told to connect to (defaults as for Config.Listen).
	AdvertisedHost string
	AdvertisedPort int32
	// CertFile and KeyFile (PEM) are required for SSL and SASL_SSL.
	CertFile, KeyFile string
	// ClientCAFile (PEM), when set, requires and verifies client
	// certificates (mTLS).
	ClientCAFile string
}

// ParseListener parses "name=PROTOCOL://host:port" (as --listener).
func ParseListener(s string) (Listener, error) {
	name, rest, ok := strings.Cut(s, "=")
	proto, addr, ok2 := strings.Cut(rest, "://")
	if !ok || !ok2 || name == "" || addr == "" {
		return Listener{}, fmt.Errorf("listener %q: want name=PROTOCOL://host:port", s)
	}
	l := Listener{Name: name, Protocol: strings.ToUpper(proto), Address: addr}
	return l, l.check()
}

func (l Listener) check() error {
	if l.Name == "" || l.Name == DefaultListenerName {
		return fmt.Errorf("listener name %q is empty or reserved", l.Name)
	}
	switch l.Protocol {
	case ProtocolPlaintext, ProtocolSASLPlaintext:
	case ProtocolSSL, ProtocolSASLSSL:
		if l.CertFile == "" && l.KeyFile == "" {
			return nil // checked again once the CLI filled them in (newBoundListener)
		}
	default:
		return fmt.Errorf("listener %s: unknown security protocol %q (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)", l.Name, l.Protocol)
	}
	if _, _, err := net.SplitHostPort(l.Address); err != nil {
		return fmt.Errorf("listener %s: address %q: %w", l.Name, l.Address, err)
	}
	return nil
}

func (l Listener) usesTLS() bool { return l.Protocol == ProtocolSSL || l.Protocol == ProtocolSASLSSL }
func (l Listener) usesSASL() bool {
	return l.Protocol == ProtocolSASLPlaintext || l.Protocol == ProtocolSASLSSL
}

// boundListener is a listening socket with its protocol.
type boundListener struct {
	cfg  Listener
	ln   net.Listener
	host string
	port int32
}

// listen opens l (TLS-wrapped for SSL protocols).
func listen(l Listener, reload time.Duration) (*boundListener, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	var tcfg *tls.Config
	if l.usesTLS() {
		if l.CertFile == "" || l.KeyFile == "" {
			return nil, fmt.Errorf("listener %s (%s) needs a certificate and key file", l.Name, l.Protocol)
		}
		fc := &fileCerts{cert: l.CertFile, key: l.KeyFile, ca: l.ClientCAFile, every: reload}
		if err := fc.load(); err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		tcfg = fc.config()
	}
	ln, err := net.Listen("tcp", l.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %s: listen %s: %w", l.Name, l.Address, err)
	}
	if tcfg != nil {
		ln = tls.NewListener(ln, tcfg)
	}
	host, port, err := advertised(Config{AdvertisedHost: l.AdvertisedHost, AdvertisedPort: l.AdvertisedPort}, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &boundListener{cfg: l, ln: ln, host: host, port: port}, nil
}

// fileCerts serves a certificate (and client CA pool) from files,
// re-reading them when their modification time changes.
type fileCerts struct {
	cert, key, ca string
	every         time.Duration

	mu      sync.Mutex
	checked time.Time
	mtimes  [3]time.Time
	current *tls.Certificate
	pool    *x509.CertPool
}

func mtime(path string) time.Time {
	if path == "" {
		return time.Time{}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// load reads the files (under fc.mu or before use).
func (fc *fileCerts) load() error {
	m := [3]time.Time{mtime(fc.cert), mtime(fc.key), mtime(fc.ca)}
	c, err := tls.LoadX509KeyPair(fc.cert, fc.key)
	if err != nil {
		return fmt.Errorf("load certificate %s / key %s: %w", fc.cert, fc.key, err)
	}
	var pool *x509.CertPool
	if fc.ca != "" {
		pem, err := os.ReadFile(fc.ca)
		if err != nil {
			return fmt.Errorf("read client CA: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("client CA %s holds no PEM certificate", fc.ca)
		}
	}
	fc.current, fc.pool, fc.mtimes, fc.checked = &c, pool, m, time.Now()
	return nil
}

// refresh reloads the files if they changed since the last check (at
// most once per fc.every). A failed reload keeps the previous files.
func (fc *fileCerts) refresh() (*tls.Certificate, *x509.CertPool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if time.Since(fc.checked) >= fc.every {
		fc.checked = time.Now()
		m := [3]time.Time{mtime(fc.cert), mtime(fc.key), mtime(fc.ca)}
		if m != fc.mtimes {
			prev, prevPool := fc.current, fc.pool
			if err := fc.load(); err != nil {
				fc.current, fc.pool = prev, prevPool
			}
		}
	}
	return fc.current, fc.pool
}

func (fc *fileCerts) config() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, pool := fc.refresh()
		if cert == nil {
			return nil, errors.New("no certificate")
		}
		c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}}
		if pool != nil {
			c.ClientCAs = pool
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return c, nil
	}
	return base
}

// endpointFor returns where a client connected through rc's listener
// should reach agent a: that listener's advertised address on a, or a's
// default address when a does not have it.
func endpointFor(rc *reqCtx, a metastore.AgentInfo) (string, int32) {
	if rc == nil || rc.conn == nil || rc.conn.lst == nil || rc.conn.lst.cfg.Name == DefaultListenerName {
		return a.Host, a.Port
	}
	for _, l := range a.Listeners {
		if l.Name == rc.conn.lst.cfg.Name {
			return l.Host, l.Port
		}
	}
	return a.Host, a.Port
}

// ListenerAddr returns the address of the named listener (Config.Listeners,
// or DefaultListenerName for Listen), nil when there is none or before Start.
func (s *Server) ListenerAddr(name string) net.Addr {
	if name == DefaultListenerName {
		return s.Addr()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.extra {
		if l.cfg.Name == name {
			return l.ln.Addr()
		}
	}
	return nil
}
