package lifecycle_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shale-dev/shale/engine/enginetest"
	"github.com/shale-dev/shale/internal/testenv"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
)

// TestGroupExpiryJob proves the group-expiry job is elected and run like
// the other lifecycle jobs: a started Lifecycle leads it and expires an
// abandoned group's offsets past GroupOffsetRetention, reporting the
// counts to Observe; with a negative retention the job is not run at all
// (no leader) while the others are.
func TestGroupExpiryJob(t *testing.T) {
	cli, _ := testenv.Etcd(t)
	meta := metastore.New(cli, lcNS)
	store := enginetest.DirStore(t)
	ctx := lcCtx(t)
	sess, err := meta.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "a", Port: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(context.Background())
	if _, _, err := meta.ClaimGroupCoordinator(ctx, "gone", sess.NodeID(), sess.Lease()); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	if err := meta.CommitGroupOffsets(ctx, "gone", sess.Lease(), []metastore.GroupOffset{
		{Topic: "t", Partition: 0, Offset: 5, CommitMs: old}, {Topic: "t", Partition: 1, Offset: 7, CommitMs: old}}); err != nil {
		t.Fatal(err)
	}
	if err := meta.ReleaseGroupCoordinator(ctx, "gone", sess.Lease(), time.UnixMilli(old)); err != nil {
		t.Fatal(err)
	}

	run := func(retention time.Duration, until func(expired, passes int) bool) {
		var mu sync.Mutex
		expired, passes := 0, 0
		lc, err := lifecycle.New(lifecycle.Config{Holder: "test", Interval: 20 * time.Millisecond, LeaseTTL: time.Second,
			GroupOffsetRetention: retention, Observe: func(job string, stats any) {
				if st, ok := stats.(metastore.GroupExpiryStats); ok {
					if job != lifecycle.JobGroupExpiry {
						t.Errorf("GroupExpiryStats from job %q", job)
					}
					mu.Lock()
					expired += st.Offsets
					passes++
					mu.Unlock()
				}
			}}, store, meta, nil)
		if err != nil {
			t.Fatal(err)
		}
		lc.Start()
		defer lc.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n, p := expired, passes
			mu.Unlock()
			if until(n, p) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("retention %v: %d offsets expired", retention, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Negative: the other jobs get leaders, group-expiry none, nothing goes.
	run(-1, func(_, passes int) bool {
		if passes > 0 {
			t.Fatal("group-expiry ran with a negative retention")
		}
		gc, _ := meta.JobLeader(ctx, lifecycle.JobGC)
		return gc != ""
	})
	if l, err := meta.JobLeader(ctx, lifecycle.JobGroupExpiry); err != nil || l != "" {
		t.Fatalf("group-expiry leader %q (%v) with a negative retention", l, err)
	}
	// Longer than the offsets' age: kept.
	run(24*time.Hour, func(_, passes int) bool {
		l, _ := meta.JobLeader(ctx, lifecycle.JobGroupExpiry)
		return l == "test" && passes >= 2
	})
	if offs, err := meta.FetchGroupOffsets(ctx, "gone"); err != nil || len(offs) != 2 {
		t.Fatalf("offsets within the retention: %+v %v", offs, err)
	}
	// Shorter: expired by the elected job.
	run(time.Hour, func(n, _ int) bool { return n == 2 })
	if offs, err := meta.FetchGroupOffsets(ctx, "gone"); err != nil || len(offs) != 0 {
		t.Fatalf("offsets past the retention: %+v %v", offs, err)
	}
}
