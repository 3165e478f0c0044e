package metastore

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// maxMembersRecord bounds the member list of a members-session record
// (MembersRecord.Encode); a longer one is recorded unlisted.
const maxMembersRecord = 64 << 10

// MembersRecord is the value of groups/<g>/members-session: the largest
// session timeout the classic members of the group's coordinator joined
// with, and, when Listed, the member IDs that may own partitions. Encoded
// as the session in milliseconds (decimal), then, when listed, a newline
// and each ID followed by a newline: "45000\n" lists no member,
// "45000\na\nb\n" lists a and b. The session alone, "45000" (what agents
// wrote before the list), lists nobody: the members are unknown. An
// older agent reads a listed record as corrupt, which holds its takeover
// for the joining members' session: safe, as a record it does not know.
type MembersRecord struct {
	Session time.Duration
	Listed  bool
	IDs     []string
}

// Encode returns the record's value. IDs that cannot be listed (one empty
// or holding a newline, or more than maxMembersRecord bytes in all) give
// the record unlisted: the members are unknown, never fewer than there are.
func (r MembersRecord) Encode() []byte {
	ms := strconv.FormatInt(r.Session.Milliseconds(), 10)
	if !r.Listed {
		return []byte(ms)
	}
	b := []byte(ms + "\n")
	for _, id := range r.IDs {
		if id == "" || strings.ContainsRune(id, '\n') || len(b)+len(id)+1 > maxMembersRecord {
			return []byte(ms)
		}
		b = append(b, id...)
		b = append(b, '\n')
	}
	return b
}

// DecodeMembersRecord decodes the value of a members-session key. Errors
// wrap ErrCorruptValue and name the key: a session that is not a
// non-negative decimal number of milliseconds. Empty lines of the list
// are skipped.
func DecodeMembersRecord(key string, data []byte) (MembersRecord, error) {
	s := string(data)
	head, list, listed := strings.Cut(s, "\n")
	ms, err := strconv.ParseInt(head, 10, 64)
	switch {
	case err != nil:
		return MembersRecord{}, corrupt(key, err)
	case ms < 0 || ms > math.MaxInt64/int64(time.Millisecond):
		return MembersRecord{}, corrupt(key, errors.New("session out of range"))
	}
	r := MembersRecord{Session: time.Duration(ms) * time.Millisecond, Listed: listed}
	for id := range strings.SplitSeq(list, "\n") {
		if id != "" {
			r.IDs = append(r.IDs, id)
		}
	}
	return r, nil
}

func encodeMembersRecord(r MembersRecord) ([]byte, error) { return r.Encode(), nil }
