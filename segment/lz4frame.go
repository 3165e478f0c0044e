package segment

import (
	"encoding/binary"

	"github.com/pierrec/lz4/v4"
)

// LZ4 frames decoded in place.
//
// Kafka's lz4 codec is the LZ4 frame format. pierrec/lz4's Reader copies
// each block through its own buffers and checks the frame's xxHash-32
// content and block checksums; a batch's CRC-32C, which every reader of a
// stored batch has checked by then (span.ParseSpan, Produce), already
// covers every compressed byte, so those checksums add nothing but a second
// pass over the data. decodeLZ4Frame decodes the common frame (one frame of
// independent blocks, no dictionary) block by block with lz4.UncompressBlock
// straight from the batch into the decoder's buffer, skipping the xxHash
// fields; anything else (linked blocks, a dictionary ID, another version,
// bytes after the frame, or any malformation) returns ok false, and the
// caller decodes with pierrec's Reader, whose verdict stands
// (FuzzLZ4Frame checks the two agree on every input the fast path takes).

// LZ4 frame layout (lz4_Frame_format.md).
const (
	lz4Magic        = 0x184D2204
	lz4FlagVersion  = 0xC0 // FLG bits 7-6: version, must be 01
	lz4FlagIndep    = 0x20 // blocks do not refer to earlier blocks
	lz4FlagBlockSum = 0x10 // each block is followed by its xxHash-32
	lz4FlagSize     = 0x08 // the descriptor holds the content size (8 bytes)
	lz4FlagSum      = 0x04 // the frame ends with the content's xxHash-32
	lz4FlagDict     = 0x01 // the descriptor holds a dictionary ID
	lz4Uncompressed = 0x80000000
)

// lz4BlockMax is the largest decoded block per BD block size code (4-7).
var lz4BlockMax = [8]int{4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20}

// decodeLZ4Frame appends the content of the LZ4 frame in to dst, bounded by
// MaxDecompressedBytes. ok is false when the frame is not the common kind
// or is malformed: dst's new bytes are then undefined and the caller falls
// back to a full decoder.
func decodeLZ4Frame(dst, in []byte) (_ []byte, ok bool) {
	if len(in) < 7 || binary.LittleEndian.Uint32(in) != lz4Magic {
		return dst, false
	}
	flg, bd := in[4], in[5]
	if flg&lz4FlagVersion != 0x40 || flg&lz4FlagIndep == 0 || flg&lz4FlagDict != 0 || flg&0x02 != 0 || bd&0x8F != 0 {
		return dst, false
	}
	blockMax := lz4BlockMax[bd>>4&7]
	if blockMax == 0 {
		return dst, false
	}
	p := 6
	size := int64(-1)
	if flg&lz4FlagSize != 0 {
		if len(in) < p+8 {
			return dst, false
		}
		size = int64(binary.LittleEndian.Uint64(in[p:]))
		p += 8
		if size < 0 || size > MaxDecompressedBytes {
			return dst, false
		}
	}
	p++ // header checksum: the batch CRC covers it
	start := len(dst)
	if size >= 0 && cap(dst)-start < int(size) {
		grown := make([]byte, start, start+int(size))
		copy(grown, dst)
		dst = grown
	}
	for {
		if len(in) < p+4 {
			return dst, false
		}
		bs := binary.LittleEndian.Uint32(in[p:])
		p += 4
		if bs == 0 { // end mark
			break
		}
		n := int(bs &^ lz4Uncompressed)
		if n > len(in)-p || n > blockMax {
			return dst, false
		}
		block := in[p : p+n]
		p += n
		if flg&lz4FlagBlockSum != 0 {
			p += 4
		}
		if len(dst)-start+blockMax > MaxDecompressedBytes+blockMax {
			return dst, false
		}
		if cap(dst)-len(dst) < blockMax {
			grown := make([]byte, len(dst), max(2*cap(dst), len(dst)+blockMax))
			copy(grown, dst)
			dst = grown
		}
		if bs&lz4Uncompressed != 0 {
			dst = append(dst, block...)
			continue
		}
		m, err := lz4.UncompressBlock(block, dst[len(dst):len(dst)+blockMax])
		if err != nil {
			return dst, false
		}
		dst = dst[:len(dst)+m]
	}
	if flg&lz4FlagSum != 0 {
		p += 4
	}
	if p != len(in) || (size >= 0 && int64(len(dst)-start) != size) || len(dst)-start > MaxDecompressedBytes {
		return dst, false
	}
	return dst, true
}
