package agent

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Writing a Fetch answer without copying its records.
//
// kmsg encodes a response into one buffer, so a fetch answer's record
// batches (up to fetch.max.bytes, 50 MiB by default) would be copied into
// it, the buffer grown by doubling as they come. Instead, the record sets
// of at least spliceMinBytes are set aside: each is replaced by a 16-byte
// random marker while kmsg encodes the rest of the answer (a few hundred
// bytes), then the frame is written with writev as the encoded pieces
// between the markers and the record sets themselves, each behind its own
// length (the encoding kmsg gives a byte field: int32 before v12, an
// unsigned varint of length+1 from v12). The bytes on the wire are exactly
// what kmsg would have written (TestFetchFrameMatchesKmsg). A marker not
// found where kmsg must have put it falls back to the plain encoding.

// spliceMinBytes is the smallest record set written in place: below it
// the copy costs less than an extra piece in the writev.
const spliceMinBytes = 16 << 10

// markerSize is the length of the random marker standing for a record set.
const markerSize = 16

// fetchFrame frames resp (as appendResponse does) into pieces to be written
// in order: encoded parts in dst's storage and the record sets of at least
// spliceMinBytes as they are. It returns nil when no record set is that
// large or the markers are not found; resp is unchanged on return.
func fetchFrame(dst []byte, corr int32, resp *kmsg.FetchResponse) net.Buffers {
	var sets []*kmsg.FetchResponseTopicPartition
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if p := &resp.Topics[i].Partitions[j]; len(p.RecordBatches) >= spliceMinBytes {
				sets = append(sets, p)
			}
		}
	}
	if len(sets) == 0 {
		return nil
	}
	dst = dst[:0]
	var marker [markerSize]byte
	binary.LittleEndian.PutUint64(marker[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(marker[8:], rand.Uint64())
	recs := make([][]byte, len(sets))
	for i, p := range sets {
		recs[i], p.RecordBatches = p.RecordBatches, marker[:]
	}
	dst = appendResponse(dst, corr, resp)
	for i, p := range sets {
		p.RecordBatches = recs[i]
	}
	// The marker's length as kmsg encoded it: flexible versions use an
	// unsigned varint of length+1, older ones an int32.
	flexible := resp.Version >= 12
	var lenOf func(dst []byte, n int) []byte
	var want []byte
	if flexible {
		lenOf = func(dst []byte, n int) []byte { return binary.AppendUvarint(dst, uint64(n)+1) }
	} else {
		lenOf = func(dst []byte, n int) []byte { return binary.BigEndian.AppendUint32(dst, uint32(n)) }
	}
	want = lenOf(nil, markerSize)
	// Every piece but the record sets lives in one buffer after the frame,
	// so that the pieces stay valid (no append re-allocates under them).
	frameLen := len(dst)
	pieces := make(net.Buffers, 0, 3*len(sets)+1)
	prefixes := make([]byte, 0, len(sets)*binary.MaxVarintLen64)
	total := frameLen - len(sets)*(len(want)+markerSize)
	from := 0
	for i := range sets {
		at := bytes.Index(dst[from:frameLen], marker[:])
		if at < 0 {
			return nil
		}
		at += from
		if at-len(want) < from || !bytes.Equal(dst[at-len(want):at], want) {
			return nil
		}
		start := len(prefixes)
		prefixes = lenOf(prefixes, len(recs[i]))
		pieces = append(pieces, dst[from:at-len(want)], prefixes[start:len(prefixes):len(prefixes)], recs[i])
		total += len(prefixes) - start + len(recs[i])
		from = at + markerSize
	}
	if bytes.Contains(dst[from:frameLen], marker[:]) {
		return nil
	}
	pieces = append(pieces, dst[from:frameLen])
	binary.BigEndian.PutUint32(dst[:4], uint32(total-4))
	return pieces
}
