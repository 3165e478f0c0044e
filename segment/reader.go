package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// openReadSize is how much Open reads from the end of an object in one go,
// hoping to get the footer and trailer in a single ranged GET. Objects up to
// this size are read whole.
const openReadSize = 64 << 10

// Reader reads one object through an io.ReaderAt. Open reads and checks the
// header, trailer and footer; chunks are read on demand. A Reader is
// immutable after Open and safe for concurrent use if its io.ReaderAt is.
type Reader struct {
	r           io.ReaderAt
	size        int64
	name        string
	footerStart int64
	chunks      []ChunkInfo
	byPartition map[partitionKey][]int // chunk indexes per partition, ascending stored base
}

// Open checks the object of size bytes behind r: header and trailer magic
// and version, footer length and CRC, and that the footer's chunks tile the
// bytes between header and footer exactly, in order, with sane counts. name
// is the object's key; it only appears in errors. Damage is reported as a
// *CorruptError (errors.Is(err, ErrCorrupt)) naming the byte range that
// failed; errors from r are returned wrapped as they are.
func Open(r io.ReaderAt, size int64, name string) (*Reader, error) {
	if size < HeaderSize+TrailerSize {
		return nil, corrupt(name, 0, max(size, 0), ErrTruncated, "object of %d bytes is shorter than header and trailer (%d bytes)", size, HeaderSize+TrailerSize)
	}
	var head, tail []byte
	var tailPos int64
	if size <= openReadSize {
		all := make([]byte, size)
		if err := readAt(r, all, 0, name); err != nil {
			return nil, err
		}
		head, tail, tailPos = all[:HeaderSize], all[HeaderSize:], HeaderSize
	} else {
		head = make([]byte, HeaderSize)
		if err := readAt(r, head, 0, name); err != nil {
			return nil, err
		}
		tailPos = size - openReadSize
		tail = make([]byte, openReadSize)
		if err := readAt(r, tail, tailPos, name); err != nil {
			return nil, err
		}
	}
	return parseTail(r, size, name, head, tail, tailPos)
}

// OpenTail is Open for a caller that already holds the end of the object:
// tail is its last len(tail) bytes, and must hold at least the footer and
// the trailer (a compacted segment's index entry records exactly that range,
// so the engine can cache it and read no header). The header is not read or
// checked; everything Open checks about the trailer and footer is. Chunks
// are then read through r (which may be nil if the caller reads chunks
// itself, using the footer entries and ParseChunk; ReadChunk then fails).
func OpenTail(r io.ReaderAt, size int64, name string, tail []byte) (*Reader, error) {
	if size < HeaderSize+TrailerSize || int64(len(tail)) > size || len(tail) < TrailerSize {
		return nil, corrupt(name, 0, max(size, 0), ErrTruncated, "tail of %d bytes of an object of %d bytes cannot hold a trailer", len(tail), size)
	}
	return parseTail(r, size, name, nil, tail, size-int64(len(tail)))
}

// parseTail checks the trailer, the header (unless head is nil) and the
// footer found in tail, which holds the object's bytes from tailPos to the
// end.
func parseTail(r io.ReaderAt, size int64, name string, head, tail []byte, tailPos int64) (*Reader, error) {
	trailerPos := size - TrailerSize
	trailer := tail[len(tail)-TrailerSize:]
	if err := checkTrailer(trailer, name, trailerPos); err != nil {
		return nil, err
	}
	if head != nil {
		if err := checkHeader(head, name); err != nil {
			return nil, err
		}
	}

	be := binary.BigEndian
	footerLen := int64(be.Uint32(trailer[trOffFooterLen:]))
	count := int64(be.Uint32(trailer[trOffCount:]))
	if footerLen != count*FooterEntrySize {
		return nil, corrupt(name, trailerPos, TrailerSize, ErrCorrupt, "footer length %d does not match %d chunks of %d bytes", footerLen, count, FooterEntrySize)
	}
	if footerLen > size-HeaderSize-TrailerSize {
		return nil, corrupt(name, trailerPos, TrailerSize, ErrCorrupt, "footer of %d bytes does not fit in an object of %d bytes", footerLen, size)
	}
	footerStart := trailerPos - footerLen
	var footer []byte
	if footerStart >= tailPos {
		footer = tail[footerStart-tailPos : len(tail)-TrailerSize]
	} else {
		if r == nil {
			return nil, corrupt(name, tailPos, size-tailPos, ErrTruncated, "footer starts at byte %d, before the %d bytes given", footerStart, size-tailPos)
		}
		footer = make([]byte, footerLen)
		if err := readAt(r, footer, footerStart, name); err != nil {
			return nil, err
		}
	}
	if want, got := be.Uint32(trailer[trOffFooterCRC:]), Checksum(footer); want != got {
		return nil, corrupt(name, footerStart, size-footerStart, ErrCRC, "footer CRC mismatch (want %s, got %s)", hex32(want), hex32(got))
	}

	rd := &Reader{
		r:           r,
		size:        size,
		name:        name,
		footerStart: footerStart,
		chunks:      make([]ChunkInfo, 0, count),
		byPartition: make(map[partitionKey][]int),
	}
	for i := range int(count) {
		c := decodeFooterEntry(footer[i*FooterEntrySize : (i+1)*FooterEntrySize])
		if reason := rd.checkEntry(c); reason != "" {
			return nil, corrupt(name, footerStart+int64(i)*FooterEntrySize, FooterEntrySize, ErrCorrupt, "footer entry %d: %s", i, reason)
		}
		k := partitionKey{c.TopicID, c.Partition}
		rd.byPartition[k] = append(rd.byPartition[k], i)
		rd.chunks = append(rd.chunks, c)
	}
	if end := rd.chunksEnd(); end != footerStart {
		return nil, corrupt(name, end, footerStart-end, ErrCorrupt, "bytes between the last chunk and the footer belong to no chunk")
	}
	return rd, nil
}

func checkHeader(head []byte, name string) error {
	switch {
	case string(head[:magicSize]) != HeaderMagic:
		return corrupt(name, 0, HeaderSize, ErrMagic, "header magic %q, want %q", head[:magicSize], HeaderMagic)
	case head[hdrOffVersion] != Version:
		return corrupt(name, 0, HeaderSize, ErrVersion, "header version %d, want %d", head[hdrOffVersion], Version)
	case head[hdrOffFlags] != 0:
		return corrupt(name, 0, HeaderSize, ErrCorrupt, "unknown header flags 0x%02x", head[hdrOffFlags])
	}
	for _, b := range head[hdrOffReserved:HeaderSize] {
		if b != 0 {
			return corrupt(name, 0, HeaderSize, ErrCorrupt, "reserved header bytes are not zero")
		}
	}
	return nil
}

func checkTrailer(trailer []byte, name string, pos int64) error {
	switch {
	case string(trailer[trOffMagic:]) != TrailerMagic:
		return corrupt(name, pos, TrailerSize, ErrMagic, "trailer magic %q, want %q", trailer[trOffMagic:], TrailerMagic)
	case trailer[trOffVersion] != Version:
		return corrupt(name, pos, TrailerSize, ErrVersion, "trailer version %d, want %d", trailer[trOffVersion], Version)
	}
	return nil
}

// chunksEnd is where the chunks read so far end.
func (rd *Reader) chunksEnd() int64 {
	if len(rd.chunks) == 0 {
		return HeaderSize
	}
	return rd.chunks[len(rd.chunks)-1].End()
}

// checkEntry checks footer entry c against the entries before it and
// returns what is wrong, or "".
func (rd *Reader) checkEntry(c ChunkInfo) string {
	switch want := rd.chunksEnd(); {
	case c.Pos != want:
		return fmt.Sprintf("chunk at byte %d, want %d (chunks are back to back)", c.Pos, want)
	case c.Size < BatchHeaderSize || c.Size > rd.footerStart-c.Pos:
		return fmt.Sprintf("chunk size %d does not fit between byte %d and the footer at %d", c.Size, c.Pos, rd.footerStart)
	case c.Batches < 1 || int64(c.Batches) > c.Size/BatchHeaderSize:
		return fmt.Sprintf("%d batches cannot fill %d bytes", c.Batches, c.Size)
	case c.StoredBase < 0:
		return fmt.Sprintf("negative stored base %d", c.StoredBase)
	case c.Records < int64(c.Batches) || c.Records > math.MaxInt64-c.StoredBase:
		return fmt.Sprintf("record count %d invalid for %d batches from stored base %d", c.Records, c.Batches, c.StoredBase)
	}
	if prev := rd.byPartition[partitionKey{c.TopicID, c.Partition}]; len(prev) > 0 {
		if p := rd.chunks[prev[len(prev)-1]]; c.StoredBase < p.NextOffset() {
			return fmt.Sprintf("stored base %d overlaps the partition's previous chunk, which ends at %d", c.StoredBase, p.NextOffset())
		}
	}
	return ""
}

func readAt(r io.ReaderAt, p []byte, off int64, name string) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt(name, off, int64(len(p)), ErrTruncated, "object ends after %d of these bytes", n)
	}
	return fmt.Errorf("segment: read %q bytes [%d, %d): %w", name, off, off+int64(len(p)), err)
}

// Name is the object name given to Open.
func (rd *Reader) Name() string { return rd.name }

// Size is the object size given to Open.
func (rd *Reader) Size() int64 { return rd.size }

// NumChunks is the number of chunks in the object.
func (rd *Reader) NumChunks() int { return len(rd.chunks) }

// Chunk returns footer entry i; it panics if i is out of range, like a slice.
func (rd *Reader) Chunk(i int) ChunkInfo { return rd.chunks[i] }

// Chunks returns a copy of the footer entries, in object order.
func (rd *Reader) Chunks() []ChunkInfo { return append([]ChunkInfo(nil), rd.chunks...) }

// FindChunk returns the index of the chunk of (topicID, partition) holding
// storedOffset, or false if none does.
func (rd *Reader) FindChunk(topicID [16]byte, partition int32, storedOffset int64) (int, bool) {
	idx := rd.byPartition[partitionKey{topicID, partition}]
	j := sort.Search(len(idx), func(j int) bool { return rd.chunks[idx[j]].StoredBase > storedOffset }) - 1
	if j < 0 || storedOffset >= rd.chunks[idx[j]].NextOffset() {
		return 0, false
	}
	return idx[j], true
}

// ReadChunk reads chunk i with one ReadAt, checks its CRC and batches (see
// ParseChunk) and that they agree with the footer entry.
func (rd *Reader) ReadChunk(i int) (Chunk, error) {
	if i < 0 || i >= len(rd.chunks) {
		return Chunk{}, fmt.Errorf("segment: read chunk %d of %q: out of range [0, %d)", i, rd.name, len(rd.chunks))
	}
	if rd.r == nil {
		return Chunk{}, fmt.Errorf("segment: read chunk %d of %q: opened by OpenTail without a reader", i, rd.name)
	}
	info := rd.chunks[i]
	buf := make([]byte, info.Size)
	if err := readAt(rd.r, buf, info.Pos, rd.name); err != nil {
		return Chunk{}, err
	}
	c, err := ParseChunk(buf, rd.name, info.Pos, info.CRC)
	if err != nil {
		return Chunk{}, err
	}
	var reason string
	switch {
	case c.StoredBase() != info.StoredBase:
		reason = fmt.Sprintf("first batch at stored offset %d, footer says %d", c.StoredBase(), info.StoredBase)
	case c.NextOffset()-c.StoredBase() != info.Records:
		reason = fmt.Sprintf("batches span %d offsets, footer says %d", c.NextOffset()-c.StoredBase(), info.Records)
	case len(c.batches) != int(info.Batches):
		reason = fmt.Sprintf("%d batches, footer says %d", len(c.batches), info.Batches)
	case c.FirstTimestamp() != info.FirstTimestamp || c.MaxTimestamp() != info.MaxTimestamp:
		reason = fmt.Sprintf("timestamps [%d, %d], footer says [%d, %d]", c.FirstTimestamp(), c.MaxTimestamp(), info.FirstTimestamp, info.MaxTimestamp)
	default:
		return c, nil
	}
	return Chunk{}, corrupt(rd.name, info.Pos, info.Size, ErrCorrupt, "chunk %d: %s", i, reason)
}
