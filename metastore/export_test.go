package metastore

// SetExpiryHook makes ExpireGroupOffsets call f between reading a group it
// is about to expire and the deleting transaction (tests race it there).
// The returned function restores the previous hook.
func SetExpiryHook(f func(group string)) (restore func()) {
	old := expiryHook
	expiryHook = f
	return func() { expiryHook = old }
}
