package segment

import (
	"bytes"
	"io"
	"testing"

	"github.com/shale-dev/shale/segment/segmenttest"
)

// benchBatches is n batches of 10 records of 100 bytes each (~1.1 KiB per batch).
func benchBatches(n int) [][]byte {
	return segmenttest.Batches(n, segmenttest.BatchOptions{Records: 10, Value: bytes.Repeat([]byte("v"), 100)})
}

// BenchmarkBuilder measures building an object of 64 partitions x 16 batches
// (~1.1 MiB), as a WAL flush does, into io.Discard.
func BenchmarkBuilder(b *testing.B) {
	batches := benchBatches(16)
	size := int64(len(segmenttest.Concat(batches))) * 64
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		bld := NewBuilder(io.Discard)
		for p := range int32(64) {
			if _, err := bld.AddChunk(topicA, p, 0, batches); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := bld.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseChunk measures checking a ~1 MiB chunk (CRC, headers,
// offsets), the cost paid on every chunk read from the bucket.
func BenchmarkParseChunk(b *testing.B) {
	data, infos := build(b, []chunkSpec{{topicA, 0, 0, benchBatches(900)}})
	chunk := data[infos[0].Pos:infos[0].End()]
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseChunk(chunk, "bench", infos[0].Pos, infos[0].CRC); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSplitBatches measures produce-path validation of a 1 MiB request
// with batch CRCs verified.
func BenchmarkSplitBatches(b *testing.B) {
	data := segmenttest.Concat(benchBatches(900))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SplitBatches(data, true); err != nil {
			b.Fatal(err)
		}
	}
}
