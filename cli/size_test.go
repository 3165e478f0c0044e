package cli

import "testing"

// TestParseByteSize proves human-readable sizes parse to the right byte
// counts and that nonsense is refused with an error.
func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"4MiB", 4 << 20, false},
		{"4 MiB", 4 << 20, false},
		{"512KiB", 512 << 10, false},
		{"1GB", 1e9, false},
		{"1048576", 1 << 20, false},
		{"1.5KiB", 1536, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"4XB", 0, true},
		{"-1", 0, true},
	} {
		got, err := ParseByteSize(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && int64(got) != tc.want) {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, err=%v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if got := HumanBytes(4 << 20); got != "4.0 MiB" {
		t.Errorf("HumanBytes(4MiB) = %q", got)
	}
}
