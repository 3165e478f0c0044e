package testenv

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shale-dev/shale/metastore"
)

// Etcd starts a real embedded etcd (metastore.StartEmbedded with Fast: true,
// data in t.TempDir(), 127.0.0.1 random ports) and returns a client connected
// to it plus its endpoints (for more clients). t.Cleanup closes the client
// and then the server.
//
// The server runs at a stock etcd server's limits (128 operations per
// transaction, 1.5 MiB per request; EtcdDefaultMaxTxnOps,
// EtcdDefaultMaxRequestBytes; metastore.StartEmbedded's defaults, which
// `shale agent --dev` runs with, are the same), so that a commit which
// would not fit in production fails the test that makes it (etcd refuses
// it) rather than passing here. The client may send larger requests, so the server is the
// one that refuses them.
func Etcd(t testing.TB) (*clientv3.Client, []string) {
	t.Helper()
	return startEtcd(t, EtcdDefaultMaxTxnOps, EtcdDefaultMaxRequestBytes)
}

// Limits of a stock etcd server (etcd's defaults for --max-txn-ops and
// --max-request-bytes), which production clusters run with.
const (
	EtcdDefaultMaxTxnOps       = 128
	EtcdDefaultMaxRequestBytes = 1572864 // 1.5 MiB
)

func startEtcd(t testing.TB, maxTxnOps, maxRequestBytes uint) (*clientv3.Client, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := metastore.StartEmbedded(ctx, metastore.EmbedConfig{
		Dir:             t.TempDir(),
		ClientAddr:      "127.0.0.1:0",
		PeerAddr:        "127.0.0.1:0",
		Fast:            true,
		MaxTxnOps:       maxTxnOps,
		MaxRequestBytes: maxRequestBytes,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		t.Fatalf("testenv: start embedded etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("testenv: close embedded etcd: %v", err)
		}
	})
	cli := EtcdClient(t, srv.Endpoints())
	return cli, srv.Endpoints()
}

// EtcdClient returns a new client for endpoints, closed by t.Cleanup (before
// a server started earlier in the same test is closed). Tests use it to get
// independent clients, e.g. to simulate two agents.
func EtcdClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        10 * time.Second,
		MaxCallSendMsgSize: metastore.DefaultEmbedMaxRequestBytes + 1<<20,
		Logger:             zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("testenv: etcd client for %v: %v", endpoints, err)
	}
	// A test may have closed the client itself; a second Close only
	// reports that, so its error is ignored.
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
