package metastore_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/shale-dev/shale/metastore"
)

// TestReleaseGroupRecordsProtocolType proves ReleaseGroup records the
// protocol type beside empty-since, read back while nobody holds the group
// (GroupProtocolType, ListGroups) and by the next claim
// (GroupClaim.ProtocolType), which leaves it in etcd, "" kept apart from
// none; that a release without it (ReleaseGroupCoordinator, as older
// agents) leaves none; and that offset expiry still deletes such a group,
// the record with it.
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
		if got, ok, err := f.s.GroupProtocolType(f.ctx, g); err != nil || !ok || got != pt {
			t.Fatalf("%s released: protocol type %q %v %v, want %q", g, got, ok, err, pt)
		}
	}
	if got, ok, err := f.s.GroupProtocolType(f.ctx, "old"); err != nil || ok {
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
	if !c.HasProtocolType {
		t.Fatal("claim: a recorded type read as none")
	}
	if pt, ok, err := f.s.GroupProtocolType(f.ctx, "cons"); err != nil || !ok || pt != "consumer" {
		t.Fatalf("after the claim: recorded %q %v (%v), want the record kept", pt, ok, err)
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

// TestRecordGroupProtocolType proves the record a JoinGroup writes is
// fenced by the coordinator's lease (ErrNotCoordinator without it, nothing
// written), outlives the coordinator key (a coordinator that dies without
// a release), is read by the next claim, and that a lone record (a group
// with no offsets) is deleted by offset expiry rather than left behind.
func TestRecordGroupProtocolType(t *testing.T) {
	f := newExpiryFixture(t)
	if err := f.s.RecordGroupProtocolType(f.ctx, "joined", f.sess.Lease(), "consumer"); !errors.Is(err, metastore.ErrNotCoordinator) {
		t.Fatalf("record without holding the group: %v, want ErrNotCoordinator", err)
	}
	if _, ok, err := f.s.GroupProtocolType(f.ctx, "joined"); err != nil || ok {
		t.Fatalf("an unfenced record was written (%v)", err)
	}
	if c, err := f.s.ClaimGroup(f.ctx, "joined", f.sess.NodeID(), f.sess.Lease()); err != nil || !c.Mine || c.HasProtocolType {
		t.Fatalf("first claim: %+v %v, want mine with no type", c, err)
	}
	if err := f.s.RecordGroupProtocolType(f.ctx, "joined", f.sess.Lease(), "consumer"); err != nil {
		t.Fatal(err)
	}
	// The coordinator dies: its key goes with its lease, no release.
	if _, err := f.cli.Delete(f.ctx, testNS+"/groups/joined/coordinator"); err != nil {
		t.Fatal(err)
	}
	if pt, ok, err := f.s.GroupProtocolType(f.ctx, "joined"); err != nil || !ok || pt != "consumer" {
		t.Fatalf("after the coordinator's death: %q %v (%v), want consumer", pt, ok, err)
	}
	c, err := f.s.ClaimGroup(f.ctx, "joined", f.sess.NodeID(), f.sess.Lease())
	if err != nil || !c.Mine || !c.HasProtocolType || c.ProtocolType != "consumer" {
		t.Fatalf("claim after the death: %+v %v, want consumer", c, err)
	}
	if _, err := f.cli.Delete(f.ctx, testNS+"/groups/joined/coordinator"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.ExpireGroupOffsets(f.ctx, time.Now(), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := f.keys("joined"); n != 0 {
		t.Fatalf("%d keys of a group with no offsets left after expiry", n)
	}
}

// TestMembersSessionRecord proves the members-session record says to the
// next claim whether the group's coordinator died with classic members
// (and their largest session timeout), and that a release clears it: only
// the holder writes it, a claim after the holder's lease ended reads it,
// a claim after a release reads none.
func TestMembersSessionRecord(t *testing.T) {
	f := newExpiryFixture(t)
	dead, err := f.s.RegisterAgent(f.ctx, metastore.AgentInfo{NodeID: -1, Host: "b", Port: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := f.s.ClaimGroup(f.ctx, "m", dead.NodeID(), dead.Lease()); err != nil || !c.Mine || c.MembersActive {
		t.Fatalf("first claim: %+v %v, want mine and no members", c, err)
	}
	if err := f.s.RecordMembersSession(f.ctx, "m", f.sess.Lease(), 6*time.Second); !errors.Is(err, metastore.ErrNotCoordinator) {
		t.Fatalf("record by a non-holder: %v, want ErrNotCoordinator", err)
	}
	if err := f.s.RecordMembersSession(f.ctx, "m", dead.Lease(), 6*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := dead.Close(f.ctx); err != nil { // the coordinator dies: its lease and key go
		t.Fatal(err)
	}
	c, err := f.s.ClaimGroup(f.ctx, "m", f.sess.NodeID(), f.sess.Lease())
	if err != nil || !c.Mine || !c.MembersActive || c.MembersSession != 6*time.Second || c.MembersListed {
		t.Fatalf("claim after the death: %+v %v, want mine, members active, session 6s, unlisted (an older agent's record)", c, err)
	}
	if err := f.s.ReleaseGroupCoordinator(f.ctx, "m", f.sess.Lease(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if c, err := f.s.ClaimGroup(f.ctx, "m", f.sess.NodeID(), f.sess.Lease()); err != nil || !c.Mine || c.MembersActive {
		t.Fatalf("claim after the release: %+v %v, want mine and no members", c, err)
	}
	// A record listing the members: the next claim learns who they were.
	dead2, err := f.s.RegisterAgent(f.ctx, metastore.AgentInfo{NodeID: -1, Host: "c", Port: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := f.s.ClaimGroup(f.ctx, "m2", dead2.NodeID(), dead2.Lease()); err != nil || !c.Mine {
		t.Fatalf("claim of m2: %+v %v", c, err)
	}
	rec := metastore.MembersRecord{Session: 30 * time.Second, Listed: true, IDs: []string{"k1-x", "k2-y"}}
	if err := f.s.RecordMembers(f.ctx, "m2", dead2.Lease(), rec); err != nil {
		t.Fatal(err)
	}
	if err := dead2.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	c, err = f.s.ClaimGroup(f.ctx, "m2", f.sess.NodeID(), f.sess.Lease())
	if err != nil || !c.MembersActive || c.MembersSession != 30*time.Second || !c.MembersListed || !slices.Equal(c.MembersIDs, rec.IDs) {
		t.Fatalf("claim of m2 after the death: %+v %v, want session 30s listing %v", c, err, rec.IDs)
	}
}

// TestClaimHeldKeyReadsRecords proves a claim of a coordinator key the
// caller's lease holds already (another request of the same agent claimed
// a moment earlier) reads the group's type, protocol-type and members
// records as the claim that created the key did, all but empty-since:
// the agent builds the group from whichever claim comes first, and one
// with no records skipped the failover grace of a group whose
// coordinator died with members.
func TestClaimHeldKeyReadsRecords(t *testing.T) {
	f := newExpiryFixture(t)
	dead, err := f.s.RegisterAgent(f.ctx, metastore.AgentInfo{NodeID: -1, Host: "b", Port: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := f.s.ClaimGroup(f.ctx, "h", dead.NodeID(), dead.Lease()); err != nil || !c.Mine {
		t.Fatalf("first claim: %+v %v", c, err)
	}
	rec := metastore.MembersRecord{Session: 6 * time.Second, Listed: true}
	typ := metastore.ActiveRecord([]string{"m1", "m2"})
	if err := f.s.RecordGroupProtocolType(f.ctx, "h", dead.Lease(), "consumer"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.RecordGroupType(f.ctx, "h", dead.Lease(), typ); err != nil {
		t.Fatal(err)
	}
	if err := f.s.RecordMembers(f.ctx, "h", dead.Lease(), rec); err != nil {
		t.Fatal(err)
	}
	if err := dead.Close(f.ctx); err != nil { // the coordinator dies
		t.Fatal(err)
	}
	for i, what := range []string{"the claim creating the key", "a claim of the key held already"} {
		c, err := f.s.ClaimGroup(f.ctx, "h", f.sess.NodeID(), f.sess.Lease())
		if err != nil || !c.Mine || c.Type != typ || !c.HasProtocolType || c.ProtocolType != "consumer" ||
			!c.MembersActive || c.MembersSession != 6*time.Second || !c.MembersListed {
			t.Fatalf("%s (%d): %+v %v, want mine with the type, protocol type and members records", what, i, c, err)
		}
	}
	// Another lease holding the key reads none.
	other, err := f.s.RegisterAgent(f.ctx, metastore.AgentInfo{NodeID: -1, Host: "c", Port: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(f.ctx)
	if c, err := f.s.ClaimGroup(f.ctx, "h", other.NodeID(), other.Lease()); err != nil || c.Mine || c.Type != "" || c.MembersActive || c.HasProtocolType {
		t.Fatalf("claim by another lease: %+v %v, want not mine and no records", c, err)
	}
}
