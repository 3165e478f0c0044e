package icetable

// SetHookBeforeSwap sets the hook run between writing a commit's metadata
// file and swapping the table pointer (kill tests print a line there).
func SetHookBeforeSwap(f func()) { hookBeforeSwap = f }
