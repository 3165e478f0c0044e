package segment

import (
	"errors"
	"hash/crc32"
	"io"
	"sort"
)

// Pieces is an object built in memory without copying its batches: a
// Builder writing to a *Pieces keeps each batch's bytes after its
// baseOffset by reference (batches of at least refMinBytes) and copies
// only the rest (header, rewritten baseOffsets, small batches, footer) into
// buffers of its own. An object built from a 100 MiB produce request is
// then the request's bytes plus a few hundred bytes, not a second copy.
//
// The caller must not modify the batches it gave AddChunk while the
// Pieces is in use. Pieces is an io.Writer that copies what it is given
// (as io.Writer requires); only the Builder passes bytes by reference.
// Reading (ReadAt, WriteTo, Checksum) is safe for concurrent use once the
// object is finished.
type Pieces struct {
	bufs  [][]byte
	ends  []int64 // ends[i]: object offset where bufs[i] ends
	owned bool    // the last buffer is Pieces' own (small writes append to it)
}

// refMinBytes is the smallest batch a Builder writing to Pieces keeps by
// reference: below it a copy costs less than a piece.
const refMinBytes = 4 << 10

// ownedBufBytes is the size of the buffers small writes are copied into.
const ownedBufBytes = 32 << 10

// Size is the object's size so far.
func (p *Pieces) Size() int64 {
	if len(p.ends) == 0 {
		return 0
	}
	return p.ends[len(p.ends)-1]
}

// Write copies b into the object.
func (p *Pieces) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		last := len(p.bufs) - 1
		if !p.owned || cap(p.bufs[last]) == len(p.bufs[last]) {
			p.bufs = append(p.bufs, make([]byte, 0, max(ownedBufBytes, min(len(b), 1<<20))))
			p.ends = append(p.ends, p.Size())
			p.owned, last = true, last+1
		}
		buf := p.bufs[last]
		m := min(len(b), cap(buf)-len(buf))
		p.bufs[last] = append(buf, b[:m]...)
		p.ends[last] += int64(m)
		b = b[m:]
	}
	return n, nil
}

// ref appends b to the object by reference.
func (p *Pieces) ref(b []byte) {
	if len(b) == 0 {
		return
	}
	p.bufs = append(p.bufs, b)
	p.ends = append(p.ends, p.Size()+int64(len(b)))
	p.owned = false
}

// ReadAt reads len(b) bytes of the object from off (io.ReaderAt).
func (p *Pieces) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("segment: Pieces.ReadAt: negative offset")
	}
	n := 0
	for i := p.find(off); i < len(p.bufs) && n < len(b); i++ {
		start := p.ends[i] - int64(len(p.bufs[i]))
		n += copy(b[n:], p.bufs[i][off+int64(n)-start:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// find returns the index of the piece holding object offset off.
func (p *Pieces) find(off int64) int {
	return sort.Search(len(p.ends), func(i int) bool { return p.ends[i] > off })
}

// WriteTo writes the whole object to w (io.WriterTo).
func (p *Pieces) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, b := range p.bufs {
		m, err := w.Write(b)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Checksum is the CRC-32C of the object's bytes [pos, pos+size), which
// must lie within it.
func (p *Pieces) Checksum(pos, size int64) uint32 {
	var crc uint32
	end := pos + size
	for i := p.find(pos); i < len(p.bufs) && pos < end; i++ {
		start := p.ends[i] - int64(len(p.bufs[i]))
		b := p.bufs[i][pos-start : min(end, p.ends[i])-start]
		crc = crc32.Update(crc, castagnoli, b)
		pos += int64(len(b))
	}
	return crc
}

// Reader returns a reader of the whole object, which also seeks and reads
// at offsets (for an upload that sizes, retries or splits it into parts).
func (p *Pieces) Reader() *io.SectionReader { return io.NewSectionReader(p, 0, p.Size()) }
