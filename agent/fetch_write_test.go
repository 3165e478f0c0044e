package agent

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchFrameMatchesKmsg proves that a Fetch answer written with its
// large record sets in place is, byte for byte, the frame kmsg encodes, at
// every version the agent serves (int32 and varint lengths, one- to
// three-byte varints), with small, empty and null record sets beside the
// large ones, and that the response is left as it was.
func TestFetchFrameMatchesKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{spliceMinBytes, spliceMinBytes + 1, 100 << 10, 3 << 20, 17, 0, -1}
	for v := int16(4); v <= 18; v++ {
		for trial := range 8 {
			resp := kmsg.NewPtrFetchResponse()
			resp.Version = v
			resp.SessionID = int32(trial)
			var large int
			for ti := range 1 + rng.IntN(3) {
				ot := kmsg.NewFetchResponseTopic()
				ot.Topic = string(rune('a' + ti))
				ot.TopicID[0] = byte(ti + 1)
				for pi := range 1 + rng.IntN(4) {
					op := kmsg.NewFetchResponseTopicPartition()
					op.Partition = int32(pi)
					op.HighWatermark = rng.Int64N(1 << 40)
					switch n := sizes[rng.IntN(len(sizes))]; {
					case n < 0:
						op.RecordBatches = nil
					default:
						op.RecordBatches = make([]byte, n)
						for i := range op.RecordBatches {
							op.RecordBatches[i] = byte(rng.Uint32())
						}
						if n >= spliceMinBytes {
							large++
						}
					}
					ot.Partitions = append(ot.Partitions, op)
				}
				resp.Topics = append(resp.Topics, ot)
			}
			want := appendResponse(nil, 42, resp)
			pieces := fetchFrame(make([]byte, 0, 8), 42, resp)
			if large == 0 {
				if pieces != nil {
					t.Fatalf("v%d: no large record set, yet %d pieces", v, len(pieces))
				}
				continue
			}
			if pieces == nil {
				t.Fatalf("v%d: %d large record sets, fell back to the plain encoding", v, large)
			}
			if len(pieces) != 3*large+1 { // per set: what precedes it, its length, itself
				t.Fatalf("v%d: %d pieces for %d large record sets", v, len(pieces), large)
			}
			if got := bytes.Join(pieces, nil); !bytes.Equal(got, want) {
				t.Fatalf("v%d trial %d: frame differs from kmsg's (%d bytes, want %d)", v, trial, len(got), len(want))
			}
			if again := appendResponse(nil, 42, resp); !bytes.Equal(again, want) {
				t.Fatalf("v%d: fetchFrame changed the response", v)
			}
		}
	}
}

// TestFetchFrameNoLargeSet proves that an answer whose record sets are all
// below spliceMinBytes is left to kmsg's plain encoding.
func TestFetchFrameNoLargeSet(t *testing.T) {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 12
	ot := kmsg.NewFetchResponseTopic()
	op := kmsg.NewFetchResponseTopicPartition()
	op.RecordBatches = make([]byte, spliceMinBytes-1)
	ot.Partitions = append(ot.Partitions, op)
	resp.Topics = append(resp.Topics, ot)
	if pieces := fetchFrame(nil, 1, resp); pieces != nil {
		t.Fatalf("a record set below %d bytes was spliced: %d pieces", spliceMinBytes, len(pieces))
	}
}
