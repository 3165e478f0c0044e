package segment

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestControlBatch proves a marker built by ControlBatch is a valid v2
// batch (CRC checked) with Kafka's control layout: control and
// transactional bits, the producer's ID and epoch, no sequence, one
// record whose key names commit or abort and whose value is an
// EndTxnMarker with the coordinator epoch, as kmsg decodes them.
func TestControlBatch(t *testing.T) {
	for _, commit := range []bool{true, false} {
		raw := ControlBatch(4242, 7, commit, 3, 1_700_000_000_000)
		bs, err := SplitBatches(raw, true)
		if err != nil || len(bs) != 1 {
			t.Fatalf("commit=%v: split: %d batches, %v", commit, len(bs), err)
		}
		h := bs[0].Header
		if !h.IsControl() || !h.IsTransactional() || h.ProducerID != 4242 || h.ProducerEpoch != 7 ||
			h.BaseSequence != -1 || h.RecordCount != 1 || h.LastOffsetDelta != 0 || h.MaxTimestamp != 1_700_000_000_000 {
			t.Fatalf("commit=%v: header %+v", commit, h)
		}
		want := kmsg.ControlRecordKeyTypeAbort
		if commit {
			want = kmsg.ControlRecordKeyTypeCommit
		}
		if typ, ok := ControlType(raw); !ok || typ != want {
			t.Fatalf("commit=%v: ControlType %v %v, want %v", commit, typ, ok, want)
		}
		recs, err := DecodeRecords(raw)
		if err != nil || len(recs) != 1 {
			t.Fatalf("records: %v", err)
		}
		var m kmsg.EndTxnMarker
		if err := m.ReadFrom(recs[0].Value); err != nil || m.CoordinatorEpoch != 3 || m.Version != 0 {
			t.Fatalf("marker value %+v: %v", m, err)
		}
	}
}

// FuzzControlType proves ControlType never panics and answers only for
// control batches.
func FuzzControlType(f *testing.F) {
	f.Add(ControlBatch(1, 0, true, 0, 0))
	f.Add(ControlBatch(1, 0, false, 0, 0)[:70])
	_, _, batch := fuzzSeeds(f)
	f.Add(batch)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, ok := ControlType(raw); ok {
			if h, err := ParseBatchHeader(raw); err != nil || !h.IsControl() {
				t.Fatalf("ControlType accepted a non-control batch: %v", err)
			}
		}
	})
}
