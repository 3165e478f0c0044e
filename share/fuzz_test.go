package share

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzUnmarshal proves Unmarshal never panics nor allocates without bound
// on any input, and that what it accepts re-encodes to a state it decodes
// to the same value (so a stored state means one thing).
func FuzzUnmarshal(f *testing.F) {
	p := New(7)
	p.Acquire("m", 1, lim, 20, 100)
	_ = p.Acknowledge("m", 1, lim, []AckBatch{ack(10, 12, AckAccept), ack(15, 15, AckRelease)}, false)
	f.Add(p.Marshal())
	f.Add(New(0).Marshal())
	f.Add([]byte{1, 0, 0, 0, 2, 0, 1, 2, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if len(q.Records) > MaxInFlight {
			t.Fatalf("%d records", len(q.Records))
		}
		again := q.Marshal()
		r, err := Unmarshal(again)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if !bytes.Equal(again, r.Marshal()) {
			t.Fatal("encoding is not stable")
		}
	})
}
