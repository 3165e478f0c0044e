package icetable

import "time"

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

// SetKVRewrite turns the parquet-go rewrite of key_value tables' small
// files on (the default) or off (iceberg-go's rewrite).
func SetKVRewrite(on bool) { kvRewrite = on }

// KVRewriteFallbacks counts parquet-go rewrites that failed and were
// redone by iceberg-go.
func KVRewriteFallbacks() int64 { return kvRewriteFallbacks.Load() }

// SetClock sets the clock commits are aged by (MaxCommitAge); nil restores
// time.Now.
func SetClock(f func() time.Time) {
	if f == nil {
		f = time.Now
	}
	clock = f
}
