package segment

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/shale-dev/shale/segment/segmenttest"
)

var update = flag.Bool("update", false, "rewrite testdata/segment golden objects")

const goldenPath = "../testdata/segment/golden-v1.seg"

var (
	goldenTopic1 = [16]byte{0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x41, 0x11, 0x81, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11}
	goldenTopic2 = [16]byte{0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x42, 0x22, 0x82, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22}
)

const goldenTS = 1_700_000_000_000

// goldenValues is the records of goldenSpecs chunk by chunk, batch by batch.
func goldenValues(chunk, batch, n int) [][]byte {
	var vs [][]byte
	for i := range n {
		vs = append(vs, fmt.Appendf(nil, "value-%d-%d-%d", chunk, batch, i))
	}
	return vs
}

// goldenSpecs is the content of golden-v1.seg. Never change it without
// bumping Version: the golden object pins the format.
func goldenSpecs() []chunkSpec {
	o := func(chunk, batch, n int, ts int64) segmenttest.BatchOptions {
		return segmenttest.BatchOptions{Values: goldenValues(chunk, batch, n), Keys: [][]byte{fmt.Appendf(nil, "key-%d-%d", chunk, batch)}, Timestamp: ts}
	}
	idem := o(1, 0, 2, goldenTS+100)
	idem.Idempotent, idem.ProducerID, idem.ProducerEpoch, idem.BaseSequence = true, 1000, 2, 0
	compacted := o(2, 0, 2, goldenTS+200)
	compacted.ExtraOffsets = 2
	txn := o(2, 1, 1, goldenTS+190)
	txn.Transactional, txn.Idempotent, txn.ProducerID, txn.ProducerEpoch = true, true, 1001, 0
	lat := o(3, 0, 3, goldenTS+300)
	lat.LogAppendTime = true
	return []chunkSpec{
		{goldenTopic1, 0, 0, [][]byte{segmenttest.Batch(o(0, 0, 3, goldenTS)), segmenttest.Batch(o(0, 1, 3, goldenTS+3))}},
		{goldenTopic2, 5, 0, [][]byte{segmenttest.Batch(idem)}},
		{goldenTopic1, 2, 5000, [][]byte{segmenttest.Batch(compacted), segmenttest.Batch(txn)}},
		{goldenTopic1, 2, 5010, [][]byte{segmenttest.Batch(lat)}},
	}
}

// TestGolden proves the builder still writes golden-v1.seg byte for byte
// and the reader still reads it to the exact footer and records it holds.
// Run with -update after a deliberate format change (and a Version bump).
func TestGolden(t *testing.T) {
	built, _ := build(t, goldenSpecs())
	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, built, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run go test ./segment -run TestGolden -update to create it)", err)
	}
	if !bytes.Equal(built, data) {
		t.Fatalf("builder output (%d bytes) differs from %s (%d bytes): the format changed", len(built), goldenPath, len(data))
	}
	r := open(t, data, "golden-v1.seg")
	want := []ChunkInfo{
		{goldenTopic1, 0, 16, 244, 0, 6, 2, goldenTS, goldenTS + 5, 0xac82cf55},
		{goldenTopic2, 5, 260, 104, 0, 2, 1, goldenTS + 100, goldenTS + 101, 0x0c4c32d9},
		{goldenTopic1, 2, 364, 190, 5000, 5, 2, goldenTS + 200, goldenTS + 201, 0x93b4c486},
		{goldenTopic1, 2, 554, 122, 5010, 3, 1, goldenTS + 300, goldenTS + 302, 0x7b122df6},
	}
	if got := r.Chunks(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("footer\n got %+v\nwant %+v", got, want)
	}
	if len(data) != 676+4*FooterEntrySize+TrailerSize {
		t.Fatalf("object is %d bytes", len(data))
	}

	type wantBatch struct {
		base    int64
		records int
	}
	wantBatches := [][]wantBatch{
		{{0, 3}, {3, 3}},
		{{0, 2}},
		{{5000, 2}, {5004, 1}},
		{{5010, 3}},
	}
	for ci, wbs := range wantBatches {
		c, err := r.ReadChunk(ci)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Batches()) != len(wbs) {
			t.Fatalf("chunk %d: %d batches, want %d", ci, len(c.Batches()), len(wbs))
		}
		for bi, wb := range wbs {
			b := c.Batches()[bi]
			if b.Header.BaseOffset != wb.base {
				t.Fatalf("chunk %d batch %d at %d, want %d", ci, bi, b.Header.BaseOffset, wb.base)
			}
			recs, err := segmenttest.Records(b.Raw)
			if err != nil {
				t.Fatal(err)
			}
			values := goldenValues(ci, bi, wb.records)
			if len(recs) != len(values) {
				t.Fatalf("chunk %d batch %d: %d records, want %d", ci, bi, len(recs), len(values))
			}
			for ri, rec := range recs {
				if !bytes.Equal(rec.Value, values[ri]) {
					t.Fatalf("chunk %d batch %d record %d = %q, want %q", ci, bi, ri, rec.Value, values[ri])
				}
			}
		}
	}
}
