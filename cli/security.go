package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/shale-dev/shale/agent"
)

// addEtcdTLSFlags adds the flags of a TLS connection to etcd.
func addEtcdTLSFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("etcd-cert", "", "client certificate (PEM) for etcd over TLS (with --etcd-key)")
	f.String("etcd-key", "", "client key (PEM) for etcd over TLS")
	f.String("etcd-ca", "", "CA (PEM) that signed etcd's server certificate; any of the three turns TLS to etcd on")
}

// etcdTLS builds the etcd client's TLS config (nil: plaintext).
func etcdTLS(o StackOptions) (*tls.Config, error) {
	if o.EtcdCertFile == "" && o.EtcdKeyFile == "" && o.EtcdCAFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if (o.EtcdCertFile == "") != (o.EtcdKeyFile == "") {
		return nil, fmt.Errorf("--etcd-cert and --etcd-key go together")
	}
	if o.EtcdCertFile != "" {
		pair, err := tls.LoadX509KeyPair(o.EtcdCertFile, o.EtcdKeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if o.EtcdCAFile != "" {
		pool, err := loadPool(o.EtcdCAFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// addSecurityFlags adds the agent's listener and authorization flags.
func addSecurityFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringSlice("listener", nil, `extra listener, repeatable: name=PROTOCOL://host:port with PROTOCOL one of PLAINTEXT,
SSL, SASL_PLAINTEXT, SASL_SSL (e.g. --listener secure=SASL_SSL://0.0.0.0:9093); advertised
as --advertised-host with the listener's own port; --listen stays a PLAINTEXT listener`)
	f.String("tls-cert", "", "server certificate (PEM) of the SSL and SASL_SSL listeners; re-read when the file changes")
	f.String("tls-key", "", "server key (PEM) of the SSL and SASL_SSL listeners; re-read when the file changes")
	f.String("tls-client-ca", "", "CA (PEM) of client certificates: SSL/SASL_SSL listeners then require one (mTLS); principal User:<CN>")
	f.StringSlice("super-users", nil, "principals allowed everything, comma-separated (e.g. User:admin)")
	f.Bool("sasl-oauthbearer-unsecured", false, `offer SASL/OAUTHBEARER on SASL listeners with Kafka's default validator: unsigned JWS
tokens (alg "none") with "sub" (principal User:<sub>) and an unexpired "exp"; anyone can mint
one, so for development and tests only, as Kafka says of its default handler`)
	f.Bool("authorizer", false, "enforce ACLs (always on when a listener uses SASL or --tls-client-ca; the --listen listener is then User:ANONYMOUS)")
}

// securityOptions reads the flags of addSecurityFlags.
func securityOptions(v *viper.Viper) ([]agent.Listener, agent.AuthConfig, error) {
	var ls []agent.Listener
	for _, spec := range splitList(v.GetStringSlice("listener")) {
		l, err := agent.ParseListener(spec)
		if err != nil {
			return nil, agent.AuthConfig{}, fmt.Errorf("--listener: %w", err)
		}
		l.AdvertisedHost = v.GetString("advertised-host")
		if l.Protocol == agent.ProtocolSSL || l.Protocol == agent.ProtocolSASLSSL {
			l.CertFile, l.KeyFile, l.ClientCAFile = v.GetString("tls-cert"), v.GetString("tls-key"), v.GetString("tls-client-ca")
			if l.CertFile == "" || l.KeyFile == "" {
				return nil, agent.AuthConfig{}, fmt.Errorf("--listener %s is %s: pass --tls-cert and --tls-key", l.Name, l.Protocol)
			}
		}
		ls = append(ls, l)
	}
	return ls, agent.AuthConfig{Authorizer: v.GetBool("authorizer"), SuperUsers: splitList(v.GetStringSlice("super-users")),
		OAuthBearerUnsecured: v.GetBool("sasl-oauthbearer-unsecured")}, nil
}

// addClientSecurityFlags adds the TLS and SASL flags of client commands.
func addClientSecurityFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Bool("tls", false, "connect with TLS (implied by --tls-ca/--tls-cert)")
	f.String("tls-ca", "", "CA (PEM) that signed the agents' certificates (default: the system pool)")
	f.String("tls-cert", "", "client certificate (PEM), for listeners that require one")
	f.String("tls-key", "", "client key (PEM)")
	f.String("sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	f.String("sasl-user", "", "SASL user name")
	f.String("sasl-password", "", "SASL password (prefer the SHALE_SASL_PASSWORD environment variable)")
}

// clientSecurityOpts turns the flags of addClientSecurityFlags into kgo options.
func clientSecurityOpts(v *viper.Viper) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if v.GetBool("tls") || v.GetString("tls-ca") != "" || v.GetString("tls-cert") != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca := v.GetString("tls-ca"); ca != "" {
			pool, err := loadPool(ca)
			if err != nil {
				return nil, fmt.Errorf("--tls-ca: %w", err)
			}
			cfg.RootCAs = pool
		}
		if c := v.GetString("tls-cert"); c != "" {
			pair, err := tls.LoadX509KeyPair(c, v.GetString("tls-key"))
			if err != nil {
				return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	mech := strings.ToUpper(v.GetString("sasl-mechanism"))
	if mech == "" {
		return opts, nil
	}
	user, pass := v.GetString("sasl-user"), v.GetString("sasl-password")
	var m sasl.Mechanism
	switch mech {
	case "PLAIN":
		m = plain.Auth{User: user, Pass: pass}.AsMechanism()
	case "SCRAM-SHA-256":
		m = scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
	default:
		return nil, fmt.Errorf("--sasl-mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", mech)
	}
	return append(opts, kgo.SASL(m)), nil
}

// checkLogin sends one request so that a refused SASL login fails now.
func checkLogin(cl *kgo.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), min(timeout, 10*time.Second))
	defer cancel()
	if _, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl); err != nil {
		if errors.Is(err, kerr.SaslAuthenticationFailed) {
			return errors.New("SASL login refused: wrong user name or password")
		}
		return fmt.Errorf("SASL login: %w", err)
	}
	return nil
}
