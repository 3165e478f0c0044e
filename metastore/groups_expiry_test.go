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

	f.commit("abandoned", 1500, old, true, time.Time{})
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
// absent again but an offset's ModRevision changed), a new offset key, and
// a claim (the coordinator key exists) all keep the group's offsets.
func TestExpireGroupOffsetsRaces(t *testing.T) {
	f := newExpiryFixture(t)
	now := time.Now()
	old := now.Add(-30 * 24 * time.Hour)
	races := map[string]func(group string){
		"recommit": func(g string) {
			f.commit(g, 1, old, true, time.Time{}) // rewrites partition 0, still old
		},
		"new-partition": func(g string) {
			if _, _, err := f.s.ClaimGroupCoordinator(f.ctx, g, f.sess.NodeID(), f.sess.Lease()); err != nil {
				t.Fatal(err)
			}
			if err := f.s.CommitGroupOffsets(f.ctx, g, f.sess.Lease(), []metastore.GroupOffset{{Topic: "t", Partition: 99, CommitMs: old.UnixMilli()}}); err != nil {
				t.Fatal(err)
			}
			if err := f.s.ReleaseGroupCoordinator(f.ctx, g, f.sess.Lease(), time.Time{}); err != nil {
				t.Fatal(err)
			}
		},
		"claim": func(g string) {
			if _, mine, err := f.s.ClaimGroupCoordinator(f.ctx, g, f.sess.NodeID(), f.sess.Lease()); err != nil || !mine {
				t.Fatalf("claim: %v %v", mine, err)
			}
		},
	}
	for name, race := range races {
		t.Run(name, func(t *testing.T) {
			g := "race-" + name
			f.commit(g, 3, old, true, time.Time{})
			before := f.offsets(g)
			raced := 0
			restore := metastore.SetExpiryHook(func(group string) {
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
			if name == "claim" {
				if err := f.s.ReleaseGroupCoordinator(f.ctx, g, f.sess.Lease(), time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			// Without a race the next pass expires it.
			st, err = f.s.ExpireGroupOffsets(f.ctx, now, 24*time.Hour)
			if err != nil || st.Groups != 1 || f.keys(g) != 0 {
				t.Fatalf("unraced pass: %+v %v, %d keys left", st, err, f.keys(g))
			}
		})
	}
}
