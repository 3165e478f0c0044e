package segment

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// wantCorrupt checks that err is a *CorruptError naming object and exactly
// the byte range [pos, end), matching ErrCorrupt and cause.
func wantCorrupt(t *testing.T, err error, object string, pos, end int64, cause error) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *CorruptError", err)
	}
	if ce.Object != object || ce.Pos != pos || ce.Pos+ce.Size != end {
		t.Fatalf("err = %v, want object %q bytes [%d, %d)", err, object, pos, end)
	}
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, cause) {
		t.Fatalf("err = %v, want errors.Is ErrCorrupt and %v", err, cause)
	}
	if want := fmt.Sprintf("segment: corrupt object %q bytes [%d, %d): ", object, pos, end); !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("message %q does not start with %q", err, want)
	}
}

// TestByteFlips proves that every single-bit change anywhere in an object is
// detected, by Open for the header, footer and trailer, and by ReadChunk for
// exactly the chunk holding the byte (baseOffset fields included, since the
// chunk CRC covers them), with the object name and the range that failed.
func TestByteFlips(t *testing.T) {
	const name = "wal/flip"
	data, infos := build(t, sampleSpecs())
	size := int64(len(data))
	trailerPos := size - TrailerSize
	footerStart := trailerPos - int64(len(infos))*FooterEntrySize
	for p := range size {
		for bit := range 8 {
			bad := append([]byte(nil), data...)
			bad[p] ^= 1 << bit
			r, err := Open(bytes.NewReader(bad), size, name)
			// Where the change must be reported, and as what.
			switch {
			case p < HeaderSize:
				cause := ErrCorrupt
				switch {
				case p < hdrOffVersion:
					cause = ErrMagic
				case p == hdrOffVersion:
					cause = ErrVersion
				}
				wantCorrupt(t, err, name, 0, HeaderSize, cause)
				continue
			case p >= footerStart && p < trailerPos, p >= trailerPos+trOffFooterCRC && p < trailerPos+trOffVersion:
				wantCorrupt(t, err, name, footerStart, size, ErrCRC)
				continue
			case p >= trailerPos:
				cause := ErrCorrupt // footer length or chunk count
				switch {
				case p == trailerPos+trOffVersion:
					cause = ErrVersion
				case p >= trailerPos+trOffMagic:
					cause = ErrMagic
				}
				wantCorrupt(t, err, name, trailerPos, size, cause)
				continue
			}
			// p is inside a chunk: Open succeeds, only that chunk fails.
			if err != nil {
				t.Fatalf("flip at %d bit %d: Open: %v", p, bit, err)
			}
			for i, info := range infos {
				_, err := r.ReadChunk(i)
				if p < info.Pos || p >= info.End() {
					if err != nil {
						t.Fatalf("flip at %d: chunk %d [%d, %d) failed: %v", p, i, info.Pos, info.End(), err)
					}
					continue
				}
				wantCorrupt(t, err, name, info.Pos, info.End(), ErrCRC)
			}
		}
	}
}

// TestTruncation proves that an object cut at any length, or shorter than
// its declared size, fails Open with a corruption error naming the object.
func TestTruncation(t *testing.T) {
	const name = "wal/trunc"
	data, _ := build(t, sampleSpecs())
	for n := range len(data) {
		_, err := Open(bytes.NewReader(data[:n]), int64(n), name)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Object != name || ce.Pos+ce.Size > int64(n) {
			t.Fatalf("cut at %d: %v; want *CorruptError for %q inside [0, %d)", n, err, name, n)
		}
		if n < HeaderSize+TrailerSize && !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d: %v, want ErrTruncated", n, err)
		}
		// The size is right but the store returns fewer bytes.
		_, err = Open(bytes.NewReader(data[:n]), int64(len(data)), name)
		if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Fatalf("short read of %d bytes: %v, want ErrTruncated naming the object", n, err)
		}
	}
}

// TestParseChunkCuts proves ParseChunk on a prefix of a chunk (with a CRC
// matching those bytes, as for an engine-checksummed range) accepts exactly
// the cuts at batch boundaries and reports the partial batch otherwise.
func TestParseChunkCuts(t *testing.T) {
	const name = "seg/cuts"
	data, infos := build(t, sampleSpecs())
	info := infos[0]
	chunk := data[info.Pos:info.End()]
	boundaries := map[int]int{} // cut length -> batches
	r := open(t, data, name)
	c, err := r.ReadChunk(0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, b := range c.Batches() {
		n += len(b.Raw)
		boundaries[n] = i + 1
	}
	for cut := 0; cut <= len(chunk); cut++ {
		part := chunk[:cut]
		c, err := ParseChunk(part, name, info.Pos, Checksum(part))
		if want, ok := boundaries[cut]; ok {
			if err != nil || len(c.Batches()) != want {
				t.Fatalf("cut at batch boundary %d: %d batches, %v; want %d", cut, len(c.Batches()), err, want)
			}
			continue
		}
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d: %v, want ErrTruncated", cut, err)
		}
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Object != name || ce.Pos < info.Pos || ce.Pos+ce.Size != info.Pos+int64(cut) {
			t.Fatalf("cut at %d: %v; want the partial batch's range ending at %d", cut, err, info.Pos+int64(cut))
		}
	}
	// A sub-range starting at the second batch is a valid chunk too.
	second := chunk[len(c.Batches()[0].Raw):]
	sub, err := ParseChunk(second, name, info.Pos+int64(len(c.Batches()[0].Raw)), Checksum(second))
	if err != nil || sub.StoredBase() != c.Batches()[1].Header.BaseOffset {
		t.Fatalf("sub-range: base %d, %v", sub.StoredBase(), err)
	}
}

// TestParseChunkOffsets proves ParseChunk rejects batches whose stored
// offsets are not consecutive even when the CRC matches (a writer bug).
func TestParseChunkOffsets(t *testing.T) {
	data, infos := build(t, sampleSpecs())
	info := infos[2] // two batches, [100, 105) and [105, 106)
	chunk := append([]byte(nil), data[info.Pos:info.End()]...)
	h, _ := ParseBatchHeader(chunk)
	SetBaseOffset(chunk[h.Length:], 106)
	_, err := ParseChunk(chunk, "seg/gap", info.Pos, Checksum(chunk))
	wantCorrupt(t, err, "seg/gap", info.Pos+int64(h.Length), info.End(), ErrCorrupt)
	if !strings.Contains(err.Error(), "batch 1 at stored offset 106, want 105") {
		t.Fatalf("message %q does not explain the gap", err)
	}
}

// errReaderAt fails every read.
type errReaderAt struct{ err error }

func (r errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, r.err }

// TestReadErrorsAreNotCorruption proves an I/O failure of the store is
// returned wrapped, not disguised as corruption (callers retry those).
func TestReadErrorsAreNotCorruption(t *testing.T) {
	cause := errors.New("connection reset")
	_, err := Open(errReaderAt{cause}, 1000, "wal/io")
	if !errors.Is(err, cause) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"wal/io"`) {
		t.Fatalf("Open: %v", err)
	}
}

// TestCorruptErrorFormat proves the message format the operators will grep.
func TestCorruptErrorFormat(t *testing.T) {
	err := error(&CorruptError{Object: "wal/0001", Pos: 1024, Size: 4096, Reason: "chunk CRC mismatch (want 0x00000001, got 0x00000002)", Err: ErrCRC})
	want := `segment: corrupt object "wal/0001" bytes [1024, 5120): chunk CRC mismatch (want 0x00000001, got 0x00000002)`
	if err.Error() != want {
		t.Fatalf("got  %s\nwant %s", err, want)
	}
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrCRC) || errors.Is(err, ErrMagic) {
		t.Fatal("errors.Is wrong")
	}
	if !errors.Is(fmt.Errorf("fetch: %w", err), ErrCorrupt) {
		t.Fatal("wrapped CorruptError is not ErrCorrupt")
	}
}

// withFooter returns data with its footer replaced by edit(infos) and the
// footer CRC recomputed, as a buggy writer would produce.
func withFooter(t *testing.T, data []byte, edit func([]ChunkInfo)) []byte {
	t.Helper()
	r := open(t, data, "orig")
	infos := r.Chunks()
	edit(infos)
	out := append([]byte(nil), data[:r.footerStart]...)
	start := len(out)
	for _, c := range infos {
		out = appendFooterEntry(out, c)
	}
	return appendTrailer(out, uint32(len(out)-start), uint32(len(infos)), Checksum(out[start:]))
}

// TestFooterChecks proves footer entries that pass the footer CRC but
// contradict the object layout (Open) or the chunk's batches (ReadChunk) are
// reported as corruption of the entry's or the chunk's bytes.
func TestFooterChecks(t *testing.T) {
	const name = "seg/footer"
	data, infos := build(t, sampleSpecs())
	footerStart := int64(len(data)) - TrailerSize - int64(len(infos))*FooterEntrySize
	entry := func(i int) (int64, int64) {
		return footerStart + int64(i)*FooterEntrySize, footerStart + int64(i+1)*FooterEntrySize
	}
	tests := []struct {
		name       string
		edit       func([]ChunkInfo)
		wantEntry  int // footer entry Open rejects, or -1
		wantChunk  int // chunk ReadChunk rejects, when wantEntry is -1
		wantReason string
	}{
		{"first chunk not after header", func(c []ChunkInfo) { c[0].Pos++ }, 0, 0, "chunk at byte 17, want 16"},
		{"gap between chunks", func(c []ChunkInfo) { c[0].Size-- }, 1, 0, "chunks are back to back"},
		{"chunk past footer", func(c []ChunkInfo) { c[3].Size += 1 << 40 }, 3, 0, "does not fit"},
		{"zero size", func(c []ChunkInfo) { c[1].Size = 0 }, 1, 0, "does not fit"},
		{"negative size", func(c []ChunkInfo) { c[1].Size = -100 }, 1, 0, "does not fit"},
		{"no batches", func(c []ChunkInfo) { c[1].Batches = 0 }, 1, 0, "batches cannot fill"},
		{"negative stored base", func(c []ChunkInfo) { c[0].StoredBase = -1 }, 0, 0, "negative stored base"},
		{"records overflow", func(c []ChunkInfo) { c[2].Records = 1<<63 - 1 }, 2, 0, "record count"},
		{"partition chunks overlap", func(c []ChunkInfo) { c[3].StoredBase = 105 }, 3, 0, "overlaps"},
		{"stored base differs", func(c []ChunkInfo) { c[0].StoredBase = 7 }, -1, 0, "footer says 7"},
		{"record count differs", func(c []ChunkInfo) { c[2].Records = 5 }, -1, 2, "batches span 6 offsets, footer says 5"},
		{"batch count differs", func(c []ChunkInfo) { c[2].Batches = 1 }, -1, 2, "2 batches, footer says 1"},
		{"first timestamp differs", func(c []ChunkInfo) { c[0].FirstTimestamp++ }, -1, 0, "timestamps"},
		{"max timestamp differs", func(c []ChunkInfo) { c[0].MaxTimestamp++ }, -1, 0, "timestamps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := withFooter(t, data, tt.edit)
			r, err := Open(bytes.NewReader(bad), int64(len(bad)), name)
			if tt.wantEntry >= 0 {
				pos, end := entry(tt.wantEntry)
				wantCorrupt(t, err, name, pos, end, ErrCorrupt)
				if !strings.Contains(err.Error(), tt.wantReason) {
					t.Fatalf("message %q does not contain %q", err, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.ReadChunk(tt.wantChunk)
			info := r.Chunk(tt.wantChunk)
			wantCorrupt(t, err, name, info.Pos, info.End(), ErrCorrupt)
			if !strings.Contains(err.Error(), tt.wantReason) {
				t.Fatalf("message %q does not contain %q", err, tt.wantReason)
			}
		})
	}
	// Bytes no chunk claims: the last chunk dropped from the footer.
	bad := withFooterN(t, data, len(infos)-1)
	_, err := Open(bytes.NewReader(bad), int64(len(bad)), name)
	wantCorrupt(t, err, name, infos[3].Pos, infos[3].End(), ErrCorrupt)
}

// withFooterN returns data with only the first n footer entries kept.
func withFooterN(t *testing.T, data []byte, n int) []byte {
	t.Helper()
	r := open(t, data, "orig")
	out := append([]byte(nil), data[:r.footerStart]...)
	start := len(out)
	for _, c := range r.Chunks()[:n] {
		out = appendFooterEntry(out, c)
	}
	return appendTrailer(out, uint32(len(out)-start), uint32(n), Checksum(out[start:]))
}
