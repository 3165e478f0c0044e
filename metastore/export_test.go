package metastore

// SetExpiryHook makes s.ExpireGroupOffsets call f between reading a group it
// is about to expire and the deleting transaction (tests race it there).
// The returned function restores the previous hook.
func SetExpiryHook(s *Store, f func(group string)) (restore func()) {
	old := s.expiryHook
	s.expiryHook = f
	return func() { s.expiryHook = old }
}
