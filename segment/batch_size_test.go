package segment

import (
	"testing"

	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestHasBatchOver proves the per-batch size check looks at every batch and
// leaves malformed input to the engine.
func TestHasBatchOver(t *testing.T) {
	small := segmenttest.Batch(segmenttest.BatchOptions{Value: make([]byte, 100)})
	big := segmenttest.Batch(segmenttest.BatchOptions{Value: make([]byte, 5000)})
	tests := []struct {
		name    string
		records []byte
		limit   int
		want    bool
	}{
		{"small", small, 1000, false},
		{"big", big, 1000, true},
		{"big second", append(append([]byte(nil), small...), big...), 1000, true},
		{"exact", small, len(small), false},
		{"truncated", big[:100], 50, false},
		{"empty", nil, 0, false},
		{"negative length", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}, 1, false},
	}
	for _, tc := range tests {
		if got := HasBatchOver(tc.records, tc.limit); got != tc.want {
			t.Errorf("%s: HasBatchOver = %v, want %v", tc.name, got, tc.want)
		}
	}
}
