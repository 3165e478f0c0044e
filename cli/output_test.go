package cli

import (
	"strings"
	"testing"
)

// TestBadOutputNamesTheFormats proves status, cost and consume refuse an
// unknown --output before connecting to anything, with an error that names
// the formats each accepts.
func TestBadOutputNamesTheFormats(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "-o", "xml"}, `bad --output "xml": use table or json`},
		{[]string{"cost", "-o", "xml"}, `bad --output "xml": use table or json`},
		{[]string{"consume", "-t", "logs", "-o", "xml"}, `bad --output "xml": use text, kv or json`},
	} {
		_, errs, code := run(t, "", tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("shale %s: exit %d, stderr %q; want a failure saying %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
}
