package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// Builder writes one object to an io.Writer: the header, then one chunk per
// AddChunk call, then the footer and trailer on Finish. It does not buffer;
// wrap the writer in a bufio.Writer when writes are costly. Writing to a
// *Pieces, it keeps large batches by reference instead (see Pieces). A Builder is not
// safe for concurrent use. After a write error or Finish every call returns
// an error matching ErrFinished (and the write error, if any).
type Builder struct {
	w      io.Writer
	n      int64
	chunks []ChunkInfo
	next   map[partitionKey]int64 // next free stored offset of partitions already in the object
	spans  []int64                // scratch: offset span of each batch of the current chunk
	err    error                  // sticky; set by a write error or Finish
	prefix [baseOffsetSize]byte
}

type partitionKey struct {
	topic     [16]byte
	partition int32
}

// NewBuilder returns a Builder writing to w. Nothing is written until the
// first AddChunk or Finish.
func NewBuilder(w io.Writer) *Builder {
	return &Builder{w: w, next: make(map[partitionKey]int64)}
}

// Size returns the number of bytes written so far.
func (b *Builder) Size() int64 { return b.n }

// AddChunk writes batches as one chunk of (topicID, partition). Each element
// of batches must be exactly one whole Kafka v2 record batch; batch CRCs are
// not checked here (the caller validated them on the way in, see
// SplitBatches). The batches are written verbatim except baseOffset, which is
// rewritten so they are consecutive from storedBase: batch i gets storedBase
// plus the offset spans (lastOffsetDelta+1) of the batches before it. The
// caller's slices are not modified.
//
// A partition may get several chunks; each must start at or after the end of
// the previous one (ErrInvalidChunk). A chunk that cannot be built
// (ErrInvalidChunk, or the batch error) leaves the Builder usable; a write
// error does not.
func (b *Builder) AddChunk(topicID [16]byte, partition int32, storedBase int64, batches [][]byte) (ChunkInfo, error) {
	if b.err != nil {
		return ChunkInfo{}, b.err
	}
	info, err := b.planChunk(topicID, partition, storedBase, batches)
	if err != nil {
		return ChunkInfo{}, fmt.Errorf("add chunk %x/%d: %w", topicID, partition, err)
	}
	if b.n == 0 {
		if err := b.write(appendHeader(make([]byte, 0, HeaderSize))); err != nil {
			return ChunkInfo{}, err
		}
	}
	info.Pos = b.n
	var crc uint32
	off := storedBase
	for i, raw := range batches {
		binary.BigEndian.PutUint64(b.prefix[:], uint64(off))
		crc = crc32.Update(crc, castagnoli, b.prefix[:])
		crc = crc32.Update(crc, castagnoli, raw[baseOffsetSize:])
		if err := b.write(b.prefix[:]); err != nil {
			return ChunkInfo{}, err
		}
		if p, ok := b.w.(*Pieces); ok && len(raw) >= refMinBytes {
			p.ref(raw[baseOffsetSize:]) // the batch as it is (Pieces)
			b.n += int64(len(raw) - baseOffsetSize)
		} else if err := b.write(raw[baseOffsetSize:]); err != nil {
			return ChunkInfo{}, err
		}
		off += b.spans[i]
	}
	info.CRC = crc
	b.chunks = append(b.chunks, info)
	b.next[partitionKey{topicID, partition}] = off
	return info, nil
}

// planChunk validates an AddChunk call and computes everything of its
// ChunkInfo except Pos and CRC, filling b.spans.
func (b *Builder) planChunk(topicID [16]byte, partition int32, storedBase int64, batches [][]byte) (ChunkInfo, error) {
	switch {
	case len(batches) == 0:
		return ChunkInfo{}, fmt.Errorf("%w: no batches", ErrInvalidChunk)
	case len(batches) > math.MaxInt32:
		return ChunkInfo{}, fmt.Errorf("%w: %d batches", ErrInvalidChunk, len(batches))
	case len(b.chunks) >= MaxChunks:
		return ChunkInfo{}, fmt.Errorf("%w: object already holds %d chunks", ErrInvalidChunk, len(b.chunks))
	case storedBase < 0:
		return ChunkInfo{}, fmt.Errorf("%w: negative stored base %d", ErrInvalidChunk, storedBase)
	}
	if next, ok := b.next[partitionKey{topicID, partition}]; ok && storedBase < next {
		return ChunkInfo{}, fmt.Errorf("%w: stored base %d overlaps the partition's previous chunk, which ends at %d", ErrInvalidChunk, storedBase, next)
	}
	info := ChunkInfo{
		TopicID:    topicID,
		Partition:  partition,
		StoredBase: storedBase,
		Batches:    int32(len(batches)),
	}
	b.spans = b.spans[:0]
	off := storedBase
	for i, raw := range batches {
		h, berr := parseBatchHeader(raw)
		if berr != nil {
			return ChunkInfo{}, fmt.Errorf("batch %d: %s: %w", i, berr.reason, berr.err)
		}
		if int(h.Length) != len(raw) {
			return ChunkInfo{}, fmt.Errorf("%w: batch %d is %d bytes but its header says %d", ErrInvalidChunk, i, len(raw), h.Length)
		}
		span := h.OffsetSpan()
		if off > math.MaxInt64-span {
			return ChunkInfo{}, fmt.Errorf("%w: stored offsets overflow int64", ErrInvalidChunk)
		}
		off += span
		b.spans = append(b.spans, span)
		info.Size += int64(len(raw))
		if i == 0 {
			info.FirstTimestamp = h.BaseTimestamp
			info.MaxTimestamp = h.MaxTimestamp
		}
		info.MaxTimestamp = max(info.MaxTimestamp, h.MaxTimestamp)
	}
	info.Records = off - storedBase
	return info, nil
}

// Finish writes the footer and trailer (and the header, for an object
// without chunks) and returns the footer entries, in chunk order.
func (b *Builder) Finish() ([]ChunkInfo, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.n == 0 {
		if err := b.write(appendHeader(make([]byte, 0, HeaderSize))); err != nil {
			return nil, err
		}
	}
	tail := make([]byte, 0, len(b.chunks)*FooterEntrySize+TrailerSize)
	for _, c := range b.chunks {
		tail = appendFooterEntry(tail, c)
	}
	footerLen := len(tail)
	tail = appendTrailer(tail, uint32(footerLen), uint32(len(b.chunks)), Checksum(tail))
	if err := b.write(tail); err != nil {
		return nil, err
	}
	b.err = fmt.Errorf("%w: Finish already called", ErrFinished)
	return append([]ChunkInfo(nil), b.chunks...), nil
}

func (b *Builder) write(p []byte) error {
	n, err := b.w.Write(p)
	b.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		b.err = fmt.Errorf("%w: write failed at byte %d: %w", ErrFinished, b.n, err)
		return b.err
	}
	return nil
}
