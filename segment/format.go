package segment

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"strconv"
)

// Object layout constants. See FORMAT.md.
const (
	Version = 1 // format version written by Builder and read by Reader

	HeaderMagic  = "SHALESEG" // first 8 bytes of every object
	TrailerMagic = "SHALEEND" // last 8 bytes of every object

	HeaderSize      = 16 // magic 8, version 1, flags 1, reserved 6
	FooterEntrySize = 76 // one per chunk, see footer entry offsets below
	TrailerSize     = 21 // footer length 4, chunk count 4, footer CRC 4, version 1, magic 8

	// MaxChunks is the most chunks one object can hold: the footer length
	// must fit the trailer's uint32.
	MaxChunks = (1<<32 - 1) / FooterEntrySize

	magicSize = 8

	// header field offsets
	hdrOffVersion  = 8
	hdrOffFlags    = 9
	hdrOffReserved = 10

	// footer entry field offsets
	feOffTopic      = 0
	feOffPartition  = 16
	feOffPos        = 20
	feOffSize       = 28
	feOffStoredBase = 36
	feOffRecords    = 44
	feOffBatches    = 52
	feOffFirstTS    = 56
	feOffMaxTS      = 64
	feOffCRC        = 72

	// trailer field offsets
	trOffFooterLen = 0
	trOffCount     = 4
	trOffFooterCRC = 8
	trOffVersion   = 12
	trOffMagic     = 13
)

// castagnoli is the one CRC-32C table used for every checksum in this
// package: chunk, footer and (by Kafka's definition) record batch CRCs.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C of b, as used for chunk and footer CRCs. The
// engine uses it to checksum byte ranges it stores in its index.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// NewChecksum returns a hash computing Checksum over bytes written to it
// (for ranges streamed from a file).
func NewChecksum() hash.Hash32 { return crc32.New(castagnoli) }

// ChunkInfo is one footer entry: where a chunk lies in its object and what it
// holds. Offsets are stored offsets (see FORMAT.md).
type ChunkInfo struct {
	TopicID        [16]byte
	Partition      int32
	Pos            int64  // byte offset of the chunk in the object
	Size           int64  // chunk length in bytes
	StoredBase     int64  // stored offset of the first batch
	Records        int64  // offsets spanned: last offset + 1 - StoredBase
	Batches        int32  // number of record batches
	FirstTimestamp int64  // baseTimestamp of the first batch
	MaxTimestamp   int64  // max of the batches' maxTimestamp
	CRC            uint32 // CRC-32C of the chunk's bytes as stored
}

// End is the byte offset just past the chunk.
func (c ChunkInfo) End() int64 { return c.Pos + c.Size }

// NextOffset is the stored offset just past the chunk's last record.
func (c ChunkInfo) NextOffset() int64 { return c.StoredBase + c.Records }

func appendHeader(dst []byte) []byte {
	dst = append(dst, HeaderMagic...)
	dst = append(dst, Version, 0) // version, flags
	return append(dst, make([]byte, HeaderSize-hdrOffReserved)...)
}

func appendFooterEntry(dst []byte, c ChunkInfo) []byte {
	be := binary.BigEndian
	dst = append(dst, c.TopicID[:]...)
	dst = be.AppendUint32(dst, uint32(c.Partition))
	dst = be.AppendUint64(dst, uint64(c.Pos))
	dst = be.AppendUint64(dst, uint64(c.Size))
	dst = be.AppendUint64(dst, uint64(c.StoredBase))
	dst = be.AppendUint64(dst, uint64(c.Records))
	dst = be.AppendUint32(dst, uint32(c.Batches))
	dst = be.AppendUint64(dst, uint64(c.FirstTimestamp))
	dst = be.AppendUint64(dst, uint64(c.MaxTimestamp))
	return be.AppendUint32(dst, c.CRC)
}

func decodeFooterEntry(b []byte) ChunkInfo {
	be := binary.BigEndian
	var c ChunkInfo
	copy(c.TopicID[:], b[feOffTopic:feOffPartition])
	c.Partition = int32(be.Uint32(b[feOffPartition:]))
	c.Pos = int64(be.Uint64(b[feOffPos:]))
	c.Size = int64(be.Uint64(b[feOffSize:]))
	c.StoredBase = int64(be.Uint64(b[feOffStoredBase:]))
	c.Records = int64(be.Uint64(b[feOffRecords:]))
	c.Batches = int32(be.Uint32(b[feOffBatches:]))
	c.FirstTimestamp = int64(be.Uint64(b[feOffFirstTS:]))
	c.MaxTimestamp = int64(be.Uint64(b[feOffMaxTS:]))
	c.CRC = be.Uint32(b[feOffCRC:])
	return c
}

func appendTrailer(dst []byte, footerLen, count, footerCRC uint32) []byte {
	be := binary.BigEndian
	dst = be.AppendUint32(dst, footerLen)
	dst = be.AppendUint32(dst, count)
	dst = be.AppendUint32(dst, footerCRC)
	dst = append(dst, Version)
	return append(dst, TrailerMagic...)
}

func itoa(i int) string { return strconv.Itoa(i) }

func hex32(v uint32) string { return fmt.Sprintf("0x%08x", v) }
