package icetable

// SetHookBeforeSwap sets the hook run between writing a commit's metadata
// file and swapping the table pointer (kill tests print a line there).
func SetHookBeforeSwap(f func()) { hookBeforeSwap = f }

// SetKVParallelBytes sets below how many stored bytes a key_value commit
// writes its spans into shared files (0: every commit writes a file per
// span, in parallel) and returns the function restoring it.
func SetKVParallelBytes(n int64) (restore func()) {
	old := kvParallelBytes
	kvParallelBytes = n
	return func() { kvParallelBytes = old }
}
