package metastore

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestMembersRecordCodec proves the members-session record's encoding:
// the session alone (as older agents wrote it) decodes unlisted, a list
// round-trips, IDs that cannot be listed make the record unlisted (never
// a shorter list), and a corrupt session is ErrCorruptValue.
func TestMembersRecordCodec(t *testing.T) {
	long := strings.Repeat("x", maxMembersRecord)
	for _, c := range []struct {
		name    string
		rec     MembersRecord
		wantEnc string
		want    MembersRecord
	}{
		{"older agent's", MembersRecord{Session: 45 * time.Second}, "45000", MembersRecord{Session: 45 * time.Second}},
		{"listed none", MembersRecord{Session: 6 * time.Second, Listed: true}, "6000\n", MembersRecord{Session: 6 * time.Second, Listed: true}},
		{"listed", MembersRecord{Session: 6 * time.Second, Listed: true, IDs: []string{"a-1", "b-2"}}, "6000\na-1\nb-2\n",
			MembersRecord{Session: 6 * time.Second, Listed: true, IDs: []string{"a-1", "b-2"}}},
		{"newline in an ID", MembersRecord{Session: time.Second, Listed: true, IDs: []string{"a", "b\nc"}}, "1000", MembersRecord{Session: time.Second}},
		{"empty ID", MembersRecord{Session: time.Second, Listed: true, IDs: []string{""}}, "1000", MembersRecord{Session: time.Second}},
		{"too long", MembersRecord{Session: time.Second, Listed: true, IDs: []string{"a", long}}, "1000", MembersRecord{Session: time.Second}},
	} {
		enc := string(c.rec.Encode())
		if enc != c.wantEnc {
			t.Errorf("%s: encoded %.40q, want %q", c.name, enc, c.wantEnc)
		}
		got, err := DecodeMembersRecord("k", []byte(enc))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: decoded %+v (%v), want %+v", c.name, got, err, c.want)
		}
	}
	if got, err := DecodeMembersRecord("k", []byte("6000\n\na\n\nb")); err != nil || !reflect.DeepEqual(got.IDs, []string{"a", "b"}) || !got.Listed {
		t.Errorf("empty lines: %+v (%v), want a and b listed", got, err)
	}
	for _, bad := range []string{"", "x", "-1", "6000x\na", "99999999999999999999", "9223372036854775807"} {
		if _, err := DecodeMembersRecord("k", []byte(bad)); !errors.Is(err, ErrCorruptValue) {
			t.Errorf("%q: %v, want ErrCorruptValue", bad, err)
		}
	}
}
