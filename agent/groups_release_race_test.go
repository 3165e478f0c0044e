package agent_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/agent"
	"github.com/shale-dev/shale/agent/agenttest"
)

// errInjected stands for an etcd call that failed, or seemed to (a timeout
// after etcd applied it).
var errInjected = errors.New("injected etcd error")

// waitFor waits for ch to close, failing the test at ctx's end.
func waitFor(t *testing.T, ctx context.Context, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
	}
}

// groupKeyHolder returns the node ID holding group's coordinator key, -1
// when nobody does.
func groupKeyHolder(t *testing.T, ctx context.Context, c *agenttest.Cluster, group string) int32 {
	t.Helper()
	h, err := c.Meta.GroupCoordinator(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestGroupReleaseErrorReadsKeyBack injects an error into an idle
// release's etcd delete. When etcd applied the delete all the same, the
// coordinator must forget the group at once (not keep serving it without
// its key until the next sweep); when it did not, the coordinator keeps
// it and releases it later; when the key cannot be read back either, it
// drops the group (the key stays, and a request claims the group again).
func TestGroupReleaseErrorReadsKeyBack(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	s := c.Agents[0].Server
	node := s.NodeID()
	ctx := testCtx(t, 30*time.Second)
	t.Cleanup(func() { agent.SetGroupMetaHook(s, nil) })

	// failRelease claims group, makes its next idle release go through
	// release (which may run the delete) and the read-back through
	// readBack, and waits for that release to end.
	failRelease := func(t *testing.T, group string, release func(call func() error) error, readBack func(call func() error) error) {
		t.Helper()
		agent.SetGroupIdleRelease(s, time.Hour)
		if code := agent.AcquireGroup(ctx, s, group); code != 0 {
			t.Fatalf("claim %s: %v", group, kerr.ErrorForCode(code))
		}
		if h := groupKeyHolder(t, ctx, c, group); h != node || !agent.HoldsGroup(s, group) {
			t.Fatalf("after the claim: key held by %d, in memory %v", h, agent.HoldsGroup(s, group))
		}
		fired := make(chan struct{})
		var done atomic.Bool
		agent.SetGroupMetaHook(s, func(op, g string, call func() error) error {
			switch {
			case g != group:
			case op == agent.GroupOpRelease && done.CompareAndSwap(false, true):
				agent.SetGroupIdleRelease(s, time.Hour) // no second sweep meanwhile
				defer close(fired)
				return release(call)
			case op == agent.GroupOpCoordinator:
				return readBack(call)
			}
			return call()
		})
		agent.SetGroupIdleRelease(s, 20*time.Millisecond)
		waitFor(t, ctx, fired, "the idle release")
		// HoldsGroup waits for the release to end (it holds the group's
		// lock throughout).
	}
	applied := func(call func() error) error {
		if err := call(); err != nil {
			return err
		}
		return errInjected
	}
	failed := func(func() error) error { return errInjected }
	pass := func(call func() error) error { return call() }

	t.Run("applied", func(t *testing.T) {
		const group = "release-applied"
		failRelease(t, group, applied, pass)
		if held, h := agent.HoldsGroup(s, group), groupKeyHolder(t, ctx, c, group); held || h != -1 {
			t.Fatalf("release applied despite its error: in memory %v, key held by %d; want neither", held, h)
		}
		agent.SetGroupMetaHook(s, nil)
		if code := agent.AcquireGroup(ctx, s, group); code != 0 {
			t.Fatalf("claim again: %v", kerr.ErrorForCode(code))
		}
		if held, h := agent.HoldsGroup(s, group), groupKeyHolder(t, ctx, c, group); !held || h != node {
			t.Fatalf("claimed again: in memory %v, key held by %d", held, h)
		}
	})

	t.Run("not applied", func(t *testing.T) {
		const group = "release-failed"
		failRelease(t, group, failed, pass)
		if held, h := agent.HoldsGroup(s, group), groupKeyHolder(t, ctx, c, group); !held || h != node {
			t.Fatalf("release failed: in memory %v, key held by %d; want both (retried later)", held, h)
		}
		agent.SetGroupMetaHook(s, nil)
		agent.SetGroupIdleRelease(s, 20*time.Millisecond)
		waitReleased(t, ctx, c.Meta, group)
		if agent.HoldsGroup(s, group) {
			t.Fatal("still in memory after the retried release")
		}
	})

	t.Run("read back fails", func(t *testing.T) {
		const group = "release-unknown"
		failRelease(t, group, failed, func(func() error) error { return errInjected })
		if held, h := agent.HoldsGroup(s, group), groupKeyHolder(t, ctx, c, group); held || h != node {
			t.Fatalf("release and read-back failed: in memory %v, key held by %d; want the group dropped, its key left", held, h)
		}
		agent.SetGroupMetaHook(s, nil)
		if code := agent.AcquireGroup(ctx, s, group); code != 0 {
			t.Fatalf("claim again: %v", kerr.ErrorForCode(code))
		}
		if held, h := agent.HoldsGroup(s, group), groupKeyHolder(t, ctx, c, group); !held || h != node {
			t.Fatalf("claimed again: in memory %v, key held by %d", held, h)
		}
	})
}

// TestGroupDeleteErrorReadsKeyBack is TestGroupReleaseErrorReadsKeyBack
// for DeleteGroups: a delete that etcd applied despite its error must not
// leave the group alive in memory without its key.
func TestGroupDeleteErrorReadsKeyBack(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	s := c.Agents[0].Server
	agent.SetGroupIdleRelease(s, time.Hour)
	node := s.NodeID()
	ctx := testCtx(t, 30*time.Second)
	t.Cleanup(func() { agent.SetGroupMetaHook(s, nil) })

	failDelete := func(t *testing.T, group string, del func(call func() error) error, readBack func(call func() error) error) {
		t.Helper()
		agent.SetGroupMetaHook(s, nil)
		if code := agent.AcquireGroup(ctx, s, group); code != 0 {
			t.Fatalf("claim %s: %v", group, kerr.ErrorForCode(code))
		}
		agent.SetGroupMetaHook(s, func(op, g string, call func() error) error {
			switch {
			case g != group:
			case op == agent.GroupOpDelete:
				return del(call)
			case op == agent.GroupOpCoordinator:
				return readBack(call)
			}
			return call()
		})
		if code := agent.DeleteGroup(ctx, s, group); code == 0 || code == kerr.GroupIDNotFound.Code {
			t.Fatalf("delete with an etcd error answered %v", kerr.ErrorForCode(code))
		}
		agent.SetGroupMetaHook(s, nil)
	}
	pass := func(call func() error) error { return call() }

	t.Run("applied", func(t *testing.T) {
		const group = "delete-applied"
		failDelete(t, group, func(call func() error) error {
			if err := call(); err != nil {
				return err
			}
			return errInjected
		}, pass)
		if held, h := agent.HoldsGroup(s, group), groupKeyHolder(t, ctx, c, group); held || h != -1 {
			t.Fatalf("delete applied despite its error: in memory %v, key held by %d; want neither", held, h)
		}
	})

	t.Run("not applied", func(t *testing.T) {
		const group = "delete-failed"
		failDelete(t, group, func(func() error) error { return errInjected }, pass)
		if held, h := agent.HoldsGroup(s, group), groupKeyHolder(t, ctx, c, group); !held || h != node {
			t.Fatalf("delete failed: in memory %v, key held by %d; want both", held, h)
		}
	})

	t.Run("read back fails", func(t *testing.T) {
		const group = "delete-unknown"
		failDelete(t, group, func(func() error) error { return errInjected }, func(func() error) error { return errInjected })
		if held, h := agent.HoldsGroup(s, group), groupKeyHolder(t, ctx, c, group); held || h != node {
			t.Fatalf("delete and read-back failed: in memory %v, key held by %d; want the group dropped, its key left", held, h)
		}
		if code := agent.AcquireGroup(ctx, s, group); code != 0 {
			t.Fatalf("claim again: %v", kerr.ErrorForCode(code))
		}
		if held, h := agent.HoldsGroup(s, group), groupKeyHolder(t, ctx, c, group); !held || h != node {
			t.Fatalf("claimed again: in memory %v, key held by %d", held, h)
		}
	})
}

// TestGroupClaimRacingDeleteIsRepeated pins a claim between its etcd
// transaction and its registration: it found the key held by this agent
// (claimed meanwhile by another request), then DeleteGroups deleted the
// key and forgot the group. The pinned claim must notice (released) and
// claim again, not register a group whose key is gone.
func TestGroupClaimRacingDeleteIsRepeated(t *testing.T) {
	c := agenttest.Start(t, agenttest.Options{})
	s := c.Agents[0].Server
	agent.SetGroupIdleRelease(s, time.Hour)
	node := s.NodeID()
	ctx := testCtx(t, 30*time.Second)
	const group = "claim-vs-delete"

	var claims atomic.Int32
	xWaiting, xClaimed := make(chan struct{}), make(chan struct{})
	proceed1, proceed2 := make(chan struct{}), make(chan struct{})
	open1, open2 := sync.OnceFunc(func() { close(proceed1) }), sync.OnceFunc(func() { close(proceed2) })
	t.Cleanup(func() { open1(); open2(); agent.SetGroupMetaHook(s, nil) })
	agent.SetGroupMetaHook(s, func(op, g string, call func() error) error {
		if g != group || op != agent.GroupOpClaim || claims.Add(1) != 1 {
			return call()
		}
		close(xWaiting)
		<-proceed1
		err := call()
		close(xClaimed)
		<-proceed2
		return err
	})

	xDone := make(chan int16, 1)
	go func() { xDone <- agent.AcquireGroup(ctx, s, group) }()
	waitFor(t, ctx, xWaiting, "the first claim")
	// Another request claims the group meanwhile.
	if code := agent.AcquireGroup(ctx, s, group); code != 0 {
		t.Fatalf("second claim: %v", kerr.ErrorForCode(code))
	}
	if h := groupKeyHolder(t, ctx, c, group); h != node {
		t.Fatalf("key held by %d after the second claim", h)
	}
	// The first claim's transaction finds the key held by this agent.
	open1()
	waitFor(t, ctx, xClaimed, "the first claim's transaction")
	// The group is deleted before the first claim registers.
	if code := agent.DeleteGroup(ctx, s, group); code != kerr.GroupIDNotFound.Code {
		t.Fatalf("delete answered %v, want GROUP_ID_NOT_FOUND", kerr.ErrorForCode(code))
	}
	if h := groupKeyHolder(t, ctx, c, group); h != -1 {
		t.Fatalf("key held by %d after the delete", h)
	}
	open2()
	select {
	case code := <-xDone:
		if code != 0 {
			t.Fatalf("first claim: %v", kerr.ErrorForCode(code))
		}
	case <-ctx.Done():
		t.Fatal("the first claim never returned")
	}
	held, h := agent.HoldsGroup(s, group), groupKeyHolder(t, ctx, c, group)
	if held != (h == node) {
		t.Fatalf("in memory %v but key held by %d: a group coordinated without its key", held, h)
	}
	if !held || claims.Load() != 3 {
		t.Fatalf("in memory %v after %d claims; want the claim repeated (3 claims)", held, claims.Load())
	}
}
