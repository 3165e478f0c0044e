package metastore_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shale-dev/shale/metastore"
)

// TestAllocateProducerIDUnique proves producer IDs are unique (and >= 1000)
// across two clients allocating 200 each concurrently.
func TestAllocateProducerIDUnique(t *testing.T) {
	s, _, eps := newStore(t)
	ctx := testCtx(t)
	const perClient = 200
	stores := []*metastore.Store{s, metastore.New(testenvClient(t, eps), testNS)}
	ids := make([][]int64, len(stores))
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				id, err := st.AllocateProducerID(ctx)
				if err != nil {
					errs[i] = err
					return
				}
				ids[i] = append(ids[i], id)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, list := range ids {
		for _, id := range list {
			if id < metastore.FirstProducerID || seen[id] {
				t.Fatalf("producer id %d repeated or below %d", id, metastore.FirstProducerID)
			}
			seen[id] = true
		}
	}
	if len(seen) != perClient*len(stores) {
		t.Fatalf("%d distinct ids, want %d", len(seen), perClient*len(stores))
	}
	// A fresh Store (a restarted agent) continues after every reserved block.
	fresh := metastore.New(s.Client(), testNS)
	id, err := fresh.AllocateProducerID(ctx)
	if err != nil || seen[id] {
		t.Fatalf("fresh store got %d, %v", id, err)
	}
}

// TestRegisterAgent proves automatic node IDs are distinct and lowest-free,
// an explicit ID held by a live agent is refused, and Close deregisters.
func TestRegisterAgent(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	a, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "127.0.0.1", Port: 9092}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "127.0.0.1", Port: 9093}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.NodeID() != 1 || b.NodeID() != 2 {
		t.Fatalf("node ids %d, %d; want 1, 2", a.NodeID(), b.NodeID())
	}
	_, err = s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: 2, Host: "127.0.0.1", Port: 9094}, 10*time.Second)
	if !errors.Is(err, metastore.ErrNodeIDInUse) {
		t.Fatalf("duplicate explicit id: err = %v, want ErrNodeIDInUse", err)
	}
	c, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: 7, Host: "127.0.0.1", Port: 9095, Rack: "r1"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	agents, err := s.ListAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 3 || agents[0].NodeID != 1 || agents[1].NodeID != 2 || agents[2].NodeID != 7 ||
		agents[1].Port != 9093 || agents[2].Rack != "r1" || agents[0].StartedMs == 0 {
		t.Fatalf("ListAgents = %+v", agents)
	}

	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-a.Done()
	agents, _ = s.ListAgents(ctx)
	if len(agents) != 2 || agents[0].NodeID != 2 {
		t.Fatalf("after Close: %+v", agents)
	}
	d, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "h"}, time.Second)
	if err != nil || d.NodeID() != 1 {
		t.Fatalf("re-registration got node %v, %v; want the freed id 1", d, err)
	}
	for _, ss := range []*metastore.Session{b, c, d} {
		if err := ss.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAgentLeaseExpiry proves an agent whose process dies without revoking
// (client closed) disappears when its 1s lease expires, and its session
// reports the loss.
func TestAgentLeaseExpiry(t *testing.T) {
	s, _, eps := newStore(t)
	ctx := testCtx(t)
	dying := testenvClient(t, eps)
	ss, err := metastore.New(dying, testNS).RegisterAgent(ctx, metastore.AgentInfo{NodeID: 5, Host: "h"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if agents, _ := s.ListAgents(ctx); len(agents) != 1 {
		t.Fatalf("ListAgents = %+v, want the registered agent", agents)
	}
	if err := dying.Close(); err != nil {
		t.Fatal(err)
	}
	<-ss.Done() // the keep-alive ended with the client

	// Hang guard, not a timing assertion: the lease expires after ~1s.
	deadline := time.Now().Add(30 * time.Second)
	for {
		agents, err := s.ListAgents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(agents) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent still registered after 30s: %+v", agents)
		}
		time.Sleep(100 * time.Millisecond)
	}
	again, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: 5, Host: "h"}, time.Second)
	if err != nil {
		t.Fatalf("node id 5 not free after expiry: %v", err)
	}
	if err := again.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRegisterAgentTakesOverOwnAddress proves a restarted agent (same
// advertised address, previous lease still alive after a kill -9) takes
// the stale registration over with its node ID instead of leaving a dead
// broker listed until the lease expires.
func TestRegisterAgentTakesOverOwnAddress(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	old, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "127.0.0.1", Port: 9092}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "127.0.0.1", Port: 9093}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// The old session is never closed: as after a kill -9.
	re, err := s.RegisterAgent(ctx, metastore.AgentInfo{NodeID: -1, Host: "127.0.0.1", Port: 9092}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close(ctx)
	if re.NodeID() != old.NodeID() {
		t.Fatalf("restarted agent got node %d, want its old %d", re.NodeID(), old.NodeID())
	}
	agents, err := s.ListAgents(ctx)
	if err != nil || len(agents) != 2 {
		t.Fatalf("agents %v (%v), want exactly 2 (no stale entry)", agents, err)
	}
	if other.NodeID() == re.NodeID() {
		t.Fatal("two live agents share a node ID")
	}
}
