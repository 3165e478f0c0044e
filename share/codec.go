package share

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorrupt means bytes given to Unmarshal are not a share-partition state.
var ErrCorrupt = errors.New("share: corrupt state")

// The encoding, version 1 (stored in etcd, one value per share-partition):
//
//	byte     version (1)
//	varint   Start
//	uvarint  Redelivered
//	uvarint  ArchivedTotal
//	uvarint  number of records (<= MaxInFlight)
//	uvarint  number of members, then each: uvarint length (<= MaxMemberID), bytes
//	uvarint  number of runs, then each run of records alike:
//	         uvarint length (>= 1), byte state, uvarint delivery count,
//	         uvarint member index + 1 (0: none; only Acquired has one),
//	         varint deadline (Unix ms; 0 unless Acquired)
//
// The runs cover the records exactly. Runs compress a state whose records
// were acquired and acknowledged in batches to a few bytes each.
const codecVersion = 1

// Marshal encodes p.
func (p *Partition) Marshal() []byte {
	members := map[string]int{}
	var names []string
	for _, r := range p.Records {
		if r.Member != "" {
			if _, ok := members[r.Member]; !ok {
				members[r.Member] = len(names)
				names = append(names, r.Member)
			}
		}
	}
	b := []byte{codecVersion}
	b = binary.AppendVarint(b, p.Start)
	b = binary.AppendUvarint(b, uint64(p.Redelivered))
	b = binary.AppendUvarint(b, uint64(p.ArchivedTotal))
	b = binary.AppendUvarint(b, uint64(len(p.Records)))
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
	}
	var runs [][2]int // [start, length]
	for i, r := range p.Records {
		if n := len(runs); n > 0 && p.Records[runs[n-1][0]] == r {
			runs[n-1][1]++
			continue
		}
		runs = append(runs, [2]int{i, 1})
	}
	b = binary.AppendUvarint(b, uint64(len(runs)))
	for _, run := range runs {
		r := p.Records[run[0]]
		b = binary.AppendUvarint(b, uint64(run[1]))
		b = append(b, byte(r.State))
		b = binary.AppendUvarint(b, uint64(r.Count))
		idx := 0
		if r.Member != "" {
			idx = members[r.Member] + 1
		}
		b = binary.AppendUvarint(b, uint64(idx))
		b = binary.AppendVarint(b, r.Deadline)
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

func (d *decoder) uvarint(what string, limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > limit {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Unmarshal decodes a state Marshal encoded, checking every invariant of
// the encoding; anything else is ErrCorrupt.
func Unmarshal(b []byte) (*Partition, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	d := &decoder{b: b[1:]}
	const maxCounter = 1 << 62
	p := &Partition{Start: d.varint("start")}
	p.Redelivered = int64(d.uvarint("redelivered", maxCounter))
	p.ArchivedTotal = int64(d.uvarint("archived", maxCounter))
	n := int(d.uvarint("records", MaxInFlight))
	nm := int(d.uvarint("members", uint64(n)))
	names := make([]string, 0, nm)
	for range nm {
		l := int(d.uvarint("member length", MaxMemberID))
		if d.err != nil || l == 0 || l > len(d.b) {
			d.fail("member")
			break
		}
		names = append(names, string(d.b[:l]))
		d.b = d.b[l:]
	}
	nr := int(d.uvarint("runs", uint64(n)))
	if d.err == nil && (p.Start < 0 || p.Start > (1<<62)) {
		d.fail("start")
	}
	if d.err == nil && n > 0 {
		p.Records = make([]Record, 0, n)
	}
	for range nr {
		l := int(d.uvarint("run length", uint64(n-len(p.Records))))
		if d.err != nil || len(d.b) == 0 || l == 0 {
			d.fail("run")
			break
		}
		st := RecordState(d.b[0])
		d.b = d.b[1:]
		r := Record{State: st}
		r.Count = int16(d.uvarint("delivery count", 1<<15-1))
		idx := int(d.uvarint("member index", uint64(len(names))))
		r.Deadline = d.varint("deadline")
		if d.err != nil {
			break
		}
		if idx > 0 {
			r.Member = names[idx-1]
		}
		if st >= numStates || (st == Acquired) != (idx > 0) || (st != Acquired && r.Deadline != 0) {
			d.fail("run state")
			break
		}
		for range l {
			p.Records = append(p.Records, r)
		}
	}
	switch {
	case d.err != nil:
		return nil, d.err
	case len(p.Records) != n:
		return nil, fmt.Errorf("%w: runs cover %d of %d records", ErrCorrupt, len(p.Records), n)
	case len(d.b) != 0:
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	case n > 0 && (p.Records[0].State == Acknowledged || p.Records[0].State == Archived):
		return nil, fmt.Errorf("%w: finished record at the start offset", ErrCorrupt)
	}
	return p, nil
}
