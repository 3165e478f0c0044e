package cli

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/shale-dev/shale/agent/agenttest"
)

// TestEtcdOverTLS proves the etcd flags: a command reaches an etcd that
// requires client certificates with --etcd-cert/--etcd-key/--etcd-ca, and
// fails without them.
func TestEtcdOverTLS(t *testing.T) {
	ca := agenttest.NewCA(t, "etcd-ca")
	srvCert, srvKey, _ := ca.Issue(t, "etcd", true)
	cliCert, cliKey, _ := ca.Issue(t, "shale", false)
	ec := embed.NewConfig()
	ec.Dir = t.TempDir()
	ec.Logger, ec.LogLevel = "zap", "error"
	cu, _ := url.Parse("https://" + freeAddr(t))
	pu, _ := url.Parse("http://" + freeAddr(t))
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.ClientTLSInfo = transport.TLSInfo{CertFile: srvCert, KeyFile: srvKey, TrustedCAFile: ca.CertFile, ClientCertAuth: true}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready")
	}
	etcd := []string{"--etcd-endpoints", cu.String()}
	withTLS := append(append([]string{}, etcd...), "--etcd-cert", cliCert, "--etcd-key", cliKey, "--etcd-ca", ca.CertFile)
	if _, errs, code := run(t, "pw-over-tls\n", append([]string{"user", "create", "tlsuser", "--password-stdin"}, withTLS...)...); code != 0 {
		t.Fatalf("user create over TLS: %s", errs)
	}
	out, errs, code := run(t, "", append([]string{"user", "list"}, withTLS...)...)
	if code != 0 || !strings.Contains(out, "tlsuser") {
		t.Fatalf("user list over TLS: %s %s", out, errs)
	}
	noCert := append(append([]string{}, etcd...), "--etcd-ca", ca.CertFile)
	if _, _, code := run(t, "", append([]string{"user", "list"}, noCert...)...); code == 0 {
		t.Fatal("etcd accepted a client without a certificate")
	}
}
