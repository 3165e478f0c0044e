package metastore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Store is the typed API over one etcd namespace. It is safe for concurrent
// use. It holds no state that etcd does not also hold, except an unused block
// of producer IDs (which is simply skipped when the process ends).
type Store struct {
	cli  *clientv3.Client
	ns   string
	keys keys
	log  *slog.Logger

	pidMu   sync.Mutex
	pidNext int64 // next producer id to hand out from the reserved block
	pidEnd  int64 // exclusive end of the reserved block

	// expiryHook, when set (tests), runs after ExpireGroupOffsets has read
	// a group and decided to expire it, before its transaction.
	expiryHook func(group string)
}

// DefaultNamespace is the namespace of a cluster that names none (the
// agent's --etcd-namespace default).
const DefaultNamespace = "/shale"

// New returns a Store keeping every key under namespace+"/" (a trailing "/"
// on namespace is ignored), e.g. New(cli, "/shale").
func New(cli *clientv3.Client, namespace string) *Store {
	k := newKeys(namespace)
	return &Store{
		cli:  cli,
		ns:   k.root()[:len(k.root())-1],
		keys: k,
		log:  slog.New(slog.DiscardHandler),
	}
}

// WithLogger sets the logger used for problems that have no caller to return
// them to (a corrupt value seen by a watch). It returns s.
func (s *Store) WithLogger(l *slog.Logger) *Store {
	if l != nil {
		s.log = l.With("component", "metastore", "namespace", s.ns)
	}
	return s
}

// Client returns the etcd client the Store uses.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Namespace returns the namespace without a trailing "/".
func (s *Store) Namespace() string { return s.ns }

// Revision returns the current revision of the etcd store.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.keys.producerID(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("metastore: read revision: %w", err)
	}
	return resp.Header.Revision, nil
}
