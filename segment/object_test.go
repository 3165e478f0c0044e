package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/shale-dev/shale/segment/segmenttest"
)

// TestRoundTrip proves an object reads back exactly as built: footer
// entries, chunk bytes equal to the input batches with only baseOffset
// rewritten to consecutive stored offsets, and batches still valid for Kafka.
func TestRoundTrip(t *testing.T) {
	specs := sampleSpecs()
	orig := make([][][]byte, len(specs)) // deep copy, to prove the builder does not mutate its input
	for i, s := range specs {
		for _, b := range s.batches {
			orig[i] = append(orig[i], append([]byte(nil), b...))
		}
	}
	data, infos := build(t, specs)
	r := open(t, data, "wal/rt")
	if got := r.Chunks(); fmt.Sprint(got) != fmt.Sprint(infos) {
		t.Fatalf("Open footer\n got %+v\nwant %+v", got, infos)
	}
	pos := int64(HeaderSize)
	for i, s := range specs {
		info := infos[i]
		if !bytes.Equal(flatten(s.batches), flatten(orig[i])) {
			t.Fatalf("chunk %d: builder modified the caller's batches", i)
		}
		wantRecords, wantMax := int64(0), int64(-1<<63)
		var want []byte
		for _, b := range s.batches {
			want = append(want, withBase(b, s.base+wantRecords)...)
			h, _ := ParseBatchHeader(b)
			wantRecords += h.OffsetSpan()
			wantMax = max(wantMax, h.MaxTimestamp)
		}
		first, _ := ParseBatchHeader(s.batches[0])
		wantInfo := ChunkInfo{
			TopicID: s.topic, Partition: s.partition, Pos: pos, Size: int64(len(want)),
			StoredBase: s.base, Records: wantRecords, Batches: int32(len(s.batches)),
			FirstTimestamp: first.BaseTimestamp, MaxTimestamp: wantMax, CRC: Checksum(want),
		}
		if info != wantInfo {
			t.Fatalf("chunk %d info\n got %+v\nwant %+v", i, info, wantInfo)
		}
		pos += info.Size
		c, err := r.ReadChunk(i)
		if err != nil {
			t.Fatalf("ReadChunk %d: %v", i, err)
		}
		if !bytes.Equal(c.Bytes(), want) {
			t.Fatalf("chunk %d bytes differ from input with rewritten offsets", i)
		}
		if c.StoredBase() != s.base || c.NextOffset() != info.NextOffset() || len(c.Batches()) != len(s.batches) {
			t.Fatalf("chunk %d: base %d next %d batches %d", i, c.StoredBase(), c.NextOffset(), len(c.Batches()))
		}
		for j, b := range c.Batches() {
			if err := VerifyBatchCRC(b.Raw); err != nil {
				t.Fatalf("chunk %d batch %d: %v", i, j, err)
			}
			if _, err := segmenttest.Records(b.Raw); err != nil {
				t.Fatalf("chunk %d batch %d: kmsg cannot decode: %v", i, j, err)
			}
		}
	}
	if pos+int64(len(infos))*FooterEntrySize+TrailerSize != int64(len(data)) {
		t.Fatalf("object is %d bytes, layout says %d", len(data), pos+int64(len(infos))*FooterEntrySize+TrailerSize)
	}
}

func flatten(bs [][]byte) []byte { return segmenttest.Concat(bs) }

// TestFind proves FindChunk, FindOffset and FindTimestamp locate exactly the
// chunk and batch holding each stored offset, including gaps left by
// compaction and offsets outside the object.
func TestFind(t *testing.T) {
	data, _ := build(t, sampleSpecs())
	r := open(t, data, "wal/find")
	// topicA/1: chunk 2 holds [100, 106) as batches [100,105) [105,106); chunk 3 holds [110, 114).
	tests := []struct {
		topic     [16]byte
		partition int32
		offset    int64
		wantChunk int
		wantBatch int
		wantFound bool
	}{
		{topicA, 0, 0, 0, 0, true},
		{topicA, 0, 2, 0, 0, true},
		{topicA, 0, 3, 0, 1, true},
		{topicA, 0, 5, 0, 1, true},
		{topicA, 0, 6, 0, 0, false},
		{topicA, 0, -1, 0, 0, false},
		{topicB, 7, 0, 1, 0, true},
		{topicB, 7, 1, 0, 0, false},
		{topicB, 8, 0, 0, 0, false},
		{topicA, 1, 99, 0, 0, false},
		{topicA, 1, 100, 2, 0, true},
		{topicA, 1, 104, 2, 0, true},
		{topicA, 1, 105, 2, 1, true},
		{topicA, 1, 106, 0, 0, false},
		{topicA, 1, 109, 0, 0, false},
		{topicA, 1, 110, 3, 0, true},
		{topicA, 1, 113, 3, 0, true},
		{topicA, 1, 114, 0, 0, false},
	}
	for _, tt := range tests {
		ci, ok := r.FindChunk(tt.topic, tt.partition, tt.offset)
		if ok != tt.wantFound || (ok && ci != tt.wantChunk) {
			t.Fatalf("FindChunk(%x, %d, %d) = %d, %v; want %d, %v", tt.topic[0], tt.partition, tt.offset, ci, ok, tt.wantChunk, tt.wantFound)
		}
		if !ok {
			continue
		}
		c, err := r.ReadChunk(ci)
		if err != nil {
			t.Fatal(err)
		}
		bi, ok := c.FindOffset(tt.offset)
		if !ok || bi != tt.wantBatch {
			t.Fatalf("FindOffset(%d) = %d, %v; want %d", tt.offset, bi, ok, tt.wantBatch)
		}
	}
	c, err := r.ReadChunk(2) // batch 0: timestamps 3005..3006, batch 1: 3000
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ts        int64
		wantBatch int
		wantFound bool
	}{{0, 0, true}, {3006, 0, true}, {3007, 0, false}} {
		if bi, ok := c.FindTimestamp(tt.ts); bi != tt.wantBatch || ok != tt.wantFound {
			t.Fatalf("FindTimestamp(%d) = %d, %v; want %d, %v", tt.ts, bi, ok, tt.wantBatch, tt.wantFound)
		}
	}
	if _, ok := c.FindOffset(99); ok {
		t.Fatal("FindOffset below the chunk found a batch")
	}
}

// TestAppendPatched proves batches go out with absolute offsets, valid Kafka
// CRCs, the maxBytes limit honoured but at least one batch always sent, and
// the chunk left untouched.
func TestAppendPatched(t *testing.T) {
	batches := segmenttest.Batches(4, segmenttest.BatchOptions{Records: 2, Value: []byte("p")})
	data, _ := build(t, []chunkSpec{{topicA, 0, 0, batches}})
	r := open(t, data, "wal/patch")
	c, err := r.ReadChunk(0)
	if err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), c.Bytes()...)
	size := len(batches[0])
	tests := []struct {
		from     int
		maxBytes int
		wantN    int
	}{
		{0, 1 << 20, 4},
		{0, 0, 1},
		{0, size, 1},
		{0, 2*size - 1, 1},
		{0, 2 * size, 2},
		{1, 1 << 20, 3},
		{3, 1, 1},
		{4, 1 << 20, 0},
		{-1, 1 << 20, 4},
	}
	for _, tt := range tests {
		prefix := []byte("prefix")
		out, n := c.AppendPatched(prefix, tt.from, 5000, 0, tt.maxBytes)
		if n != tt.wantN {
			t.Fatalf("AppendPatched(from %d, max %d) = %d batches, want %d", tt.from, tt.maxBytes, n, tt.wantN)
		}
		if string(out[:6]) != "prefix" {
			t.Fatal("dst prefix clobbered")
		}
		got, err := SplitBatches(out[6:], true)
		if err != nil || len(got) != n {
			t.Fatalf("patched output: %d batches, %v", len(got), err)
		}
		for i, b := range got {
			if want := 5000 + int64(2*(max(tt.from, 0)+i)); b.Header.BaseOffset != want {
				t.Fatalf("batch %d at offset %d, want %d", i, b.Header.BaseOffset, want)
			}
		}
	}
	if !bytes.Equal(before, c.Bytes()) {
		t.Fatal("AppendPatched modified the chunk")
	}
	// PatchInPlace gives the same bytes as AppendPatched, in the chunk's
	// own storage (a fresh parse for each call: it patches the chunk).
	for _, tt := range tests {
		want, wantN := c.AppendPatched(nil, tt.from, 5000, 0, tt.maxBytes)
		own := append([]byte(nil), before...)
		oc, err := ParseChunk(own, "wal/patch", 0, Checksum(own))
		if err != nil {
			t.Fatal(err)
		}
		got, n := oc.PatchInPlace(tt.from, 5000, 0, tt.maxBytes)
		if n != wantN || !bytes.Equal(got, want) {
			t.Fatalf("PatchInPlace(from %d, max %d) = %d batches (%d bytes), AppendPatched %d (%d bytes), equal %v",
				tt.from, tt.maxBytes, n, len(got), wantN, len(want), bytes.Equal(got, want))
		}
		if n > 0 && &got[0] != &own[max(tt.from, 0)*size] { // equal-sized batches
			t.Fatalf("PatchInPlace(from %d) copied the batches", tt.from)
		}
		// Once every batch is patched, Slice gives the same bytes.
		oc.PatchInPlace(0, 5000, 0, 1<<30)
		if got, n := oc.Slice(tt.from, tt.maxBytes); n != wantN || !bytes.Equal(got, want) {
			t.Fatalf("Slice(from %d, max %d) of a patched chunk = %d batches, want %d, equal %v", tt.from, tt.maxBytes, n, wantN, bytes.Equal(got, want))
		}
	}
}

// TestBuilderRejects proves invalid AddChunk calls fail with ErrInvalidChunk
// or the batch's sentinel, write nothing, and leave the builder usable.
func TestBuilderRejects(t *testing.T) {
	good := segmenttest.Batch(segmenttest.BatchOptions{Records: 3})
	v1 := append([]byte(nil), good...)
	v1[16] = 1
	tests := []struct {
		name      string
		topic     [16]byte
		partition int32
		base      int64
		batches   [][]byte
		wantErr   error
	}{
		{"no batches", topicA, 1, 0, nil, ErrInvalidChunk},
		{"negative base", topicA, 1, -1, [][]byte{good}, ErrInvalidChunk},
		{"overlaps previous chunk of partition", topicA, 0, 2, [][]byte{good}, ErrInvalidChunk},
		{"trailing bytes after batch", topicA, 1, 0, [][]byte{append(append([]byte(nil), good...), 0)}, ErrInvalidChunk},
		{"truncated batch", topicA, 1, 0, [][]byte{good[:len(good)-1]}, ErrInvalidChunk},
		{"short header", topicA, 1, 0, [][]byte{good[:30]}, ErrTruncated},
		{"v1 message", topicA, 1, 0, [][]byte{v1}, ErrMagic},
		{"offsets overflow", topicA, 1, 1<<63 - 2, [][]byte{good}, ErrInvalidChunk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			b := NewBuilder(&buf)
			if _, err := b.AddChunk(topicA, 0, 0, [][]byte{good}); err != nil {
				t.Fatal(err)
			}
			n := buf.Len()
			if _, err := b.AddChunk(tt.topic, tt.partition, tt.base, tt.batches); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if buf.Len() != n || b.Size() != int64(n) {
				t.Fatalf("failed AddChunk wrote %d bytes", buf.Len()-n)
			}
			if _, err := b.AddChunk(topicA, 0, 3, [][]byte{good}); err != nil {
				t.Fatalf("builder unusable after rejected chunk: %v", err)
			}
			if _, err := b.Finish(); err != nil {
				t.Fatal(err)
			}
			open(t, buf.Bytes(), "ok")
			if _, err := b.Finish(); !errors.Is(err, ErrFinished) {
				t.Fatalf("second Finish: %v, want ErrFinished", err)
			}
			if _, err := b.AddChunk(topicA, 0, 100, [][]byte{good}); !errors.Is(err, ErrFinished) {
				t.Fatalf("AddChunk after Finish: %v, want ErrFinished", err)
			}
		})
	}
}

// failWriter fails every write after the first ok bytes.
type failWriter struct{ ok int }

var errDisk = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) <= w.ok {
		w.ok -= len(p)
		return len(p), nil
	}
	n := w.ok
	w.ok = 0
	return n, errDisk
}

// TestBuilderWriteError proves a write error is returned, sticks, and is
// reported with ErrFinished and the cause.
func TestBuilderWriteError(t *testing.T) {
	good := segmenttest.Batch(segmenttest.BatchOptions{Records: 3})
	b := NewBuilder(&failWriter{ok: HeaderSize + 10})
	if _, err := b.AddChunk(topicA, 0, 0, [][]byte{good}); !errors.Is(err, errDisk) || !errors.Is(err, ErrFinished) {
		t.Fatalf("AddChunk: %v", err)
	}
	if b.Size() != HeaderSize+10 {
		t.Fatalf("Size %d after partial write, want %d", b.Size(), HeaderSize+10)
	}
	if _, err := b.Finish(); !errors.Is(err, errDisk) {
		t.Fatalf("Finish after write error: %v", err)
	}
}

// TestEmptyObject proves an object without chunks is valid and reads back
// empty.
func TestEmptyObject(t *testing.T) {
	data, infos := build(t, nil)
	if len(data) != HeaderSize+TrailerSize || len(infos) != 0 {
		t.Fatalf("empty object is %d bytes, %d chunks", len(data), len(infos))
	}
	r := open(t, data, "empty")
	if r.NumChunks() != 0 {
		t.Fatal("chunks in empty object")
	}
	if _, err := r.ReadChunk(0); err == nil || errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadChunk out of range: %v, want a non-corruption error", err)
	}
}

// TestLargeObject proves Open works when the footer is larger than its
// first tail read, and on objects larger than the read-whole threshold, as
// with compacted segments of many chunks.
func TestLargeObject(t *testing.T) {
	batch := segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: bytes.Repeat([]byte("x"), 40)})
	var specs []chunkSpec
	for i := range 1200 { // footer 1200*76 = 91200 bytes > openReadSize
		specs = append(specs, chunkSpec{topicA, 3, int64(2 * i), [][]byte{batch}})
	}
	data, _ := build(t, specs)
	counter := &countingReaderAt{r: bytes.NewReader(data)}
	r, err := Open(counter, int64(len(data)), "seg/large")
	if err != nil {
		t.Fatal(err)
	}
	if r.NumChunks() != 1200 || counter.calls != 3 {
		t.Fatalf("%d chunks, %d reads; want 1200 and 3 (header, tail, footer)", r.NumChunks(), counter.calls)
	}
	ci, ok := r.FindChunk(topicA, 3, 2001)
	if !ok || ci != 1000 {
		t.Fatalf("FindChunk = %d, %v", ci, ok)
	}
	c, err := r.ReadChunk(ci)
	if err != nil || c.StoredBase() != 2000 {
		t.Fatalf("ReadChunk: base %d, %v", c.StoredBase(), err)
	}

	// Few chunks, big object: header read plus one tail read.
	big := segmenttest.Batch(segmenttest.BatchOptions{Records: 1, Value: bytes.Repeat([]byte("y"), 100<<10)})
	data, _ = build(t, []chunkSpec{{topicB, 0, 0, [][]byte{big}}})
	counter = &countingReaderAt{r: bytes.NewReader(data)}
	if _, err := Open(counter, int64(len(data)), "seg/big"); err != nil || counter.calls != 2 {
		t.Fatalf("Open: %v after %d reads, want 2", err, counter.calls)
	}
}

type countingReaderAt struct {
	r     io.ReaderAt
	calls int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.calls++
	return c.r.ReadAt(p, off)
}
