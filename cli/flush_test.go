package cli

import (
	"testing"
	"time"
)

// TestDevFlushInterval proves --dev defaults --flush-interval to
// DevFlushInterval (local directory, no PUT bill) while production keeps
// 250ms, and that an interval set by flag or environment wins in dev mode.
func TestDevFlushInterval(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want time.Duration
	}{
		{[]string{"--dev"}, "", DevFlushInterval},
		{nil, "", 250 * time.Millisecond},
		{[]string{"--dev", "--flush-interval", "100ms"}, "", 100 * time.Millisecond},
		{[]string{"--dev"}, "40ms", 40 * time.Millisecond},
	} {
		t.Setenv("SHALE_FLUSH_INTERVAL", tc.env) // empty: unset for viper
		cmd := newAgentCmd()
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		v, err := newViper(cmd)
		if err != nil {
			t.Fatal(err)
		}
		dev := v.GetBool("dev")
		if got := flushInterval(cmd, v, dev); got != tc.want {
			t.Errorf("args %v, SHALE_FLUSH_INTERVAL=%q: flush interval %v, want %v", tc.args, tc.env, got, tc.want)
		}
	}
}
