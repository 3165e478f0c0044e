package metastore_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shale-dev/shale/metastore"
)

// expiryFixture is one store with one registered agent (whose lease
// fences group writes).
type expiryFixture struct {
	t    *testing.T
	ctx  context.Context
	s    *metastore.Store
	cli  *clientv3.Client
	sess *metastore.Session
}

func newExpiryFixture(t *testing.T) *expiryFixture {
	s, cli, _ := newStore(t)
	ctx := testCtx(t)
	sess, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "a", Port: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sess.Close(context.Background()) })
	return &expiryFixture{t: t, ctx: ctx, s: s, cli: cli, sess: sess}
}

// commit claims group, commits n offsets of topic t stamped at, and, when
// release is set, releases the claim (recording emptySince).
func (f *expiryFixture) commit(group string, n int, at time.Time, release bool, emptySince time.Time) {
	f.t.Helper()
	if _, mine, err := f.s.ClaimGroupCoordinator(f.ctx, group, f.sess.NodeID(), f.sess.Lease()); err != nil || !mine {
		f.t.Fatalf("claim %q: mine %v err %v", group, mine, err)
	}
	offs := make([]metastore.GroupOffset, n)
	for i := range offs {
		offs[i] = metastore.GroupOffset{Topic: "t", Partition: int32(i), Offset: int64(10 + i), CommitMs: at.UnixMilli()}
	}
	if err := f.s.CommitGroupOffsets(f.ctx, group, f.sess.Lease(), offs); err != nil {
		f.t.Fatal(err)
	}
	if release {
		if err := f.s.ReleaseGroupCoordinator(f.ctx, group, f.sess.Lease(), emptySince); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *expiryFixture) offsets(group string) int {
	f.t.Helper()
	offs, err := f.s.FetchGroupOffsets(f.ctx, group)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(offs)
}

// keys counts every key of group (coordinator, empty-since, offsets).
func (f *expiryFixture) keys(group string) int64 {
	f.t.Helper()
	resp, err := f.cli.Get(f.ctx, testNS+"/groups/"+group+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.Count
}

// TestExpireGroupOffsets proves the expiry rule: a group nobody
// coordinates whose newest commit and emptying are older than the
// retention loses every key (here 1500 offsets, more than a transaction
// may hold operations, in one constant-size transaction); a group with a
// coordinator, a group with one recent commit among old ones, and a group
// that became empty recently (its empty-since record) are kept; a negative
// retention expires nothing.
func TestExpireGroupOffsets(t *testing.T) {
	f := newExpiryFixture(t)
	now := time.Now()
	old := now.Add(-10 * 24 * time.Hour)
	const retention = 7 * 24 * time.Hour

	f.commit("abandoned", 1500, old, true, old)
	f.commit("coordinated", 3, old, false, time.Time{})
	f.commit("recent", 3, old, false, time.Time{})
	if err := f.s.CommitGroupOffsets(f.ctx, "recent", f.sess.Lease(), []metastore.GroupOffset{{Topic: "u", Partition: 0, Offset: 1, CommitMs: now.Add(-time.Hour).UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ReleaseGroupCoordinator(f.ctx, "recent", f.sess.Lease(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	f.commit("emptied-lately", 2, old, true, now.Add(-3*24*time.Hour))
	// A group released with no offsets records nothing.
	if _, _, err := f.s.ClaimGroupCoordinator(f.ctx, "no-offsets", f.sess.NodeID(), f.sess.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ReleaseGroupCoordinator(f.ctx, "no-offsets", f.sess.Lease(), old); err != nil {
		t.Fatal(err)
	}
	if n := f.keys("no-offsets"); n != 0 {
		t.Fatalf("released group without offsets left %d keys", n)
	}
	if n := f.keys("emptied-lately"); n != 3 {
		t.Fatalf("emptied-lately has %d keys, want 2 offsets + empty-since", n)
	}

	st, err := f.s.ExpireGroupOffsets(f.ctx, now, -1)
	if err != nil || st != (metastore.GroupExpiryStats{}) {
		t.Fatalf("negative retention: %+v %v, want nothing done", st, err)
	}
	if f.offsets("abandoned") != 1500 {
		t.Fatal("negative retention expired offsets")
	}

	st, err = f.s.ExpireGroupOffsets(f.ctx, now, retention)
	if err != nil {
		t.Fatal(err)
	}
	if st.Groups != 1 || st.Offsets != 1500 || st.Kept != 2 {
		t.Fatalf("stats %+v, want 1 group, 1500 offsets expired, 2 uncoordinated groups kept", st)
	}
	if n := f.keys("abandoned"); n != 0 {
		t.Fatalf("abandoned group kept %d keys", n)
	}
	for g, want := range map[string]int{"coordinated": 3, "recent": 4, "emptied-lately": 2} {
		if got := f.offsets(g); got != want {
			t.Errorf("%s: %d offsets, want %d kept", g, got, want)
		}
	}
	ls, err := f.s.ListGroups(f.ctx)
	if err != nil || len(ls) != 3 {
		t.Fatalf("list after expiry: %+v %v, want coordinated, emptied-lately, recent", ls, err)
	}

	// Five days later the group emptied three days ago is past the
	// retention too (its commits were already), the one committed an hour
	// ago is not.
	st, err = f.s.ExpireGroupOffsets(f.ctx, now.Add(5*24*time.Hour), retention)
	if err != nil || st.Groups != 1 || st.Offsets != 2 {
		t.Fatalf("a week later: %+v %v, want emptied-lately expired", st, err)
	}
	if f.keys("emptied-lately") != 0 || f.offsets("recent") != 4 || f.offsets("coordinated") != 3 {
		t.Fatal("a week later: wrong groups expired")
	}
}

// TestExpireGroupOffsetsRaces proves the expiry transaction loses to what
// happens between its read and its write: a commit (by a coordinator that
// claimed, committed and released meanwhile, so the coordinator key is
// absent again but an offset's ModRevision changed), a new offset key, a
// claim (the coordinator key exists), and a claim by an agent that then
// died (the coordinator key is absent again, but the claim deleted the
// empty-since record) all keep the group's offsets.
func TestExpireGroupOffsetsRaces(t *testing.T) {
	f := newExpiryFixture(t)
	now := time.Now()
	old := now.Add(-30 * 24 * time.Hour)
	races := map[string]func(group string){
		"recommit": func(g string) {
			f.commit(g, 1, old, true, old) // rewrites partition 0, still old
		},
		"new-partition": func(g string) {
			if _, _, err := f.s.ClaimGroupCoordinator(f.ctx, g, f.sess.NodeID(), f.sess.Lease()); err != nil {
				t.Fatal(err)
			}
			if err := f.s.CommitGroupOffsets(f.ctx, g, f.sess.Lease(), []metastore.GroupOffset{{Topic: "t", Partition: 99, CommitMs: old.UnixMilli()}}); err != nil {
				t.Fatal(err)
			}
			if err := f.s.ReleaseGroupCoordinator(f.ctx, g, f.sess.Lease(), old); err != nil {
				t.Fatal(err)
			}
		},
		"claim": func(g string) {
			if _, mine, err := f.s.ClaimGroupCoordinator(f.ctx, g, f.sess.NodeID(), f.sess.Lease()); err != nil || !mine {
				t.Fatalf("claim: %v %v", mine, err)
			}
		},
		"claim-then-death": func(g string) {
			sess, err := f.s.RegisterAgent(f.ctx, metastore.AgentInfo{NodeID: -1, Host: "b", Port: 2}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if _, mine, err := f.s.ClaimGroupCoordinator(f.ctx, g, sess.NodeID(), sess.Lease()); err != nil || !mine {
				t.Fatalf("claim: %v %v", mine, err)
			}
			if err := sess.Close(f.ctx); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, race := range races {
		t.Run(name, func(t *testing.T) {
			g := "race-" + name
			f.commit(g, 3, old, true, old)
			before, at := f.offsets(g), now
			raced := 0
			restore := metastore.SetExpiryHook(f.s, func(group string) {
				if group == g {
					raced++
					race(g)
				}
			})
			st, err := f.s.ExpireGroupOffsets(f.ctx, now, 24*time.Hour)
			restore()
			if err != nil || raced != 1 {
				t.Fatalf("expire: %+v %v (raced %d times)", st, err, raced)
			}
			if st.Groups != 0 || st.Offsets != 0 {
				t.Fatalf("stats %+v: the racing change should have kept the group", st)
			}
			if got := f.offsets(g); got < before {
				t.Fatalf("%d offsets left of %d: the expiry won over a concurrent change", got, before)
			}
			switch name {
			case "claim":
				if err := f.s.ReleaseGroupCoordinator(f.ctx, g, f.sess.Lease(), old); err != nil {
					t.Fatal(err)
				}
			case "claim-then-death":
				// Nobody released it since the claim: the next pass
				// only records when it found the group uncoordinated.
				if st, err := f.s.ExpireGroupOffsets(f.ctx, now, 24*time.Hour); err != nil || st.Groups != 0 || f.offsets(g) != before {
					t.Fatalf("pass after the death: %+v %v, %d offsets left", st, err, f.offsets(g))
				}
				at = now.Add(25 * time.Hour)
			}
			// Without a race the next pass expires it.
			st, err = f.s.ExpireGroupOffsets(f.ctx, at, 24*time.Hour)
			if err != nil || st.Groups != 1 || f.keys(g) != 0 {
				t.Fatalf("unraced pass: %+v %v, %d keys left", st, err, f.keys(g))
			}
		})
	}
}

// TestExpireGroupOffsetsAfterCoordinatorDeath proves a group whose
// coordinator died (its key went with the agent's lease; nobody released
// it) is not expired on the spot, however old its commits or the
// empty-since record of an earlier release: its members may be alive and
// about to rejoin on another agent (Kafka never expires a group with
// members, KIP-211). The first pass that finds the group uncoordinated
// records when; the group expires a retention after that, unless a claim
// (its members rejoining) consumes the record first.
func TestExpireGroupOffsetsAfterCoordinatorDeath(t *testing.T) {
	f := newExpiryFixture(t)
	now := time.Now()
	old := now.Add(-30 * 24 * time.Hour)
	const retention = 7 * 24 * time.Hour
	// coordinate claims group on a new agent, commits n old offsets on it
	// and returns the agent, whose Close is its death.
	coordinate := func(group string, n int) *metastore.Session {
		t.Helper()
		sess, err := f.s.RegisterAgent(f.ctx, metastore.AgentInfo{NodeID: -1, Host: "b", Port: 2}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sess.Close(context.Background()) })
		if _, mine, err := f.s.ClaimGroupCoordinator(f.ctx, group, sess.NodeID(), sess.Lease()); err != nil || !mine {
			t.Fatalf("claim %q: mine %v err %v", group, mine, err)
		}
		offs := make([]metastore.GroupOffset, n)
		for i := range offs {
			offs[i] = metastore.GroupOffset{Topic: "t", Partition: int32(i), Offset: 1, CommitMs: old.UnixMilli()}
		}
		if n > 0 {
			if err := f.s.CommitGroupOffsets(f.ctx, group, sess.Lease(), offs); err != nil {
				t.Fatal(err)
			}
		}
		return sess
	}
	die := func(sess *metastore.Session) {
		t.Helper()
		if err := sess.Close(f.ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Its coordinator died holding it (no release, no empty-since).
	die(coordinate("died", 2))
	// Released long ago (an old empty-since), then its members came back
	// to another agent, which died with them in the group.
	f.commit("stale-record", 3, old, true, old)
	die(coordinate("stale-record", 0))

	st, err := f.s.ExpireGroupOffsets(f.ctx, now, retention)
	if err != nil {
		t.Fatal(err)
	}
	if st.Groups != 0 || f.offsets("died") != 2 || f.offsets("stale-record") != 3 {
		t.Fatalf("stats %+v, %d and %d offsets left: offsets expired right after their coordinator died",
			st, f.offsets("died"), f.offsets("stale-record"))
	}
	// Within a retention of that pass: kept.
	if st, err = f.s.ExpireGroupOffsets(f.ctx, now.Add(retention-time.Hour), retention); err != nil || st.Groups != 0 {
		t.Fatalf("a retention after the death, less an hour: %+v %v, want nothing expired", st, err)
	}

	// The members of "died" rejoin (a claim) on an agent that dies too:
	// the count starts again from the pass after that death.
	later := now.Add(retention - time.Hour)
	die(coordinate("died", 0))
	if st, err = f.s.ExpireGroupOffsets(f.ctx, later, retention); err != nil || st.Groups != 0 {
		t.Fatalf("after the second death: %+v %v, want nothing expired", st, err)
	}
	// A retention after the first pass: "stale-record" goes, "died" stays.
	st, err = f.s.ExpireGroupOffsets(f.ctx, now.Add(retention+time.Hour), retention)
	if err != nil || st.Groups != 1 || f.keys("stale-record") != 0 || f.offsets("died") != 2 {
		t.Fatalf("a retention later: %+v %v, %d keys of stale-record, %d offsets of died; want stale-record alone expired",
			st, err, f.keys("stale-record"), f.offsets("died"))
	}
	st, err = f.s.ExpireGroupOffsets(f.ctx, later.Add(retention+time.Hour), retention)
	if err != nil || st.Groups != 1 || f.keys("died") != 0 {
		t.Fatalf("a retention after the second death: %+v %v, %d keys left", st, err, f.keys("died"))
	}
}

// TestClaimGroupTakesEmptySince proves a claim that creates the
// coordinator key takes the group's empty-since record out of etcd and
// returns it (so a coordinator that gets no member can record it again at
// its release), and that a claim of a key already held returns none.
func TestClaimGroupTakesEmptySince(t *testing.T) {
	f := newExpiryFixture(t)
	emptied := time.Now().Add(-48 * time.Hour).Truncate(time.Millisecond)
	f.commit("g", 1, emptied, true, emptied)
	if n := f.keys("g"); n != 2 {
		t.Fatalf("%d keys after the release, want an offset and empty-since", n)
	}
	c, err := f.s.ClaimGroup(f.ctx, "g", f.sess.NodeID(), f.sess.Lease())
	if err != nil || !c.Mine || !c.EmptySince.Equal(emptied) {
		t.Fatalf("claim: %+v %v, want mine with empty-since %v", c, err, emptied)
	}
	if n := f.keys("g"); n != 2 {
		t.Fatalf("%d keys after the claim, want the coordinator and an offset", n)
	}
	if again, err := f.s.ClaimGroup(f.ctx, "g", f.sess.NodeID(), f.sess.Lease()); err != nil || !again.Mine || !again.EmptySince.IsZero() {
		t.Fatalf("claim of a held key: %+v %v", again, err)
	}
	if err := f.s.ReleaseGroupCoordinator(f.ctx, "g", f.sess.Lease(), c.EmptySince); err != nil {
		t.Fatal(err)
	}
	if st, err := f.s.ExpireGroupOffsets(f.ctx, emptied.Add(24*time.Hour+time.Second), 24*time.Hour); err != nil || st.Groups != 1 {
		t.Fatalf("a retention after the emptying: %+v %v, want the group expired", st, err)
	}
}
