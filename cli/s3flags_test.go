package cli

import (
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/shale-dev/shale/s3tier"
)

// TestS3FlagsReachStackOptions proves the shared S3 flags (agent and
// replay) land in StackOptions, the attempt timeout with its default.
func TestS3FlagsReachStackOptions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, s3tier.DefaultAttemptTimeout},
		{[]string{"--s3-attempt-timeout", "300ms", "--s3-region", "eu-west-1", "--s3-path-style"}, 300 * time.Millisecond},
		{[]string{"--s3-attempt-timeout", "-1s"}, -time.Second},
	} {
		cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
		addS3Flags(cmd, "bucket")
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		v, err := newViper(cmd)
		if err != nil {
			t.Fatal(err)
		}
		var o StackOptions
		setS3Options(&o, v)
		if o.S3AttemptTimeout != tc.want {
			t.Fatalf("%v: attempt timeout %v, want %v", tc.args, o.S3AttemptTimeout, tc.want)
		}
		if len(tc.args) > 3 && (o.S3Region != "eu-west-1" || !o.S3PathStyle) {
			t.Fatalf("%v: region %q path-style %v", tc.args, o.S3Region, o.S3PathStyle)
		}
	}
}
