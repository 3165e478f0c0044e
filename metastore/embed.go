package metastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
)

// EmbedConfig configures an embedded single-member etcd.
type EmbedConfig struct {
	// Dir holds etcd's data (WAL and snapshots). Starting again on the same
	// Dir keeps every key. Required.
	Dir string
	// ClientAddr is the host:port clients connect to; port 0 (or "") picks a
	// free port on 127.0.0.1.
	ClientAddr string
	// PeerAddr is the raft peer host:port; port 0 (or "") picks a free port.
	// A single member never talks to peers, but etcd still listens.
	PeerAddr string
	// Fast trades durability for speed, for tests: TickMs=10, ElectionMs=100,
	// no fsync (a crash of the machine, not of the process, may lose data).
	Fast bool
	// MaxTxnOps is etcd's --max-txn-ops. Default 128, a stock etcd
	// server's (so `shale agent --dev` meets production's limits).
	MaxTxnOps uint
	// MaxRequestBytes is etcd's --max-request-bytes. Default 1.5 MiB, a
	// stock etcd server's.
	MaxRequestBytes uint
	// Logger receives etcd's errors. Default: text on stderr.
	Logger *slog.Logger
	// CompactionRetention is how much MVCC history etcd keeps (periodic
	// auto-compaction). Default 1h; negative disables compaction.
	CompactionRetention time.Duration
	// StartTimeout bounds the wait for the server to become ready (also
	// bounded by ctx). Default 60s.
	StartTimeout time.Duration
}

// Defaults for EmbedConfig.
const (
	DefaultEmbedMaxTxnOps       = embed.DefaultMaxTxnOps       // 128
	DefaultEmbedMaxRequestBytes = embed.DefaultMaxRequestBytes // 1.5 MiB
	defaultCompactionRetention  = time.Hour
	defaultStartTimeout         = 60 * time.Second
	// bindAttempts bounds retries when a picked free port is taken before
	// etcd binds it.
	bindAttempts = 8
)

// Embedded is a running embedded etcd server.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	closeOnce sync.Once
}

// StartEmbedded starts an embedded single-member etcd and waits until it
// serves clients. Ports left as 0 are picked here (listen, close, hand to
// etcd); if another process grabs one in between, it retries with new ports.
func StartEmbedded(ctx context.Context, cfg EmbedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("start embedded etcd: %w: Dir is required", ErrInvalid)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	var lastErr error
	for range bindAttempts {
		clientAddr, clientPicked, err := resolveAddr(cfg.ClientAddr)
		if err != nil {
			return nil, fmt.Errorf("start embedded etcd: client address: %w", err)
		}
		peerAddr, peerPicked, err := resolveAddr(cfg.PeerAddr)
		if err != nil {
			return nil, fmt.Errorf("start embedded etcd: peer address: %w", err)
		}
		e, err := startOnce(ctx, cfg, clientAddr, peerAddr)
		if err == nil {
			return e, nil
		}
		lastErr = err
		if !(clientPicked || peerPicked) || !isAddrInUse(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.Dir, lastErr)
}

func startOnce(ctx context.Context, cfg EmbedConfig, clientAddr, peerAddr string) (*Embedded, error) {
	ec := embed.NewConfig()
	ec.Name = "shale"
	ec.Dir = cfg.Dir
	cu := url.URL{Scheme: "http", Host: clientAddr}
	pu := url.URL{Scheme: "http", Host: peerAddr}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.Logger = "zap"
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapToSlog(cfg.Logger.With("component", "etcd"), zapcore.ErrorLevel))
	ec.MaxTxnOps = DefaultEmbedMaxTxnOps
	if cfg.MaxTxnOps > 0 {
		ec.MaxTxnOps = cfg.MaxTxnOps
	}
	ec.MaxRequestBytes = DefaultEmbedMaxRequestBytes
	if cfg.MaxRequestBytes > 0 {
		ec.MaxRequestBytes = cfg.MaxRequestBytes
	}
	switch {
	case cfg.CompactionRetention == 0:
		ec.AutoCompactionMode, ec.AutoCompactionRetention = embed.CompactorModePeriodic, defaultCompactionRetention.String()
	case cfg.CompactionRetention > 0:
		ec.AutoCompactionMode, ec.AutoCompactionRetention = embed.CompactorModePeriodic, cfg.CompactionRetention.String()
	default:
		ec.AutoCompactionMode, ec.AutoCompactionRetention = embed.CompactorModePeriodic, "0"
	}
	if cfg.Fast {
		ec.TickMs, ec.ElectionMs, ec.UnsafeNoFsync = 10, 100, true
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("server failed before ready: %w", err)
	case <-t.C:
		e.Close()
		return nil, fmt.Errorf("server not ready after %v", timeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	emb := &Embedded{etcd: e}
	for _, l := range e.Clients {
		emb.endpoints = append(emb.endpoints, "http://"+l.Addr().String())
	}
	return emb, nil
}

// Endpoints returns the client URLs, e.g. ["http://127.0.0.1:40123"].
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Close stops the server gracefully (everything committed is on disk in
// Dir). It is safe to call more than once.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() { e.etcd.Close() })
	return nil
}

// resolveAddr returns addr with port 0 replaced by a currently free port,
// and whether it picked one. "" means 127.0.0.1:0.
func resolveAddr(addr string) (string, bool, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, err
	}
	if port != "0" {
		return addr, false, nil
	}
	if host == "" {
		host = "127.0.0.1"
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", false, err
	}
	picked := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", false, err
	}
	return picked, true, nil
}

func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}
