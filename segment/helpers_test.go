package segment

import (
	"bytes"
	"testing"

	"github.com/shale-dev/shale/segment/segmenttest"
)

var (
	topicA = [16]byte{0xa0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	topicB = [16]byte{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf}
)

// chunkSpec is the arguments of one AddChunk call.
type chunkSpec struct {
	topic     [16]byte
	partition int32
	base      int64
	batches   [][]byte
}

// sampleSpecs is a small object with everything the format allows: several
// topics and partitions, a partition split over two chunks with absolute
// stored offsets, idempotent, transactional and compacted (gappy) batches,
// and batches whose incoming baseOffset is not what the builder stores.
func sampleSpecs() []chunkSpec {
	return []chunkSpec{
		{topicA, 0, 0, segmenttest.Batches(2, segmenttest.BatchOptions{Records: 3, Timestamp: 1000, Value: []byte("a0")})},
		{topicB, 7, 0, [][]byte{segmenttest.Batch(segmenttest.BatchOptions{
			Keys: [][]byte{[]byte("k")}, Values: [][]byte{[]byte("b7")}, Timestamp: 2000,
			Idempotent: true, ProducerID: 42, ProducerEpoch: 1, BaseSequence: 5, BaseOffset: 77,
		})}},
		{topicA, 1, 100, [][]byte{
			segmenttest.Batch(segmenttest.BatchOptions{Records: 2, ExtraOffsets: 3, Timestamp: 3005, Value: []byte("c")}),
			segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Timestamp: 3000, Transactional: true, Idempotent: true, ProducerID: 9, Value: []byte("t")}),
		}},
		{topicA, 1, 110, [][]byte{segmenttest.Batch(segmenttest.BatchOptions{Records: 4, Timestamp: 4000, LogAppendTime: true, BaseOffset: -1})}},
	}
}

// build writes specs as one object and returns its bytes and footer.
func build(t testing.TB, specs []chunkSpec) ([]byte, []ChunkInfo) {
	t.Helper()
	var buf bytes.Buffer
	b := NewBuilder(&buf)
	for i, s := range specs {
		if _, err := b.AddChunk(s.topic, s.partition, s.base, s.batches); err != nil {
			t.Fatalf("AddChunk %d: %v", i, err)
		}
	}
	infos, err := b.Finish()
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if b.Size() != int64(buf.Len()) {
		t.Fatalf("Size() = %d, wrote %d", b.Size(), buf.Len())
	}
	return buf.Bytes(), infos
}

// open opens data as an object named name, failing the test on error.
func open(t testing.TB, data []byte, name string) *Reader {
	t.Helper()
	r, err := Open(bytes.NewReader(data), int64(len(data)), name)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

// withBase returns a copy of raw with baseOffset set to off.
func withBase(raw []byte, off int64) []byte {
	c := append([]byte(nil), raw...)
	SetBaseOffset(c, off)
	return c
}

// spanOf is the offset span of a valid batch.
func spanOf(t testing.TB, raw []byte) int64 {
	t.Helper()
	h, err := ParseBatchHeader(raw)
	if err != nil {
		t.Fatalf("ParseBatchHeader: %v", err)
	}
	return h.OffsetSpan()
}
