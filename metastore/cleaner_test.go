package metastore_test

import (
	"testing"

	"github.com/shale-dev/shale/metastore"
)

// TestCleanerState proves key compaction's cleaner state: a pass's end and
// time tell when an offset was first reached; the checkpoint never moves
// back; at most MaxCleanerPasses are kept, dropping the oldest so offsets
// only look reached later; saves are compare-and-swap; the state goes with
// its topic and a save after DeleteTopic is ErrTopicNotFound.
func TestCleanerState(t *testing.T) {
	var st metastore.CleanerState
	st.AddPass(10, 1000)
	st.AddPass(5, 2000) // behind the checkpoint: ignored
	st.AddPass(20, 3000)
	if at, ok := st.ReachedMs(9); !ok || at != 1000 {
		t.Errorf("offset 9 reached at %d (%v), want 1000", at, ok)
	}
	if at, ok := st.ReachedMs(10); !ok || at != 3000 {
		t.Errorf("offset 10 reached at %d (%v), want 3000", at, ok)
	}
	if _, ok := st.ReachedMs(20); ok || st.Checkpoint != 20 {
		t.Errorf("offset 20 reached, or checkpoint %d != 20", st.Checkpoint)
	}
	for i := range metastore.MaxCleanerPasses {
		st.AddPass(int64(21+i), int64(4000+i))
	}
	if len(st.Passes) != metastore.MaxCleanerPasses {
		t.Fatalf("%d passes kept, want %d", len(st.Passes), metastore.MaxCleanerPasses)
	}
	if at, ok := st.ReachedMs(0); !ok || at <= 1000 {
		t.Errorf("offset 0 after dropping old passes: reached at %d (%v), want later than 1000", at, ok)
	}

	s, cli, _ := newStore(t)
	ctx := testCtx(t)
	tp := mustCreateTopic(t, s, "cleaned", 2)
	got, err := s.GetCleanerState(ctx, tp.ID, 1)
	if err != nil || got.Checkpoint != 0 || got.Revision != 0 {
		t.Fatalf("fresh state: %+v %v", got, err)
	}
	got.AddPass(7, 100)
	if err := s.SaveCleanerState(ctx, tp.ID, 1, got); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.SaveCleanerState(ctx, tp.ID, 1, got), metastore.ErrConflict) // stale revision
	got, err = s.GetCleanerState(ctx, tp.ID, 1)
	if err != nil || got.Checkpoint != 7 || len(got.Passes) != 1 || got.Revision == 0 {
		t.Fatalf("saved state: %+v %v", got, err)
	}
	if _, err := s.DeleteTopic(ctx, "cleaned"); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, cli, testNS+"/cleaner/"); n != 0 {
		t.Fatalf("%d cleaner keys left after DeleteTopic", n)
	}
	got.Revision = 0
	wantErr(t, s.SaveCleanerState(ctx, tp.ID, 1, got), metastore.ErrTopicNotFound)
}
