package metastore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/shale-dev/shale/metastore"
)

// TestCommitChunks proves a commit advances the state and writes its
// entries, a stale ExpectedRevision is refused with nothing written, and a
// commit is all-or-nothing across partitions.
func TestCommitChunks(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	tp := mustCreateTopic(t, s, "t", 2)

	st0, err := s.PartitionState(ctx, tp.ID, 0)
	if err != nil || st0.NextOffset != 0 || st0.LogStartOffset != 0 || st0.Revision != 0 || st0.Producers != nil {
		t.Fatalf("initial state = %+v, %v", st0, err)
	}
	c := appendCommit(tp.ID, 0, st0, "o1", 3, 4)
	rev, err := s.CommitChunks(ctx, []metastore.ChunkCommit{c})
	if err != nil {
		t.Fatal(err)
	}
	st1, err := s.PartitionState(ctx, tp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st1.NextOffset != 7 || st1.Revision != rev {
		t.Fatalf("state after commit = %+v, want next 7 at revision %d", st1, rev)
	}
	if n, _ := s.CountEntries(ctx, tp.ID, 0); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}

	// Stale: computed from st0 again.
	_, err = s.CommitChunks(ctx, []metastore.ChunkCommit{appendCommit(tp.ID, 0, st0, "o2", 1)})
	wantErr(t, err, metastore.ErrConflict)
	if errors.Is(err, metastore.ErrTopicNotFound) {
		t.Fatalf("stale commit reported the topic gone: %v", err)
	}
	// One good and one stale partition: neither is written.
	p1, _ := s.PartitionState(ctx, tp.ID, 1)
	_, err = s.CommitChunks(ctx, []metastore.ChunkCommit{
		appendCommit(tp.ID, 1, p1, "o3", 2),
		appendCommit(tp.ID, 0, st0, "o3", 1),
	})
	wantErr(t, err, metastore.ErrConflict)
	after, _ := s.PartitionState(ctx, tp.ID, 0)
	if after.NextOffset != 7 || after.Revision != rev {
		t.Fatalf("stale commit changed partition 0: %+v", after)
	}
	if n, _ := s.CountEntries(ctx, tp.ID, 0); n != 2 {
		t.Fatalf("stale commit wrote entries: %d, want 2", n)
	}
	if n, _ := s.CountEntries(ctx, tp.ID, 1); n != 0 {
		t.Fatalf("failed multi-partition commit wrote %d entries to partition 1", n)
	}
	states, err := s.PartitionStates(ctx, tp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].NextOffset != 7 {
		t.Fatalf("PartitionStates = %+v, want only partition 0", states)
	}

	// A commit spanning two partitions succeeds atomically with one revision.
	rev2, err := s.CommitChunks(ctx, []metastore.ChunkCommit{
		appendCommit(tp.ID, 0, after, "o4", 1),
		appendCommit(tp.ID, 1, p1, "o4", 2),
	})
	if err != nil {
		t.Fatal(err)
	}
	states, _ = s.PartitionStates(ctx, tp.ID)
	if states[0].NextOffset != 8 || states[1].NextOffset != 2 || states[0].Revision != rev2 || states[1].Revision != rev2 {
		t.Fatalf("after two-partition commit: %+v (revision %d)", states, rev2)
	}
}

// TestCommitChunksDeletedTopic proves a commit prepared before the topic was
// deleted fails with ErrConflict (and ErrTopicNotFound) and writes nothing.
func TestCommitChunksDeletedTopic(t *testing.T) {
	s, cli, _ := newStore(t)
	ctx := testCtx(t)
	tp := mustCreateTopic(t, s, "t", 1)
	mustCommit(t, s, tp.ID, 0, 1)
	st, _ := s.PartitionState(ctx, tp.ID, 0)
	if _, err := s.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []metastore.ChunkCommit{
		appendCommit(tp.ID, 0, st, "late", 1),                         // from the old state
		appendCommit(tp.ID, 0, metastore.PartitionState{}, "late", 1), // from the (now absent) state
	} {
		_, err := s.CommitChunks(ctx, []metastore.ChunkCommit{c})
		wantErr(t, err, metastore.ErrConflict)
		wantErr(t, err, metastore.ErrTopicNotFound)
	}
	for _, prefix := range []string{"/index/", "/partitions/"} {
		if n := countKeys(t, cli, testNS+prefix); n != 0 {
			t.Fatalf("%d keys under %s after commits to a deleted topic", n, prefix)
		}
	}
}

// TestCommitChunksInvalid proves malformed commits are refused with
// ErrInvalid before anything is written.
func TestCommitChunksInvalid(t *testing.T) {
	s, cli, _ := newStore(t)
	ctx := testCtx(t)
	tp := mustCreateTopic(t, s, "t", 2)
	good := func() metastore.ChunkCommit { return appendCommit(tp.ID, 0, metastore.PartitionState{}, "o", 2, 3) }
	tests := []struct {
		name    string
		commits func() []metastore.ChunkCommit
	}{
		{"no commits", func() []metastore.ChunkCommit { return nil }},
		{"gap between entries", func() []metastore.ChunkCommit {
			c := good()
			c.Entries[1].BaseOffset++
			c.Entries[1].LastOffset++
			c.New.NextOffset++
			return []metastore.ChunkCommit{c}
		}},
		{"overlapping entries", func() []metastore.ChunkCommit {
			c := good()
			c.Entries[1].BaseOffset--
			return []metastore.ChunkCommit{c}
		}},
		{"unordered entries", func() []metastore.ChunkCommit {
			c := good()
			c.Entries[0], c.Entries[1] = c.Entries[1], c.Entries[0]
			return []metastore.ChunkCommit{c}
		}},
		{"next offset not after last entry", func() []metastore.ChunkCommit {
			c := good()
			c.New.NextOffset = 4
			return []metastore.ChunkCommit{c}
		}},
		{"zero size", func() []metastore.ChunkCommit {
			c := good()
			c.Entries[0].Size = 0
			return []metastore.ChunkCommit{c}
		}},
		{"last before base", func() []metastore.ChunkCommit {
			c := good()
			c.Entries[0].LastOffset = -1
			return []metastore.ChunkCommit{c}
		}},
		{"empty object key", func() []metastore.ChunkCommit {
			c := good()
			c.Entries[1].ObjectKey = ""
			return []metastore.ChunkCommit{c}
		}},
		{"log start after next", func() []metastore.ChunkCommit {
			c := good()
			c.Entries = nil
			c.New = metastore.PartitionState{NextOffset: 1, LogStartOffset: 2}
			return []metastore.ChunkCommit{c}
		}},
		{"zero topic id", func() []metastore.ChunkCommit {
			c := good()
			c.TopicID = metastore.TopicID{}
			return []metastore.ChunkCommit{c}
		}},
		{"negative partition", func() []metastore.ChunkCommit {
			c := good()
			c.Partition = -1
			return []metastore.ChunkCommit{c}
		}},
		{"partition twice", func() []metastore.ChunkCommit { return []metastore.ChunkCommit{good(), good()} }},
		{"one bad commit spoils the call", func() []metastore.ChunkCommit {
			bad := appendCommit(tp.ID, 1, metastore.PartitionState{}, "o", 1)
			bad.Entries[0].Batches = 0
			return []metastore.ChunkCommit{good(), bad}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CommitChunks(ctx, tt.commits())
			wantErr(t, err, metastore.ErrInvalid)
		})
	}
	for _, prefix := range []string{"/index/", "/partitions/"} {
		if n := countKeys(t, cli, testNS+prefix); n != 0 {
			t.Fatalf("%d keys under %s after invalid commits", n, prefix)
		}
	}
}

// TestTxnOps proves TxnOps counts the entry puts plus the state put (with a
// floor of 2 for the compares of an entry-less commit).
func TestTxnOps(t *testing.T) {
	tests := []struct {
		entries int
		want    int
	}{{0, 2}, {1, 2}, {2, 3}, {127, 128}}
	for _, tt := range tests {
		c := metastore.ChunkCommit{Entries: make([]metastore.IndexEntry, tt.entries)}
		if got := metastore.TxnOps(c); got != tt.want {
			t.Errorf("TxnOps(%d entries) = %d, want %d", tt.entries, got, tt.want)
		}
	}
}

// TestCommitChunksConcurrentWriters proves offsets are dense and assigned
// once under contention: two independent clients each make 200 commits of
// random sizes to the same 16 partitions with a read/compute/commit/retry
// loop; afterwards every partition's entries are dense from 0 with no
// overlap and NextOffset equals the records committed to it.
func TestCommitChunksConcurrentWriters(t *testing.T) {
	s, _, eps := newStore(t)
	ctx := testCtx(t)
	const partitions, commitsPerWriter, maxAttempts = 16, 200, 1000
	tp := mustCreateTopic(t, s, "contended", partitions)

	var (
		mu        sync.Mutex
		committed [partitions]int64 // records committed per partition
		conflicts int
	)
	writer := func(ctx context.Context, w int, st *metastore.Store) error {
		rng := rand.New(rand.NewPCG(uint64(w), 42))
		for i := range commitsPerWriter {
			parts := rng.Perm(partitions)[:1+rng.IntN(3)]
			sizes := make([][]int64, len(parts))
			for j := range parts {
				sizes[j] = make([]int64, 1+rng.IntN(3))
				for k := range sizes[j] {
					sizes[j][k] = 1 + rng.Int64N(50)
				}
			}
			obj := fmt.Sprintf("w%d-%d", w, i)
			for attempt := 0; ; attempt++ {
				if attempt == maxAttempts {
					return fmt.Errorf("writer %d commit %d: still conflicting after %d attempts", w, i, maxAttempts)
				}
				commits := make([]metastore.ChunkCommit, len(parts))
				for j, p := range parts {
					cur, err := st.PartitionState(ctx, tp.ID, int32(p))
					if err != nil {
						return err
					}
					commits[j] = appendCommit(tp.ID, int32(p), cur, obj, sizes[j]...)
				}
				_, err := st.CommitChunks(ctx, commits)
				if errors.Is(err, metastore.ErrConflict) {
					mu.Lock()
					conflicts++
					mu.Unlock()
					continue
				}
				if err != nil {
					return err
				}
				break
			}
			mu.Lock()
			for j, p := range parts {
				for _, n := range sizes[j] {
					committed[p] += n
				}
			}
			mu.Unlock()
		}
		return nil
	}

	stores := []*metastore.Store{s, metastore.New(testenvClient(t, eps), testNS)}
	errs := make(chan error, len(stores))
	var wg sync.WaitGroup
	for w, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- writer(ctx, w, st)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d conflicts retried", conflicts)

	for p := range int32(partitions) {
		st, err := s.PartitionState(ctx, tp.ID, p)
		if err != nil {
			t.Fatal(err)
		}
		if st.NextOffset != committed[p] {
			t.Errorf("partition %d: NextOffset %d, want %d records", p, st.NextOffset, committed[p])
		}
		next := int64(0)
		err = s.ScanEntries(ctx, tp.ID, p, 0, func(e metastore.IndexEntry) bool {
			if e.BaseOffset != next {
				t.Errorf("partition %d: entry at %d, want %d (gap or overlap)", p, e.BaseOffset, next)
			}
			next = e.LastOffset + 1
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if next != st.NextOffset {
			t.Errorf("partition %d: entries end at %d, NextOffset %d", p, next, st.NextOffset)
		}
	}
}
