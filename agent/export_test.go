package agent

import "time"

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
