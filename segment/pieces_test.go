package segment

import (
	"bytes"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestPiecesSameObject proves an object built into Pieces has exactly the
// bytes a Builder writes to a buffer, read whole (WriteTo, Reader) or at
// any offset (ReadAt), with the same CRC over any range; and that the
// caller's batches are not modified (their baseOffsets are rewritten in
// the object, not in place).
func TestPiecesSameObject(t *testing.T) {
	big := func(n int, base int64) []byte {
		return segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: bytes.Repeat([]byte{byte(n)}, n), BaseOffset: base})
	}
	specs := append(sampleSpecs(),
		chunkSpec{topicB, 3, 0, [][]byte{big(100<<10, 5), big(10, 9), big(5<<10, 0), big(70<<10, 1)}},
		chunkSpec{topicB, 4, 0, [][]byte{big(1<<20+17, 0)}},
	)
	want, _ := build(t, specs)
	var before [][]byte
	for _, s := range specs {
		for _, b := range s.batches {
			before = append(before, bytes.Clone(b))
		}
	}

	var p Pieces
	b := NewBuilder(&p)
	for i, s := range specs {
		if _, err := b.AddChunk(s.topic, s.partition, s.base, s.batches); err != nil {
			t.Fatalf("AddChunk %d: %v", i, err)
		}
	}
	if _, err := b.Finish(); err != nil {
		t.Fatal(err)
	}
	if p.Size() != int64(len(want)) || b.Size() != p.Size() {
		t.Fatalf("Pieces holds %d bytes, builder says %d, want %d", p.Size(), b.Size(), len(want))
	}
	var whole bytes.Buffer
	if _, err := p.WriteTo(&whole); err != nil || !bytes.Equal(whole.Bytes(), want) {
		t.Fatalf("WriteTo: err %v, equal %v", err, bytes.Equal(whole.Bytes(), want))
	}
	got, err := io.ReadAll(p.Reader())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Reader: err %v, equal %v", err, bytes.Equal(got, want))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		pos := rng.Int64N(int64(len(want)))
		size := rng.Int64N(int64(len(want))-pos) + 1
		buf := make([]byte, size)
		if n, err := p.ReadAt(buf, pos); n != int(size) || (err != nil && err != io.EOF) || !bytes.Equal(buf, want[pos:pos+size]) {
			t.Fatalf("ReadAt(%d bytes at %d): n %d, err %v, equal %v", size, pos, n, err, bytes.Equal(buf, want[pos:pos+size]))
		}
		if got, w := p.Checksum(pos, size), Checksum(want[pos:pos+size]); got != w {
			t.Fatalf("Checksum(%d, %d) = %08x, want %08x", pos, size, got, w)
		}
	}
	if n, err := p.ReadAt(make([]byte, 10), int64(len(want))-3); n != 3 || err != io.EOF {
		t.Fatalf("ReadAt past the end: n %d, err %v; want 3, EOF", n, err)
	}
	i := 0
	for _, s := range specs {
		for _, b := range s.batches {
			if !bytes.Equal(b, before[i]) {
				t.Fatalf("batch %d modified by the build", i)
			}
			i++
		}
	}
}

// TestPiecesNoCopy proves building a large batch into Pieces allocates a
// few kilobytes, not the batch: the object references the batch's bytes.
func TestPiecesNoCopy(t *testing.T) {
	batch := segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Value: make([]byte, 32<<20)})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var p Pieces
	b := NewBuilder(&p)
	if _, err := b.AddChunk(topicA, 0, 0, [][]byte{batch}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("building a %d MiB batch into Pieces allocated %d bytes, want under 1 MiB (no copy)", len(batch)>>20, grew)
	}
}
