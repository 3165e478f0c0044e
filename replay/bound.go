package replay

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// BoundKind says what a Bound holds.
type BoundKind uint8

const (
	// Open is no bound: the partition's log start (for From) or its end
	// when the replay started (for To).
	Open BoundKind = iota
	// Offset bounds by record offset.
	Offset
	// Time bounds by record timestamp (milliseconds since the Unix epoch).
	Time
)

// Bound is one end of a replay range. From is inclusive, To exclusive,
// whatever the kind.
type Bound struct {
	Kind   BoundKind
	Offset int64 // Kind == Offset
	Millis int64 // Kind == Time: Unix milliseconds
}

// AtOffset is the bound at offset o.
func AtOffset(o int64) Bound { return Bound{Kind: Offset, Offset: o} }

// AtTime is the bound at t, truncated to milliseconds (Kafka's resolution).
func AtTime(t time.Time) Bound { return Bound{Kind: Time, Millis: t.UnixMilli()} }

// String is the form ParseBound reads.
func (b Bound) String() string {
	switch b.Kind {
	case Offset:
		return strconv.FormatInt(b.Offset, 10)
	case Time:
		return time.UnixMilli(b.Millis).UTC().Format(time.RFC3339Nano)
	}
	return ""
}

// ParseBound reads a range end: "" (or earliest/latest/end) is Open, a
// non-negative integer an Offset, an RFC 3339 time (2026-11-25T10:00:00Z,
// fractional seconds allowed) a Time.
func ParseBound(s string) (Bound, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "earliest", "beginning", "start", "latest", "end":
		return Bound{}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return Bound{}, fmt.Errorf("replay: bad bound %q: offsets are >= 0", s)
		}
		return AtOffset(n), nil
	}
	t, err := ParseTime(s)
	if err != nil {
		return Bound{}, fmt.Errorf("replay: bad bound %q: use an offset (e.g. 42), an RFC 3339 time (e.g. 2026-11-25T10:00:00Z) or a date (2026-11-25)", s)
	}
	return AtTime(t), nil
}

// ParseTime reads the times the command line takes: RFC 3339
// (2026-11-25T10:00:00Z, 2026-11-25T10:00:00+01:00) or a date (2026-11-25),
// which is midnight UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// window is a resolved replay range: records with from <= offset < to and
// fromTs <= timestamp < toTs.
type window struct {
	fromOff, toOff int64
	fromTs, toTs   int64
	timed          bool // a time bound is set: decode to filter per record
}

func newWindow(from, to Bound) (window, error) {
	w := window{fromOff: 0, toOff: math.MaxInt64, fromTs: math.MinInt64, toTs: math.MaxInt64}
	switch from.Kind {
	case Offset:
		w.fromOff = from.Offset
	case Time:
		w.fromTs, w.timed = from.Millis, true
	}
	switch to.Kind {
	case Offset:
		w.toOff = to.Offset
	case Time:
		w.toTs, w.timed = to.Millis, true
	}
	if from.Kind == to.Kind && from.Kind != Open && (w.fromOff > w.toOff || w.fromTs > w.toTs) {
		return w, fmt.Errorf("replay: --from %s is after --to %s: %w", from, to, ErrBadRange)
	}
	return w, nil
}

func (w window) hasTime(ts int64) bool { return ts >= w.fromTs && ts < w.toTs }
