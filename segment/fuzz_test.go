package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/shale-dev/shale/segment/segmenttest"
)

// fuzzSeeds are edge cases shared by the fuzz targets.
func fuzzSeeds(t testing.TB) (object []byte, chunk []byte, batch []byte) {
	data, infos := build(t, sampleSpecs())
	return data, data[infos[2].Pos:infos[2].End()], segmenttest.Batch(segmenttest.BatchOptions{Records: 2, Value: []byte("f")})
}

// checkDecodeErr fails unless err is nil or one of the package's sentinels.
func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMagic) && !errors.Is(err, ErrVersion) {
		t.Fatalf("error matches no sentinel: %v", err)
	}
}

// FuzzOpen proves Open and ReadChunk never panic, return only corruption
// errors, and that whatever they accept is self-consistent. With fixCRC the
// footer CRC is recomputed first, so the fuzzer reaches the footer checks.
func FuzzOpen(f *testing.F) {
	obj, _, _ := fuzzSeeds(f)
	empty, _ := build(f, nil)
	f.Add(obj, false)
	f.Add(obj, true)
	f.Add(empty, false)
	f.Add([]byte{}, false)
	f.Add(obj[:HeaderSize], false)
	f.Add(obj[len(obj)-TrailerSize:], true)
	f.Add(append(append([]byte(nil), obj[:HeaderSize]...), obj[len(obj)-TrailerSize:]...), true)
	flipped := append([]byte(nil), obj...)
	flipped[len(obj)-TrailerSize] ^= 0xff // huge footer length
	f.Add(flipped, true)
	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		if fixCRC && len(data) >= HeaderSize+TrailerSize {
			tr := data[len(data)-TrailerSize:]
			if n := int(binary.BigEndian.Uint32(tr[trOffFooterLen:])); n <= len(data)-HeaderSize-TrailerSize {
				footer := data[len(data)-TrailerSize-n : len(data)-TrailerSize]
				binary.BigEndian.PutUint32(tr[trOffFooterCRC:], Checksum(footer))
			}
		}
		r, err := Open(bytes.NewReader(data), int64(len(data)), "fuzz")
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		end := int64(HeaderSize)
		for i, info := range r.Chunks() {
			if info.Pos != end || info.Size <= 0 {
				t.Fatalf("chunk %d at [%d, %d), want start %d", i, info.Pos, info.End(), end)
			}
			end = info.End()
			c, err := r.ReadChunk(i)
			checkDecodeErr(t, err)
			if err != nil {
				continue
			}
			if c.StoredBase() != info.StoredBase || c.NextOffset() != info.NextOffset() {
				t.Fatalf("chunk %d offsets disagree with footer", i)
			}
			if bi, ok := c.FindOffset(info.StoredBase); !ok || bi != 0 {
				t.Fatalf("chunk %d: first offset not in first batch", i)
			}
			out, n := c.AppendPatched(nil, 0, 1000, info.StoredBase, 0)
			if n != 1 || len(out) != len(c.Batches()[0].Raw) {
				t.Fatalf("AppendPatched: %d batches, %d bytes", n, len(out))
			}
		}
	})
}

// FuzzParseChunk proves ParseChunk never panics, with matching and
// mismatching CRCs, and that accepted chunks are whole consecutive batches.
func FuzzParseChunk(f *testing.F) {
	_, chunk, batch := fuzzSeeds(f)
	f.Add(chunk, true, uint32(0))
	f.Add(batch, true, uint32(0))
	f.Add(chunk[:len(chunk)-1], true, uint32(0))
	f.Add(chunk, false, Checksum(chunk))
	f.Add([]byte{}, true, uint32(0))
	f.Add(make([]byte, BatchHeaderSize), true, uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, realCRC bool, crc uint32) {
		if realCRC {
			crc = Checksum(data)
		}
		c, err := ParseChunk(data, "fuzz", 100, crc)
		checkDecodeErr(t, err)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Pos < 100 || ce.Pos+ce.Size > 100+int64(len(data)) || ce.Size < 0 {
				t.Fatalf("error range outside the input: %v", err)
			}
			return
		}
		n, next := 0, c.StoredBase()
		for _, b := range c.Batches() {
			if b.Header.BaseOffset != next {
				t.Fatalf("offsets not consecutive")
			}
			next += b.Header.OffsetSpan()
			n += len(b.Raw)
		}
		if n != len(data) || next != c.NextOffset() {
			t.Fatalf("batches cover %d of %d bytes", n, len(data))
		}
		for _, off := range []int64{c.StoredBase() - 1, c.StoredBase(), c.NextOffset() - 1, c.NextOffset()} {
			if i, ok := c.FindOffset(off); ok {
				h := c.Batches()[i].Header
				if off < h.BaseOffset || off > h.LastOffset() {
					t.Fatalf("FindOffset(%d) = batch [%d, %d]", off, h.BaseOffset, h.LastOffset())
				}
			}
		}
		c.FindTimestamp(0)
		c.AppendPatched(nil, 0, 0, c.StoredBase(), len(data)/2)
	})
}

// FuzzSplitBatches proves SplitBatches never panics and that accepted input
// is exactly a sequence of whole batches with valid headers.
func FuzzSplitBatches(f *testing.F) {
	_, chunk, batch := fuzzSeeds(f)
	v1 := append([]byte(nil), batch...)
	v1[16] = 1
	f.Add(chunk, true)
	f.Add(chunk, false)
	f.Add(batch, true)
	f.Add(batch[:BatchHeaderSize], true)
	f.Add(v1, true)
	f.Add([]byte{}, true)
	f.Add(append(append([]byte(nil), batch...), batch[:20]...), false)
	f.Fuzz(func(t *testing.T, data []byte, verify bool) {
		batches, err := SplitBatches(data, verify)
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		n := 0
		for _, b := range batches {
			h, err := ParseBatchHeader(b.Raw)
			if err != nil || h != b.Header || int(h.Length) != len(b.Raw) {
				t.Fatalf("batch header %+v does not re-parse: %v", b.Header, err)
			}
			if verify {
				if err := VerifyBatchCRC(b.Raw); err != nil {
					t.Fatalf("verified batch fails VerifyBatchCRC: %v", err)
				}
			}
			n += len(b.Raw)
		}
		if n != len(data) {
			t.Fatalf("batches cover %d of %d bytes", n, len(data))
		}
	})
}

// FuzzParseBatchHeader proves ParseBatchHeader never panics and accepted
// headers satisfy the documented bounds.
func FuzzParseBatchHeader(f *testing.F) {
	_, _, batch := fuzzSeeds(f)
	f.Add(batch)
	f.Add(batch[:BatchHeaderSize])
	f.Add(batch[:BatchHeaderSize-1])
	f.Add(batch[:17])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseBatchHeader(data)
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		if len(data) < BatchHeaderSize || h.Magic != BatchMagic || h.Length < BatchHeaderSize ||
			h.RecordCount < 0 || h.LastOffsetDelta < 0 || int64(h.LastOffsetDelta) < int64(h.RecordCount)-1 || h.Compression() > CompressionZstd {
			t.Fatalf("accepted bad header %+v from %d bytes", h, len(data))
		}
		VerifyBatchCRC(data)
	})
}

// FuzzOpenTail feeds arbitrary tails (as a compacted segment's index entry
// would fetch them) to OpenTail with no reader behind them: it must return
// a reader whose chunks lie inside the object, or an error, never panic.
func FuzzOpenTail(f *testing.F) {
	obj, _, _ := fuzzSeeds(f)
	f.Add(obj, int64(len(obj)), len(obj)/2)
	f.Add(obj, int64(len(obj)), TrailerSize)
	f.Add(obj, int64(len(obj))*3, len(obj))
	f.Add([]byte{}, int64(0), 0)
	f.Fuzz(func(t *testing.T, data []byte, size int64, tailLen int) {
		if tailLen < 0 || tailLen > len(data) {
			return
		}
		tail := data[len(data)-tailLen:]
		r, err := OpenTail(nil, size, "fuzz", tail)
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		for i, c := range r.Chunks() {
			if c.Pos < HeaderSize || c.End() > size {
				t.Fatalf("chunk %d at [%d, %d) outside an object of %d bytes", i, c.Pos, c.End(), size)
			}
		}
	})
}

// FuzzCoalesceEmpty proves CoalesceEmpty and EmptyBatch never panic, and
// what they return is a valid header-only batch (merged: spanning both
// inputs).
func FuzzCoalesceEmpty(f *testing.F) {
	_, _, batch := fuzzSeeds(f)
	emptied, _, err := FilterRecords(batch, func(Record) bool { return false })
	if err == nil {
		f.Add(emptied, emptied)
	}
	f.Add(batch, batch)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if e, err := EmptyBatch(a); err == nil {
			if h, err := ParseBatchHeader(e); err != nil || VerifyBatchCRC(e) != nil || h.RecordCount != 0 {
				t.Fatalf("EmptyBatch: %+v (%v)", h, err)
			}
		}
		m, ok := CoalesceEmpty(a, b)
		if !ok {
			return
		}
		h, err := ParseBatchHeader(m)
		ha, _ := ParseBatchHeader(a)
		hb, _ := ParseBatchHeader(b)
		if err != nil || VerifyBatchCRC(m) != nil || h.RecordCount != 0 || h.OffsetSpan() != ha.OffsetSpan()+hb.OffsetSpan() {
			t.Fatalf("merged %+v (%v) from %+v and %+v", h, err, ha, hb)
		}
	})
}
