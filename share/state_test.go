package share

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

var lim = Limits{Lock: 10 * time.Second, DeliveryLimit: 3}

func ack(first, last int64, types ...AckType) AckBatch {
	return AckBatch{First: first, Last: last, Types: types}
}

// TestAcquireAcceptAdvances proves that accepted records move the start
// offset past them and are never acquired again.
func TestAcquireAcceptAdvances(t *testing.T) {
	p := New(0)
	got := p.Acquire("a", 0, lim, 5, 10)
	if want := []Range{{0, 4, 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("acquire: %v, want %v", got, want)
	}
	if err := p.Acknowledge("a", 1, lim, []AckBatch{ack(0, 4, AckAccept)}, false); err != nil {
		t.Fatal(err)
	}
	if p.Start != 5 || len(p.Records) != 0 {
		t.Fatalf("start %d records %d, want 5 and 0", p.Start, len(p.Records))
	}
	if got := p.Acquire("b", 2, lim, 100, 10); !reflect.DeepEqual(got, []Range{{5, 9, 1}}) {
		t.Fatalf("second acquire: %v", got)
	}
}

// TestReleaseRedeliversUntilLimit proves a released record comes back with
// a higher delivery count and is archived once the limit is reached.
func TestReleaseRedeliversUntilLimit(t *testing.T) {
	p := New(0)
	for want := int16(1); want <= 3; want++ {
		got := p.Acquire("a", 0, lim, 1, 1)
		if !reflect.DeepEqual(got, []Range{{0, 0, want}}) {
			t.Fatalf("delivery %d: got %v", want, got)
		}
		if err := p.Acknowledge("a", 0, lim, []AckBatch{ack(0, 0, AckRelease)}, false); err != nil {
			t.Fatal(err)
		}
	}
	if p.Start != 1 || p.ArchivedTotal != 1 || p.Redelivered != 2 {
		t.Fatalf("after the limit: start %d archived %d redelivered %d", p.Start, p.ArchivedTotal, p.Redelivered)
	}
	if got := p.Acquire("a", 0, lim, 1, 1); got != nil {
		t.Fatalf("archived record acquired again: %v", got)
	}
}

// TestRejectNeverReturns proves rejected records are archived, never
// redelivered.
func TestRejectNeverReturns(t *testing.T) {
	p := New(0)
	p.Acquire("a", 0, lim, 3, 3)
	if err := p.Acknowledge("a", 0, lim, []AckBatch{ack(0, 2, AckAccept, AckReject, AckRelease)}, false); err != nil {
		t.Fatal(err)
	}
	got := p.Acquire("b", 0, lim, 10, 3)
	if !reflect.DeepEqual(got, []Range{{2, 2, 2}}) {
		t.Fatalf("after reject: %v, want only offset 2 again", got)
	}
}

// TestLockExpiry proves an expired lock makes the record available to
// another member, and the old holder's acknowledgement is refused.
func TestLockExpiry(t *testing.T) {
	p := New(0)
	p.Acquire("a", 0, lim, 2, 2)
	if p.Expire(9999, lim) {
		t.Fatal("expired before the deadline")
	}
	if !p.Expire(10000, lim) {
		t.Fatal("not expired at the deadline")
	}
	if got := p.Acquire("b", 10000, lim, 5, 2); !reflect.DeepEqual(got, []Range{{0, 1, 2}}) {
		t.Fatalf("reacquire: %v", got)
	}
	if err := p.Acknowledge("a", 10001, lim, []AckBatch{ack(0, 1, AckAccept)}, false); !errors.Is(err, ErrInvalidRecordState) {
		t.Fatalf("stale holder's ack: %v", err)
	}
	if err := p.Acknowledge("b", 10001, lim, []AckBatch{ack(0, 0, AckRenew)}, true); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if p.Records[0].Deadline != 20001 {
		t.Fatalf("renewed deadline %d", p.Records[0].Deadline)
	}
}

// TestAcknowledgeAllOrNothing proves a request with one bad batch changes
// nothing, and names the error Kafka uses.
func TestAcknowledgeAllOrNothing(t *testing.T) {
	cases := []struct {
		name    string
		batches []AckBatch
		want    error
	}{
		{"other member", []AckBatch{ack(0, 0, AckAccept), ack(5, 5, AckAccept)}, ErrInvalidRecordState},
		{"beyond end", []AckBatch{ack(0, 0, AckAccept), ack(8, 20, AckAccept)}, ErrInvalidRequest},
		{"overlap", []AckBatch{ack(0, 2, AckAccept), ack(2, 3, AckAccept)}, ErrInvalidRequest},
		{"types length", []AckBatch{ack(0, 2, AckAccept, AckAccept)}, ErrInvalidRequest},
		{"no types", []AckBatch{{First: 0, Last: 1}}, ErrInvalidRequest},
		{"unknown type", []AckBatch{ack(0, 0, 9)}, ErrInvalidRequest},
		{"renew not allowed", []AckBatch{ack(0, 0, AckRenew)}, ErrInvalidRequest},
		{"inverted", []AckBatch{ack(3, 2, AckAccept)}, ErrInvalidRequest},
	}
	for _, c := range cases {
		p := New(0)
		p.Acquire("a", 0, lim, 5, 10)
		p.Acquire("b", 0, lim, 5, 10)
		before := p.Marshal()
		if err := p.Acknowledge("a", 0, lim, c.batches, false); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if !reflect.DeepEqual(before, p.Marshal()) {
			t.Errorf("%s: state changed by a refused request", c.name)
		}
	}
}

// TestWindowBound proves acquisition never grows the in-flight window past
// MaxInFlight, and resumes once the front is acknowledged.
func TestWindowBound(t *testing.T) {
	p := New(0)
	n := 0
	for _, r := range p.Acquire("a", 0, lim, 5000, 1<<40) {
		n += int(r.Last - r.First + 1)
	}
	if n != MaxInFlight || p.End() != MaxInFlight {
		t.Fatalf("acquired %d, end %d; want %d", n, p.End(), MaxInFlight)
	}
	if got := p.Acquire("b", 0, lim, 10, 1<<40); got != nil {
		t.Fatalf("acquired past the window: %v", got)
	}
	if _, ok := p.NextAvailable(1 << 40); ok {
		t.Fatal("NextAvailable with a full window")
	}
	if err := p.Acknowledge("a", 0, lim, []AckBatch{ack(0, 9, AckAccept)}, false); err != nil {
		t.Fatal(err)
	}
	if got := p.Acquire("b", 0, lim, 100, 1<<40); !reflect.DeepEqual(got, []Range{{2000, 2009, 1}}) {
		t.Fatalf("after acks: %v", got)
	}
}

// TestReleaseMemberAndTruncate proves a departed member's records return,
// and log truncation moves the start past records the log lost.
func TestReleaseMemberAndTruncate(t *testing.T) {
	p := New(0)
	p.Acquire("a", 0, lim, 4, 10)
	p.Acquire("b", 0, lim, 2, 10)
	if !p.ReleaseMember("a", lim) || p.ReleaseMember("a", lim) {
		t.Fatal("ReleaseMember's report is wrong")
	}
	if off, ok := p.NextAvailable(10); !ok || off != 0 {
		t.Fatalf("NextAvailable %d %v", off, ok)
	}
	if !p.TruncateTo(5) || p.Start != 5 || len(p.Records) != 1 || p.Records[0].Member != "b" {
		t.Fatalf("truncate: start %d records %+v", p.Start, p.Records)
	}
	p.Reset(100)
	if p.Start != 100 || p.End() != 100 {
		t.Fatal("reset")
	}
}

// TestCodecRoundTrip proves Marshal and Unmarshal agree on a busy state.
func TestCodecRoundTrip(t *testing.T) {
	p := New(42)
	p.Acquire("member-a", 5, lim, 300, 1000)
	p.Acquire("member-b", 6, lim, 300, 1000)
	_ = p.Acknowledge("member-a", 7, lim, []AckBatch{ack(50, 60, AckRelease), ack(70, 80, AckReject)}, false)
	_ = p.Acknowledge("member-b", 7, lim, []AckBatch{ack(400, 410, AckAccept)}, false)
	b := p.Marshal()
	q, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip differs:\n%+v\n%+v", p.Count(), q.Count())
	}
	if len(b) > 200 {
		t.Errorf("600 records in %d bytes: runs should compress them", len(b))
	}
	for _, bad := range [][]byte{nil, {2}, b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if _, err := Unmarshal(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Unmarshal(%x): %v", bad, err)
		}
	}
}

// TestCountAcks proves acknowledgement batches are counted per record:
// one type for a whole range, or one type per offset.
func TestCountAcks(t *testing.T) {
	got := CountAcks([]AckBatch{
		{First: 0, Last: 9, Types: []AckType{AckAccept}},
		{First: 10, Last: 13, Types: []AckType{AckRelease, AckReject, AckAccept, AckGap}},
		{First: 20, Last: 19, Types: []AckType{AckAccept}}, // empty: counts nothing
	})
	want := map[AckType]int64{AckAccept: 11, AckRelease: 1, AckReject: 1, AckGap: 1}
	if len(got) != len(want) {
		t.Fatalf("CountAcks = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("CountAcks = %v, want %v", got, want)
		}
	}
	if AckRenew.String() != "renew" || AckType(9).String() != "unknown" {
		t.Fatal("AckType names")
	}
}

// TestSkipArchivesAbortedRecords proves Skip archives only the acquired
// records of the skipped range (an aborted transaction's, for
// read_committed), splits the acquired ranges around it, and moves the
// start offset past a skipped prefix.
func TestSkipArchivesAbortedRecords(t *testing.T) {
	p := New(0)
	got := p.Acquire("a", 0, lim, 10, 10)
	got = p.Skip("a", got, 3, 5)
	if want := []Range{{0, 2, 1}, {6, 9, 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("skip in the middle: %v, want %v", got, want)
	}
	if c := p.Count(); c.Archived != 3 || c.Acquired != 7 || p.ArchivedTotal != 3 {
		t.Fatalf("counts %+v, archived total %d; want 3 archived, 7 acquired", c, p.ArchivedTotal)
	}
	if err := p.Acknowledge("a", 1, lim, []AckBatch{ack(3, 3, AckAccept)}, false); !errors.Is(err, ErrInvalidRecordState) {
		t.Fatalf("accepting a skipped record: %v, want ErrInvalidRecordState", err)
	}
	if err := p.Acknowledge("a", 1, lim, []AckBatch{ack(0, 2, AckAccept)}, false); err != nil {
		t.Fatal(err)
	}
	if p.Start != 6 {
		t.Fatalf("start %d after accepting what precedes the skipped records, want 6", p.Start)
	}
	q := New(0)
	if got := q.Skip("b", q.Acquire("b", 0, lim, 4, 4), 0, 3); len(got) != 0 || q.Start != 4 {
		t.Fatalf("skip all: ranges %v start %d, want none and 4", got, q.Start)
	}
}
