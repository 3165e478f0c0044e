package segment_test

import (
	"bytes"
	"fmt"

	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/segment/segmenttest"
)

// Example builds an object holding two partitions, opens it, finds the batch
// holding an offset and sends it out with absolute offsets.
func Example() {
	topic := [16]byte{1, 2, 3}
	var buf bytes.Buffer
	b := segment.NewBuilder(&buf)
	// Partition 0 gets three batches of two records; partition 1 one batch.
	b.AddChunk(topic, 0, 0, segmenttest.Batches(3, segmenttest.BatchOptions{Records: 2, Timestamp: 1000}))
	b.AddChunk(topic, 1, 0, [][]byte{segmenttest.Batch(segmenttest.BatchOptions{Records: 5})})
	if _, err := b.Finish(); err != nil {
		fmt.Println(err)
		return
	}

	r, err := segment.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "wal/example")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range r.Chunks() {
		fmt.Printf("partition %d: bytes [%d, %d) offsets [%d, %d)\n", c.Partition, c.Pos, c.End(), c.StoredBase, c.NextOffset())
	}

	// The engine's index says partition 0's chunk starts at absolute offset 500.
	// A consumer fetches offset 503.
	const absBase = 500
	ci, _ := r.FindChunk(topic, 0, 503-absBase)
	chunk, err := r.ReadChunk(ci)
	if err != nil {
		fmt.Println(err)
		return
	}
	bi, _ := chunk.FindOffset(503 - absBase)
	out, n := chunk.AppendPatched(nil, bi, absBase, chunk.StoredBase(), 1<<20)
	batches, _ := segment.SplitBatches(out, true)
	fmt.Printf("sent %d batches starting at offset %d\n", n, batches[0].Header.BaseOffset)
	// Output:
	// partition 0: bytes [16, 241) offsets [0, 6)
	// partition 1: bytes [241, 337) offsets [0, 5)
	// sent 2 batches starting at offset 502
}
