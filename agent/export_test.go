package agent

import (
	"context"
	"time"
)

// SetGroupIdleRelease shortens how long an Empty group stays claimed by s
// before its release (groupIdleRelease), for tests. Zero restores it.
func SetGroupIdleRelease(s *Server, d time.Duration) { s.groupIdleOverride.Store(int64(d)) }

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
