package segment

import (
	"math"
	"sort"
)

// Chunk is a checked run of whole record batches with consecutive stored
// offsets: one chunk of an object, or a sub-range of one. Its batches alias
// the bytes it was parsed from.
type Chunk struct {
	data    []byte
	batches []Batch
}

// ParseChunk checks bytes fetched with one ranged GET of an object: exactly
// one chunk, or a run of whole batches inside one. object and pos (the byte
// offset of data in the object) only name the bytes in errors; wantCRC is the
// CRC-32C of data as stored (the footer's chunk CRC, or the one the engine
// keeps for the range). ParseChunk checks the CRC, every batch header and
// length, and that the batches' stored offsets are consecutive. It does not
// check the batches' own (Kafka) CRCs, which the chunk CRC already covers.
// Failures are *CorruptError.
func ParseChunk(data []byte, object string, pos int64, wantCRC uint32) (Chunk, error) {
	if len(data) == 0 {
		return Chunk{}, corrupt(object, pos, 0, ErrTruncated, "empty chunk")
	}
	if got := Checksum(data); got != wantCRC {
		return Chunk{}, corrupt(object, pos, int64(len(data)), ErrCRC, "chunk CRC mismatch (want %s, got %s)", hex32(wantCRC), hex32(got))
	}
	batches, berr := splitBatches(data, false)
	if berr != nil {
		return Chunk{}, corrupt(object, pos+int64(berr.pos), int64(berr.size), berr.err, "batch at chunk byte %d: %s", berr.pos, berr.reason)
	}
	next := batches[0].Header.BaseOffset
	var bpos int64
	for i, b := range batches {
		h := b.Header
		switch {
		case h.BaseOffset != next:
			return Chunk{}, corrupt(object, pos+bpos, int64(h.Length), ErrCorrupt, "batch %d at stored offset %d, want %d", i, h.BaseOffset, next)
		case h.BaseOffset < 0 || h.BaseOffset > math.MaxInt64-h.OffsetSpan():
			return Chunk{}, corrupt(object, pos+bpos, int64(h.Length), ErrCorrupt, "batch %d: stored offset %d out of range", i, h.BaseOffset)
		}
		next = h.BaseOffset + h.OffsetSpan()
		bpos += int64(h.Length)
	}
	return Chunk{data: data, batches: batches}, nil
}

// Bytes returns the chunk's bytes as stored.
func (c Chunk) Bytes() []byte { return c.data }

// Batches returns the chunk's batches, in offset order. Their headers carry
// stored offsets; their Raw bytes alias the chunk and must not be modified.
func (c Chunk) Batches() []Batch { return c.batches }

// StoredBase is the stored offset of the first batch.
func (c Chunk) StoredBase() int64 {
	if len(c.batches) == 0 {
		return 0
	}
	return c.batches[0].Header.BaseOffset
}

// NextOffset is the stored offset just past the last batch.
func (c Chunk) NextOffset() int64 {
	if len(c.batches) == 0 {
		return 0
	}
	h := c.batches[len(c.batches)-1].Header
	return h.BaseOffset + h.OffsetSpan()
}

// FirstTimestamp is the first batch's baseTimestamp.
func (c Chunk) FirstTimestamp() int64 {
	if len(c.batches) == 0 {
		return 0
	}
	return c.batches[0].Header.BaseTimestamp
}

// MaxTimestamp is the largest maxTimestamp of the chunk's batches.
func (c Chunk) MaxTimestamp() int64 {
	var ts int64
	for i, b := range c.batches {
		if i == 0 || b.Header.MaxTimestamp > ts {
			ts = b.Header.MaxTimestamp
		}
	}
	return ts
}

// FindOffset returns the index of the batch holding storedOffset, or false if
// the offset is outside the chunk.
func (c Chunk) FindOffset(storedOffset int64) (int, bool) {
	i := sort.Search(len(c.batches), func(i int) bool { return c.batches[i].Header.BaseOffset > storedOffset }) - 1
	if i < 0 || storedOffset > c.batches[i].Header.LastOffset() {
		return 0, false
	}
	return i, true
}

// FindTimestamp returns the index of the first batch whose MaxTimestamp is
// at least ts, or false if there is none. Batch timestamps need not be
// monotonic, so this is a scan.
func (c Chunk) FindTimestamp(ts int64) (int, bool) {
	for i, b := range c.batches {
		if b.Header.MaxTimestamp >= ts {
			return i, true
		}
	}
	return 0, false
}

// AppendPatched appends batches to dst starting at index from, rewriting each
// appended batch's baseOffset to absBase + (stored offset - storedBase): the
// chunk's stored offsets are translated to the partition's absolute offsets
// given that stored offset storedBase is absolute offset absBase. It stops
// before a batch that would take the appended bytes past maxBytes, but always
// appends at least one batch if from is in range (as Kafka's Fetch does). It
// returns the extended dst and the number of batches appended. The chunk
// itself is not modified.
func (c Chunk) AppendPatched(dst []byte, from int, absBase, storedBase int64, maxBytes int) ([]byte, int) {
	from, n := c.take(from, maxBytes)
	for _, b := range c.batches[from : from+n] {
		start := len(dst)
		dst = append(dst, b.Raw...)
		SetBaseOffset(dst[start:], absBase+(b.Header.BaseOffset-storedBase))
	}
	return dst, n
}

// PatchInPlace is AppendPatched without the copy: it rewrites the
// baseOffsets of the batches it takes in the chunk's own bytes and returns
// those bytes (a sub-slice of what the chunk was parsed from) and the
// number of batches. The chunk must be the caller's alone: afterwards its
// bytes hold absolute offsets, while Batches' headers still say the stored
// ones, so it must not be patched or parsed again.
func (c Chunk) PatchInPlace(from int, absBase, storedBase int64, maxBytes int) ([]byte, int) {
	from, n := c.take(from, maxBytes)
	for _, b := range c.batches[from : from+n] {
		SetBaseOffset(b.Raw, absBase+(b.Header.BaseOffset-storedBase))
	}
	return c.slice(from, n), n
}

// Slice returns, without copying or patching, the bytes of the batches
// AppendPatched would take: for a chunk whose every batch PatchInPlace
// patched already, they are what AppendPatched would append.
func (c Chunk) Slice(from, maxBytes int) ([]byte, int) {
	from, n := c.take(from, maxBytes)
	return c.slice(from, n), n
}

// slice is the bytes of batches [from, from+n) (nil for none).
func (c Chunk) slice(from, n int) []byte {
	if n == 0 {
		return nil
	}
	start := 0 // the batches are back to back from the chunk's first byte
	for _, b := range c.batches[:from] {
		start += len(b.Raw)
	}
	end := start
	for _, b := range c.batches[from : from+n] {
		end += len(b.Raw)
	}
	return c.data[start:end:end]
}

// take returns AppendPatched's batches: from (clamped to 0) and how many
// fit in maxBytes, at least one if from is in range.
func (c Chunk) take(from, maxBytes int) (int, int) {
	from = min(max(from, 0), len(c.batches))
	n, size := 0, 0
	for _, b := range c.batches[from:] {
		if n > 0 && size+len(b.Raw) > maxBytes {
			break
		}
		n++
		size += len(b.Raw)
	}
	return from, n
}
