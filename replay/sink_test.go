package replay_test

import (
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/shale-dev/shale/replay"
)

// TestJSONLBase64MatchesStdlib proves the SIMD base64 used by JSONL output
// writes exactly what encoding/base64 writes, for every length up to 1 KiB
// (the SIMD path starts at a minimum length, so both paths are covered),
// and that each line is valid JSON holding the record.
func TestJSONLBase64MatchesStdlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]byte, 1024)
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	var line []byte
	for n := 0; n <= len(src); n++ {
		r := replay.Record{Partition: 3, Offset: int64(n), Timestamp: 1700000000000, Key: src[:n/3], Value: src[:n]}
		for _, enc := range []replay.BytesEncoding{replay.BytesBase64, replay.BytesUTF8} {
			line = replay.AppendJSONL(line[:0], "t", &r, enc)
			var got struct {
				Offset   int64
				Key      string
				Value    string
				Encoding string
			}
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("len %d %s: invalid JSON %q: %v", n, enc, line, err)
			}
			if got.Offset != int64(n) || got.Value != base64.StdEncoding.EncodeToString(src[:n]) || got.Key != base64.StdEncoding.EncodeToString(src[:n/3]) {
				if enc == replay.BytesUTF8 && got.Encoding == "" {
					continue // short prefixes may be valid UTF-8 and written as text
				}
				t.Fatalf("len %d %s: line %q differs from encoding/base64", n, enc, line)
			}
		}
	}
}
