package share

import (
	"errors"
	"time"
)

// RecordState is the state of one in-flight record.
type RecordState uint8

// The record states of KIP-932.
const (
	Available RecordState = iota
	Acquired
	Acknowledged
	Archived
	numStates
)

func (s RecordState) String() string {
	switch s {
	case Available:
		return "available"
	case Acquired:
		return "acquired"
	case Acknowledged:
		return "acknowledged"
	case Archived:
		return "archived"
	}
	return "unknown"
}

// AckType is an acknowledgement type of ShareFetch and ShareAcknowledge.
type AckType int8

// Kafka's AcknowledgeType values (KIP-932; Renew is KIP-1222).
const (
	AckGap     AckType = 0 // no record at this offset (control batch, compacted): archive
	AckAccept  AckType = 1
	AckRelease AckType = 2
	AckReject  AckType = 3
	AckRenew   AckType = 4
)

func (t AckType) String() string {
	switch t {
	case AckGap:
		return "gap"
	case AckAccept:
		return "accept"
	case AckRelease:
		return "release"
	case AckReject:
		return "reject"
	case AckRenew:
		return "renew"
	}
	return "unknown"
}

// CountAcks returns how many records batches acknowledge with each type.
func CountAcks(batches []AckBatch) map[AckType]int64 {
	out := map[AckType]int64{}
	for _, b := range batches {
		switch n := b.Last - b.First + 1; {
		case n <= 0:
		case len(b.Types) == 1:
			out[b.Types[0]] += n
		default:
			for _, t := range b.Types[:min(int64(len(b.Types)), n)] {
				out[t]++
			}
		}
	}
	return out
}

// Bounds and defaults.
const (
	// MaxInFlight bounds End-Start (Kafka's
	// group.share.partition.max.record.locks).
	MaxInFlight = 2000
	// DefaultLockDuration is group.share.record.lock.duration.ms.
	DefaultLockDuration = 30 * time.Second
	// DefaultDeliveryLimit is group.share.delivery.count.limit.
	DefaultDeliveryLimit = 5
	// MaxDeliveryLimit bounds a configured delivery limit (Kafka: 10).
	MaxDeliveryLimit = 10
	// MaxMemberID bounds a member ID (Kafka's are UUIDs, 22-36 bytes).
	MaxMemberID = 255
)

// Errors of Acknowledge.
var (
	ErrInvalidRequest     = errors.New("share: invalid acknowledgement")
	ErrInvalidRecordState = errors.New("share: record not acquired by this member")
)

// Record is one in-flight record.
type Record struct {
	State RecordState
	// Count is the delivery count: how many times it was acquired.
	Count int16
	// Member holds the record while Acquired ("" otherwise).
	Member string
	// Deadline is the lock's expiry (Unix ms) while Acquired.
	Deadline int64
}

// Partition is a share-partition's state.
type Partition struct {
	// Start is the share-partition start offset (SPSO).
	Start int64
	// Records are the in-flight records, at offsets Start...End()-1.
	Records []Record
	// Redelivered counts acquisitions of records delivered before, and
	// ArchivedTotal records archived without being accepted (rejected,
	// gaps, delivery limit reached): cumulative, for operators.
	Redelivered   int64
	ArchivedTotal int64
}

// New returns the state of a share-partition starting at start.
func New(start int64) *Partition { return &Partition{Start: start} }

// End is one past the last in-flight offset.
func (p *Partition) End() int64 { return p.Start + int64(len(p.Records)) }

// Range is a run of offsets acquired with one delivery count.
type Range struct {
	First, Last int64
	Count       int16
}

// AckBatch is one acknowledgement batch: Types holds one type for the
// whole range, or one per offset.
type AckBatch struct {
	First, Last int64
	Types       []AckType
}

// Limits are a group's settings applied to its partitions.
type Limits struct {
	Lock          time.Duration // acquisition lock duration
	DeliveryLimit int16         // acquisitions before a record is archived
}

func (l Limits) deliveryLimit() int16 {
	if l.DeliveryLimit <= 0 {
		return DefaultDeliveryLimit
	}
	return l.DeliveryLimit
}

func (l Limits) lock() time.Duration {
	if l.Lock <= 0 {
		return DefaultLockDuration
	}
	return l.Lock
}

// release makes the record at index i available again, or archives it
// when it reached the delivery limit.
func (p *Partition) release(i int, lim Limits) {
	r := &p.Records[i]
	if r.Count >= lim.deliveryLimit() {
		r.State = Archived
		p.ArchivedTotal++
	} else {
		r.State = Available
	}
	r.Member, r.Deadline = "", 0
}

// advance drops finished records from the front.
func (p *Partition) advance() {
	n := 0
	for n < len(p.Records) && (p.Records[n].State == Acknowledged || p.Records[n].State == Archived) {
		n++
	}
	if n > 0 {
		p.Start += int64(n)
		p.Records = append(p.Records[:0:0], p.Records[n:]...)
	}
}

// Expire releases every record whose lock expired at now (Unix ms). It
// reports whether anything changed.
func (p *Partition) Expire(now int64, lim Limits) bool {
	changed := false
	for i := range p.Records {
		if r := &p.Records[i]; r.State == Acquired && r.Deadline <= now {
			p.release(i, lim)
			changed = true
		}
	}
	if changed {
		p.advance()
	}
	return changed
}

// NextAvailable returns the first offset below hwm that Acquire could
// acquire (after Expire), and false when there is none.
func (p *Partition) NextAvailable(hwm int64) (int64, bool) {
	for i, r := range p.Records {
		o := p.Start + int64(i)
		if o >= hwm {
			return 0, false
		}
		if r.State == Available {
			return o, true
		}
	}
	if e := p.End(); e < hwm && e-p.Start < MaxInFlight {
		return e, true
	}
	return 0, false
}

// Acquire acquires for member up to max available records below until
// (exclusive), locked for lim.Lock from now (Unix ms). Records are taken in
// offset order; the window never grows past MaxInFlight. It returns the
// acquired runs (consecutive offsets with one delivery count).
func (p *Partition) Acquire(member string, now int64, lim Limits, max int, until int64) []Range {
	var out []Range
	deadline := now + lim.lock().Milliseconds()
	take := func(i int) {
		r := &p.Records[i]
		r.State, r.Member, r.Deadline = Acquired, member, deadline
		r.Count++
		if r.Count > 1 {
			p.Redelivered++
		}
		o := p.Start + int64(i)
		if n := len(out); n > 0 && out[n-1].Last == o-1 && out[n-1].Count == r.Count {
			out[n-1].Last = o
			return
		}
		out = append(out, Range{First: o, Last: o, Count: r.Count})
	}
	got := 0
	for i := range p.Records {
		if got >= max || p.Start+int64(i) >= until {
			return out
		}
		if p.Records[i].State != Available {
			continue
		}
		if p.Records[i].Count >= lim.deliveryLimit() {
			p.Records[i].State = Archived
			p.ArchivedTotal++
			continue
		}
		take(i)
		got++
	}
	for got < max && p.End() < until && len(p.Records) < MaxInFlight {
		p.Records = append(p.Records, Record{})
		take(len(p.Records) - 1)
		got++
	}
	p.advance()
	return out
}

// Acknowledge applies member's acknowledgement batches at now (Unix ms),
// all or none: ErrInvalidRequest or ErrInvalidRecordState leave p
// unchanged. Offsets below Start (already finished) are ignored.
func (p *Partition) Acknowledge(member string, now int64, lim Limits, batches []AckBatch, allowRenew bool) error {
	maxType := AckReject
	if allowRenew {
		maxType = AckRenew
	}
	prev := int64(-1)
	for _, b := range batches {
		if b.First > b.Last || b.First <= prev || b.First < 0 || len(b.Types) == 0 ||
			(len(b.Types) > 1 && int64(len(b.Types)) != b.Last-b.First+1) {
			return ErrInvalidRequest
		}
		prev = b.Last
		for _, t := range b.Types {
			if t < AckGap || t > maxType {
				return ErrInvalidRequest
			}
		}
		if b.Last >= p.End() {
			return ErrInvalidRequest
		}
		for o := max(b.First, p.Start); o <= b.Last; o++ {
			r := p.Records[o-p.Start]
			if r.State != Acquired || r.Member != member {
				return ErrInvalidRecordState
			}
		}
	}
	for _, b := range batches {
		for o := max(b.First, p.Start); o <= b.Last; o++ {
			t := b.Types[0]
			if len(b.Types) > 1 {
				t = b.Types[o-b.First]
			}
			i := int(o - p.Start)
			r := &p.Records[i]
			switch t {
			case AckAccept:
				r.State, r.Member, r.Deadline = Acknowledged, "", 0
			case AckRelease:
				p.release(i, lim)
			case AckGap, AckReject:
				r.State, r.Member, r.Deadline = Archived, "", 0
				p.ArchivedTotal++
			case AckRenew:
				r.Deadline = now + lim.lock().Milliseconds()
			}
		}
	}
	p.advance()
	return nil
}

// ReleaseMember releases every record member holds (it left the group or
// closed its share session). It reports whether anything changed.
func (p *Partition) ReleaseMember(member string, lim Limits) bool {
	changed := false
	for i := range p.Records {
		if r := &p.Records[i]; r.State == Acquired && r.Member == member {
			p.release(i, lim)
			changed = true
		}
	}
	if changed {
		p.advance()
	}
	return changed
}

// TruncateTo moves Start up to logStart when the log no longer holds the
// records below it (retention, DeleteRecords). It reports whether it moved.
func (p *Partition) TruncateTo(logStart int64) bool {
	if logStart <= p.Start {
		return false
	}
	if logStart >= p.End() {
		p.Records = nil
	} else {
		p.Records = append(p.Records[:0:0], p.Records[logStart-p.Start:]...)
	}
	p.Start = logStart
	p.advance()
	return true
}

// Reset puts Start at offset and forgets every in-flight record
// (AlterShareGroupOffsets, with the group empty).
func (p *Partition) Reset(offset int64) {
	p.Start, p.Records = offset, nil
}

// Counts is a summary of the in-flight records.
type Counts struct {
	Available, Acquired, Acknowledged, Archived int
}

// Count summarizes the in-flight records (as stored; call Expire first for
// the view at a given time).
func (p *Partition) Count() Counts {
	var c Counts
	for _, r := range p.Records {
		switch r.State {
		case Available:
			c.Available++
		case Acquired:
			c.Acquired++
		case Acknowledged:
			c.Acknowledged++
		case Archived:
			c.Archived++
		}
	}
	return c
}

// Skip archives the records of ranges (just acquired by member) that lie
// in [first, last] — records a read_committed share group must never
// deliver (an aborted transaction's) — and returns ranges without them.
func (p *Partition) Skip(member string, ranges []Range, first, last int64) []Range {
	var out []Range
	for _, rg := range ranges {
		if rg.Last < first || rg.First > last {
			out = append(out, rg)
			continue
		}
		for o := max(rg.First, first, p.Start); o <= min(rg.Last, last) && o < p.End(); o++ {
			if r := &p.Records[o-p.Start]; r.State == Acquired && r.Member == member {
				r.State, r.Member, r.Deadline = Archived, "", 0
				p.ArchivedTotal++
			}
		}
		if rg.First < first {
			out = append(out, Range{First: rg.First, Last: first - 1, Count: rg.Count})
		}
		if rg.Last > last {
			out = append(out, Range{First: last + 1, Last: rg.Last, Count: rg.Count})
		}
	}
	p.advance()
	return out
}
