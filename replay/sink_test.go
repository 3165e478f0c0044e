package replay_test

import (
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/replay/replaytest"
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

// TestParquetRollsWithinOneCall proves a Parquet writer rolls over files
// of about --parquet-file-bytes even when one WriteRecords call carries
// far more than a file's worth (a whole span decoded at once): 2,000
// incompressible 512-byte records in one call at 48 KiB files make about
// twenty files, each read back in order by an independent reader, none
// much over the size asked.
func TestParquetRollsWithinOneCall(t *testing.T) {
	dir := t.TempDir()
	const fileBytes = 48 << 10
	sink := replay.Parquet(dir, "t", fileBytes)
	w, err := sink.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	recs := make([]replay.Record, 2000)
	for i := range recs {
		v := make([]byte, 512)
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		recs[i] = replay.Record{Partition: 0, Offset: int64(i), Timestamp: 1700000000000 + int64(i), Value: v}
	}
	if err := w.WriteRecords(recs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "t-0-*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if len(names) < 10 {
		t.Fatalf("%d files for %d KiB of records at %d KiB files, want about 20", len(names), 2000*512>>10, fileBytes>>10)
	}
	next := int64(0)
	for _, name := range names {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 2*fileBytes {
			t.Errorf("%s: %d bytes, want about %d", name, st.Size(), fileBytes)
		}
		for _, r := range replaytest.ReadParquet(t, name) {
			if r.Offset != next {
				t.Fatalf("%s: offset %d, want %d", name, r.Offset, next)
			}
			next++
		}
	}
	if next != int64(len(recs)) {
		t.Fatalf("read %d records back, want %d", next, len(recs))
	}
}
