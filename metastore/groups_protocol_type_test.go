package metastore_test

import (
	"testing"
	"time"
)

// TestReleaseGroupRecordsProtocolType proves ReleaseGroup records the
// protocol type beside empty-since, read back while nobody holds the group
// (ReleasedGroupProtocolType, ListGroups), taken out by the next claim
// (GroupClaim.ProtocolType), "" kept apart from none; that a release
// without it (ReleaseGroupCoordinator, as older agents) leaves none; and
// that offset expiry still deletes such a group, the record with it.
func TestReleaseGroupRecordsProtocolType(t *testing.T) {
	f := newExpiryFixture(t)
	emptied := time.Now().Add(-48 * time.Hour).Truncate(time.Millisecond)
	f.commit("simple", 1, emptied, false, time.Time{})
	f.commit("cons", 1, emptied, false, time.Time{})
	f.commit("old", 1, emptied, true, emptied) // ReleaseGroupCoordinator
	for g, pt := range map[string]string{"simple": "", "cons": "consumer"} {
		if err := f.s.ReleaseGroup(f.ctx, g, f.sess.Lease(), emptied, pt); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := f.s.ReleasedGroupProtocolType(f.ctx, g); err != nil || !ok || got != pt {
			t.Fatalf("%s released: protocol type %q %v %v, want %q", g, got, ok, err, pt)
		}
	}
	if got, ok, err := f.s.ReleasedGroupProtocolType(f.ctx, "old"); err != nil || ok {
		t.Fatalf("released without a type: %q %v %v, want none", got, ok, err)
	}
	ls, err := f.s.ListGroups(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		want := map[string]bool{"simple": true, "cons": true}[l.Name]
		if !l.HasOffsets || l.Coordinator >= 0 || l.HasProtocolType != want ||
			(l.Name == "cons") != (l.ProtocolType == "consumer") {
			t.Errorf("listed %+v", l)
		}
	}
	if len(ls) != 3 {
		t.Fatalf("listed %d groups, want 3", len(ls))
	}

	c, err := f.s.ClaimGroup(f.ctx, "cons", f.sess.NodeID(), f.sess.Lease())
	if err != nil || !c.Mine || c.ProtocolType != "consumer" || !c.EmptySince.Equal(emptied) {
		t.Fatalf("claim: %+v %v, want mine, consumer, empty since %v", c, err, emptied)
	}
	if _, ok, err := f.s.ReleasedGroupProtocolType(f.ctx, "cons"); err != nil || ok {
		t.Fatalf("the claim left the record (%v)", err)
	}
	if err := f.s.ReleaseGroup(f.ctx, "cons", f.sess.Lease(), c.EmptySince, c.ProtocolType); err != nil {
		t.Fatal(err)
	}
	if st, err := f.s.ExpireGroupOffsets(f.ctx, emptied.Add(24*time.Hour+time.Second), 24*time.Hour); err != nil || st.Groups != 3 {
		t.Fatalf("a retention after the emptying: %+v %v, want 3 groups expired", st, err)
	}
	for _, g := range []string{"simple", "cons", "old"} {
		if n := f.keys(g); n != 0 {
			t.Errorf("%s: %d keys left after expiry", g, n)
		}
	}
}
