package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrNodeIDInUse means a live agent already holds the requested node ID.
var ErrNodeIDInUse = errors.New("metastore: node id held by a live agent")

// maxAutoNodeID bounds the search for a free node ID.
const maxAutoNodeID = 1 << 20

// Session is an agent's registration: its agents/<node id> key lives as long
// as the session's etcd lease, which a background keep-alive renews.
type Session struct {
	store  *Store
	nodeID int32
	lease  clientv3.LeaseID
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NodeID returns the node ID the agent registered with.
func (ss *Session) NodeID() int32 { return ss.nodeID }

// Lease returns the lease the registration is attached to. Other keys that
// must vanish with the agent (ownership claims) can be put under it.
func (ss *Session) Lease() clientv3.LeaseID { return ss.lease }

// Done is closed when the lease is lost (expired, revoked, keep-alive
// failed for longer than the TTL, client closed) or the session is closed.
// The agent must then stop acting on anything it owned through the lease.
func (ss *Session) Done() <-chan struct{} { return ss.done }

// Close stops the keep-alive and revokes the lease, which deletes the
// registration at once. It is safe to call more than once.
func (ss *Session) Close(ctx context.Context) error {
	var err error
	ss.once.Do(func() {
		ss.cancel()
		<-ss.done
		_, rerr := ss.store.cli.Revoke(ctx, ss.lease)
		if rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			err = fmt.Errorf("close session of node %d: revoke lease %x: %w", ss.nodeID, ss.lease, rerr)
		}
	})
	return err
}

// RegisterAgent publishes info under a new lease of the given TTL (rounded
// up to whole seconds, at least 1s) and keeps the lease alive until the
// session is closed or lost. If info.NodeID < 0 it takes the lowest node ID
// >= 1 that no live agent holds — except that a registration advertising
// the same host and port is taken over, node ID included: it belongs to a
// previous incarnation of this agent, killed before its lease expired, since
// this process now holds that address. An explicit ID held by a live agent
// fails with ErrNodeIDInUse.
func (s *Store) RegisterAgent(ctx context.Context, info AgentInfo, ttl time.Duration) (*Session, error) {
	secs := int64(math.Ceil(ttl.Seconds()))
	if secs < 1 {
		secs = 1
	}
	if info.StartedMs == 0 {
		info.StartedMs = time.Now().UnixMilli()
	}
	grant, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("register agent: grant lease: %w", err)
	}
	revoke := func() {
		// Best effort: the lease expires on its own if this fails.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = s.cli.Revoke(rctx, grant.ID)
	}
	nodeID, err := s.claimNodeID(ctx, info, grant.ID)
	if err != nil {
		revoke()
		return nil, fmt.Errorf("register agent: %w", err)
	}
	kctx, cancel := context.WithCancel(context.Background())
	ka, err := s.cli.KeepAlive(kctx, grant.ID)
	if err != nil {
		cancel()
		revoke()
		return nil, fmt.Errorf("register agent: keep lease alive: %w", err)
	}
	ss := &Session{store: s, nodeID: nodeID, lease: grant.ID, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ss.done)
		for range ka { // closes when the lease is gone or kctx ends
		}
	}()
	return ss, nil
}

// claimNodeID puts the agent key for info.NodeID, or for the lowest free ID
// when it is negative, under lease.
func (s *Store) claimNodeID(ctx context.Context, info AgentInfo, lease clientv3.LeaseID) (int32, error) {
	put := func(id int32) (bool, error) {
		info.NodeID = id
		val, err := json.Marshal(info)
		if err != nil {
			return false, err
		}
		k := s.keys.agent(id)
		resp, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(k), "=", 0),
		).Then(clientv3.OpPut(k, string(val), clientv3.WithLease(lease))).Commit()
		if err != nil {
			return false, fmt.Errorf("claim node id %d: %w", id, err)
		}
		return resp.Succeeded, nil
	}
	if info.NodeID >= 0 {
		ok, err := put(info.NodeID)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("node id %d: %w", info.NodeID, ErrNodeIDInUse)
		}
		return info.NodeID, nil
	}
	for range maxCASAttempts {
		resp, err := s.cli.Get(ctx, s.keys.agentsPrefix(), clientv3.WithPrefix())
		if err != nil {
			return 0, fmt.Errorf("list node ids: %w", err)
		}
		used := make(map[int32]bool, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			id, err := s.keys.parseAgentKey(string(kv.Key))
			if err != nil {
				continue
			}
			used[id] = true
			// A registration advertising this agent's own address belongs to
			// a previous incarnation (killed before its lease expired): the
			// address is ours now. Take its node ID over, so clients keep the
			// same broker ID and no dead broker stays listed for a TTL.
			var old AgentInfo
			if info.Host != "" && json.Unmarshal(kv.Value, &old) == nil && old.Host == info.Host && old.Port == info.Port {
				info.NodeID = id
				val, err := json.Marshal(info)
				if err != nil {
					return 0, err
				}
				tr, err := s.cli.Txn(ctx).If(
					clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision),
				).Then(clientv3.OpPut(string(kv.Key), string(val), clientv3.WithLease(lease))).Commit()
				if err != nil {
					return 0, fmt.Errorf("take over node id %d: %w", id, err)
				}
				if tr.Succeeded {
					return id, nil
				}
			}
		}
		id := int32(1)
		for used[id] && id < maxAutoNodeID {
			id++
		}
		ok, err := put(id)
		if err != nil {
			return 0, err
		}
		if ok {
			return id, nil
		}
		// Another agent took it meanwhile; look again.
	}
	return 0, fmt.Errorf("allocate node id: %w (gave up after %d attempts)", ErrConflict, maxCASAttempts)
}

// ListAgents returns the live agents, sorted by NodeID.
func (s *Store) ListAgents(ctx context.Context) ([]AgentInfo, error) {
	resp, err := s.cli.Get(ctx, s.keys.agentsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	agents := make([]AgentInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		id, err := s.keys.parseAgentKey(key)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		// Unknown fields are tolerated here (unlike topics and states): agent
		// info is never read-modified-written, and a newer agent advertising
		// more must not break older agents' listing during an upgrade.
		var a AgentInfo
		if err := json.Unmarshal(kv.Value, &a); err != nil || a.NodeID != id {
			return nil, fmt.Errorf("list agents: %w", corrupt(key, fmt.Errorf("bad agent info (node id %d): %v", a.NodeID, err)))
		}
		agents = append(agents, a)
	}
	sort.Slice(agents, func(i, j int) bool { return agents[i].NodeID < agents[j].NodeID })
	return agents, nil
}
