package agent

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SetGroupIdleRelease shortens how long an Empty group stays claimed by s
// before its release (groupIdleRelease), for tests. Zero restores it.
func SetGroupIdleRelease(s *Server, d time.Duration) { s.groupIdleOverride.Store(int64(d)) }

// SetTxnOrphanSweep makes s look for transactions nobody coordinates
// every d (at most once per timeout sweep, every second), for tests; zero
// restores orphanSweep. It starts s's transaction coordinator.
func SetTxnOrphanSweep(s *Server, d time.Duration) {
	s.txnOrphanOverride.Store(int64(d))
	s.txns()
}

// HoldsGroup reports whether s coordinates group in memory (a live group
// object claimed under its current session).
func HoldsGroup(s *Server, group string) bool {
	g := s.groups().lookup(group)
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state != stateDead
}

// The etcd calls of group coordination a GroupMetaHook sees.
const (
	GroupOpClaim       = groupOpClaim
	GroupOpRelease     = groupOpRelease
	GroupOpDelete      = groupOpDelete
	GroupOpCoordinator = groupOpCoordinator
)

// SetGroupMetaHook makes s run the etcd calls of group coordination
// through hook (op is one of the GroupOp constants; hook may run call, or
// not, and return any error). Nil removes it.
func SetGroupMetaHook(s *Server, hook func(op, group string, call func() error) error) {
	if hook == nil {
		s.groupMetaHook.Store(nil)
		return
	}
	s.groupMetaHook.Store(&hook)
}

// AcquireGroup acquires group on s as a group request does (claiming it if
// nobody holds it) and returns the error code (0: s coordinates it).
func AcquireGroup(ctx context.Context, s *Server, group string) int16 {
	g, code := s.groups().lock(ctx, group)
	if code == 0 {
		g.mu.Unlock()
	}
	return code
}

// DeleteGroup deletes group as DeleteGroups does and returns its error code.
func DeleteGroup(ctx context.Context, s *Server, group string) int16 {
	return s.deleteGroup(ctx, group)
}

// Need is one ACL a registered API requires.
type Need struct {
	Op       kmsg.ACLOperation
	Resource kmsg.ACLResourceType
}

// APIPermission is the permission a registered API declared: Public (needs
// nothing), or Needs, the first being the one whose absence answers the
// API's authorization error.
type APIPermission struct {
	Key    int16
	Public bool
	Needs  []Need
}

// RegisteredPermissions lists every registered API's permission, by key.
func RegisteredPermissions() []APIPermission {
	var out []APIPermission
	for _, a := range sortedAPIs() {
		p := APIPermission{Key: a.key, Public: a.perm.public}
		for _, n := range a.perm.needs {
			p.Needs = append(p.Needs, Need{Op: n.op, Resource: n.rt})
		}
		out = append(out, p)
	}
	return out
}

// InternalTopicNames lists the internal topics Metadata shows.
func InternalTopicNames() []string {
	var out []string
	for _, t := range internalTopics {
		out = append(out, t.Name)
	}
	return out
}

// ACLRevision is the etcd revision of the ACLs the agent enforces.
func ACLRevision(s *Server) int64 {
	s.sec.mu.Lock()
	defer s.sec.mu.Unlock()
	return s.sec.rev
}

// RecordMembersSessionOnly rewrites the members-session record of group,
// which s coordinates, as agents wrote it before it listed the members:
// the session alone.
func RecordMembersSessionOnly(ctx context.Context, s *Server, group string, session time.Duration) error {
	g := s.groups().lookup(group)
	if g == nil {
		return errors.New("group not coordinated here")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return s.meta.RecordMembersSession(ctx, group, g.lease, session)
}
