package agent

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/shale-dev/shale/engine"
	"github.com/shale-dev/shale/internal/retry"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
)

// Config configures a Server. Zero fields take the defaults below, except
// NodeID (0 is a valid node ID; use -1 to have one allocated).
type Config struct {
	// Listen is the TCP address to listen on, e.g. "127.0.0.1:9092".
	Listen string
	// AdvertisedHost and AdvertisedPort are what Metadata tells clients to
	// connect to. Defaults: the listener's host (the machine's host name
	// when it listens on all interfaces) and port.
	AdvertisedHost string
	AdvertisedPort int32
	// NodeID is this agent's broker ID; negative means "take the lowest ID
	// no live agent holds".
	NodeID int32
	// ClusterID is reported by Metadata and DescribeCluster. Default: derived
	// from the metastore namespace, so every agent of a cluster agrees.
	ClusterID string
	// AutoCreateTopics lets Metadata create topics that do not exist
	// (Kafka's auto.create.topics.enable).
	AutoCreateTopics bool
	// TransactionVersion is the transaction.version feature level
	// ApiVersions advertises as finalized: 2 lets clients run KIP-890
	// part 2 (an epoch bump per transaction, partitions and groups added
	// by Produce and TxnOffsetCommit themselves); below 2 nothing is
	// advertised and clients keep to part 1. Every agent of a cluster
	// must be given the same level.
	TransactionVersion int16
	// DefaultPartitions is the partition count of auto-created topics and of
	// CreateTopics asking for -1 (Kafka's num.partitions).
	DefaultPartitions int32
	// MaxFrameBytes bounds a request's size (socket.request.max.bytes); a
	// larger length prefix closes the connection.
	MaxFrameBytes int32
	// MaxInflightRequestBytes bounds the bytes of requests being read and
	// handled at once across all connections (Kafka's
	// queued.max.request.bytes); a connection waits before reading a body
	// that does not fit. At least MaxFrameBytes.
	MaxInflightRequestBytes int64
	// AgentTTL is the lease TTL of the agent's registration in etcd.
	AgentTTL time.Duration
	// Rack is reported to clients as the broker's rack.
	Rack string
	// AdminAddr is the admin server's host:port (/metrics), recorded in the
	// agent's registration so tools such as `shale cost` find it; "" when
	// the agent serves none.
	AdminAddr string
	// ConsumerSessionTimeout and ConsumerHeartbeatInterval are the
	// session timeout and heartbeat interval of KIP-848 consumer group
	// members (Kafka's group.consumer.session.timeout.ms, default 45 s, and
	// group.consumer.heartbeat.interval.ms, default 5 s); zero: default.
	ConsumerSessionTimeout    time.Duration
	ConsumerHeartbeatInterval time.Duration
	// ConsumerMigrationPolicy is Kafka's group.consumer.migration.policy:
	// whether a group with members converts between the classic protocol
	// and KIP-848 online (consumer_group_migration.go); "" is
	// bidirectional, Kafka's default.
	ConsumerMigrationPolicy MigrationPolicy
	// IdleTimeout closes connections that send no request for this long
	// (connections.max.idle.ms). It also bounds the reading of one request:
	// a frame whose size arrived but whose body is not complete within
	// IdleTimeout of the previous request closes the connection.
	IdleTimeout time.Duration
	// MaxConnections bounds the client connections served at once
	// (max.connections); a connection accepted above it is closed at once.
	MaxConnections int
	// FaultHook, when set, is called with the key of every request before
	// it is handled; a non-nil error closes the connection instead (tests
	// use it to inject failures; it may also sleep).
	FaultHook func(key int16) error
	// Metrics, when set, counts requests, bytes and group lag.
	Metrics *metrics.Metrics
	// Listeners are extra listeners (TLS, SASL) besides Listen (tls.go).
	Listeners []Listener
	// Auth configures authentication and authorization (sasl.go, acl.go).
	Auth AuthConfig
}

// Defaults.
const (
	DefaultListen                  = "127.0.0.1:9092"
	DefaultPartitions              = 1
	DefaultMaxFrameBytes           = 100 << 20
	DefaultAgentTTL                = 10 * time.Second
	DefaultMaxInflightRequestBytes = 256 << 20
	DefaultIdleTimeout             = 10 * time.Minute
	DefaultMaxConnections          = 10000
	DefaultProduceTimeout          = 30 * time.Second
	requestTimeout                 = 30 * time.Second // bounds etcd and bucket calls of one request
	topicCacheTTL                  = time.Second
	writeTimeout                   = 30 * time.Second
	maxInflightPerConnection       = 64
)

func (c *Config) setDefaults(meta *metastore.Store) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.DefaultPartitions <= 0 {
		c.DefaultPartitions = DefaultPartitions
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxInflightRequestBytes < int64(c.MaxFrameBytes) {
		c.MaxInflightRequestBytes = max(DefaultMaxInflightRequestBytes, int64(c.MaxFrameBytes))
	}
	if c.AgentTTL <= 0 {
		c.AgentTTL = DefaultAgentTTL
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.ClusterID == "" {
		// A Kafka cluster ID is a base64url UUID; derive one from the
		// namespace so all agents of a cluster report the same.
		sum := sha256.Sum256([]byte("shale cluster " + meta.Namespace()))
		c.ClusterID = base64.RawURLEncoding.EncodeToString(sum[:16])
	}
}

// Server is one agent's Kafka protocol server.
type Server struct {
	cfg    Config
	eng    *engine.Engine
	meta   *metastore.Store
	log    *slog.Logger
	topics *topicCache
	mem    *semaphore.Weighted // request bytes being read and handled

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*conn]struct{}
	session *metastore.Session
	nodeID  int32
	host    string
	port    int32
	closed  bool

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	refused  int64 // connections closed at accept (MaxConnections)
	lastWarn time.Time

	coordOnce sync.Once
	coord     *coordinator // the consumer groups this agent coordinates
	txnOnce   sync.Once
	txnc      *txnCoord // the transactional IDs this agent coordinates
	// txnOrphanOverride, when positive, replaces orphanSweep (tests).
	txnOrphanOverride atomic.Int64
	// groupIdleOverride, when positive, replaces groupIdleRelease (tests).
	groupIdleOverride atomic.Int64
	// groupMetaHook, when set, runs the etcd calls of group coordination
	// (groupMeta; tests inject etcd errors with it).
	groupMetaHook atomic.Pointer[func(op, group string, call func() error) error]

	extra []*boundListener // Config.Listeners, once started
	sec   *security        // authentication and authorization

	fetchSessions *fetchSessionCache // KIP-227 sessions opened on this agent
	groupCfgOnce  sync.Once
	groupCfgCache *groupConfigCache // group configs read lately (group_configs.go)
	shareOnce     sync.Once
	shares        *shareRegistry // share groups and share-partitions (share_groups.go)
	recompressed  recompressed   // bytes recompressed, not yet added to etcd (compression.go)
	gcQueued      atomic.Bool    // a collection after a large answer is queued (conn.go)
	quotas        *quotas        // client quotas and byte rates (quotas.go)
}

// New returns a server; Start makes it listen.
func New(cfg Config, eng *engine.Engine, meta *metastore.Store, log *slog.Logger) (*Server, error) {
	if eng == nil || meta == nil {
		return nil, errors.New("agent: engine and metastore are required")
	}
	if cfg.TransactionVersion < 0 || cfg.TransactionVersion > 2 {
		return nil, fmt.Errorf("agent: transaction version %d: want 0, 1 or 2 (--transaction-version)", cfg.TransactionVersion)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults(meta)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:    cfg,
		eng:    eng,
		meta:   meta,
		log:    log.With("component", "agent"),
		topics: newTopicCache(meta, topicCacheTTL),
		mem:    semaphore.NewWeighted(cfg.MaxInflightRequestBytes),
		conns:  make(map[*conn]struct{}),
		nodeID: -1,
		ctx:    ctx,
		cancel: cancel,
	}
	s.sec = newSecurity(cfg, meta, s.log)
	s.fetchSessions = newFetchSessionCache(fetchSessionSlots, fetchSessionPartitions)
	s.quotas = newQuotas()
	cfg.Metrics.Register(newGroupLagCollector(s))
	cfg.Metrics.Register(newGroupsCollector(s))
	return s, nil
}

// Start listens, registers the agent in etcd under a lease and serves
// connections in the background until Close.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.ln != nil || s.closed {
		s.mu.Unlock()
		return errors.New("agent: already started or closed")
	}
	s.mu.Unlock()
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("agent: listen %s: %w", s.cfg.Listen, err)
	}
	host, port, err := advertised(s.cfg, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	info := metastore.AgentInfo{NodeID: s.cfg.NodeID, Host: host, Port: port, Rack: s.cfg.Rack, AdminAddr: s.cfg.AdminAddr, Version: "shale"}
	if info.NodeID < 0 {
		info.NodeID = -1
	}
	extra, err := s.startSecurity(ctx, &info)
	if err != nil {
		ln.Close()
		return err
	}
	if err := s.startQuotas(ctx); err != nil {
		ln.Close()
		closeListeners(extra)
		return fmt.Errorf("agent: load client quotas: %w", err)
	}
	sess, err := s.meta.RegisterAgent(ctx, info, s.cfg.AgentTTL)
	if err != nil {
		ln.Close()
		closeListeners(extra)
		return fmt.Errorf("agent: register: %w", err)
	}
	s.mu.Lock()
	s.ln, s.session, s.nodeID, s.host, s.port = ln, sess, sess.NodeID(), host, port
	s.extra = extra
	s.mu.Unlock()
	s.log = s.log.With("node", sess.NodeID())
	s.log.Info("agent listening", "addr", ln.Addr().String(), "advertised", net.JoinHostPort(host, strconv.Itoa(int(port))))
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.acceptLoop(ln, defaultListener(ln, host, port)) }()
	for _, bl := range extra {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.acceptLoop(bl.ln, bl) }()
	}
	go func() { defer s.wg.Done(); s.keepRegistered(info) }()
	// The transaction coordinator's sweeps run on every agent: any may
	// have to adopt a transaction whose coordinator died (txn_coord.go).
	s.txns()
	return nil
}

func advertised(cfg Config, addr net.Addr) (string, int32, error) {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", 0, fmt.Errorf("agent: listener address %v is not TCP", addr)
	}
	host, port := cfg.AdvertisedHost, cfg.AdvertisedPort
	if port <= 0 {
		port = int32(ta.Port)
	}
	if host == "" {
		if ta.IP.IsUnspecified() {
			h, err := os.Hostname()
			if err != nil || h == "" {
				h = "localhost"
			}
			host = h
		} else {
			host = ta.IP.String()
		}
	}
	return host, port, nil
}

// registerRetry paces the re-registrations of an agent that lost its lease;
// acceptRetry the accepts of a listener failing (out of file descriptors).
var (
	registerRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	acceptRetry   = retry.Policy{Initial: 5 * time.Millisecond, Max: time.Second}
)

// keepRegistered re-registers the agent with the same node ID whenever its
// lease is lost (etcd unreachable for longer than the TTL), until Close.
func (s *Server) keepRegistered(info metastore.AgentInfo) {
	pause := registerRetry.BackOff()
	for {
		s.mu.Lock()
		sess := s.session
		s.mu.Unlock()
		select {
		case <-s.ctx.Done():
			return
		case <-sess.Done():
		}
		s.log.Warn("agent lease lost, registering again")
		info.NodeID = sess.NodeID()
		for {
			rctx, cancel := context.WithTimeout(s.ctx, s.cfg.AgentTTL)
			ns, err := s.meta.RegisterAgent(rctx, info, s.cfg.AgentTTL)
			cancel()
			if err == nil {
				s.mu.Lock()
				s.session = ns
				s.nodeID = ns.NodeID()
				s.mu.Unlock()
				s.log.Info("agent registered again", "node_id", ns.NodeID())
				pause.Reset()
				break
			}
			if errors.Is(err, metastore.ErrNodeIDInUse) && s.cfg.NodeID < 0 {
				// Our allocated ID went to another agent while we were
				// away: take a new one (clients follow via Metadata).
				info.NodeID = -1
			}
			s.log.Warn("agent re-registration failed", "err", err)
			if !retry.Wait(s.ctx, pause) {
				return
			}
		}
	}
}

func (s *Server) acceptLoop(ln net.Listener, bl *boundListener) {
	pause := acceptRetry.BackOff()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure (out of file descriptors): back off.
			delay := pause.NextBackOff()
			s.log.Warn("accept failed", "err", err, "retry_in", delay)
			if !retry.Sleep(s.ctx, delay) {
				return
			}
			continue
		}
		pause.Reset()
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		if len(s.conns) >= s.cfg.MaxConnections {
			s.refused++
			warn := time.Since(s.lastWarn) > 10*time.Second
			if warn {
				s.lastWarn = time.Now()
			}
			refused := s.refused
			s.mu.Unlock()
			nc.Close()
			if warn {
				s.log.Warn("connection limit reached; closing new connections", "max_connections", s.cfg.MaxConnections, "refused_so_far", refused)
			}
			continue
		}
		c := newConn(s, nc)
		c.lst = bl
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Addr returns the listener's address (nil before Start).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// NodeID returns the agent's node ID (-1 before Start).
func (s *Server) NodeID() int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeID
}

// Close shuts the server down gracefully: it stops accepting, stops reading
// new requests on every connection, nudges the engine to seal what it
// buffers, and lets each connection write the answers of the requests it
// had already read (a produce is answered once durable) before closing it.
// When ctx ends first, the remaining connections are closed with their
// requests abandoned (a produce already handed to the engine still
// completes there; the client retries elsewhere, de-duplicated when
// idempotent). Then the agent's registration is removed. It does not close
// the engine.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ln := s.ln
	extra := s.extra
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	closeListeners(extra)
	for _, c := range conns {
		c.drain()
	}
	// Produces already read wait for the engine: seal its buffer now
	// rather than at the next flush interval.
	flushed := make(chan struct{})
	go func() { defer close(flushed); _ = s.eng.Flush(ctx) }()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for _, c := range conns {
			select {
			case <-c.done:
			case <-ctx.Done():
				return
			}
		}
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		s.log.Warn("shutdown: connections still busy; closing them", "err", ctx.Err())
	}
	s.mu.Lock()
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); <-flushed; close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("agent: close: %w", ctx.Err())
	}
	s.mu.Lock()
	sess := s.session
	s.mu.Unlock()
	if sess != nil {
		if err := sess.Close(ctx); err != nil {
			return fmt.Errorf("agent: deregister: %w", err)
		}
	}
	return nil
}
