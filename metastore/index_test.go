package metastore_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/shale-dev/shale/metastore"
)

// TestFindEntries proves FindEntries starts at the covering entry, else at
// the next one, honours limit, and returns nothing past the end.
func TestFindEntries(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	tp := mustCreateTopic(t, s, "t", 2)
	// Entries 0-9, 10-19, 20-29, then (a later commit leaving a hole, as
	// after compaction) 40-49.
	mustCommit(t, s, tp.ID, 0, 10, 10, 10)
	st, _ := s.PartitionState(ctx, tp.ID, 0)
	hole := appendCommit(tp.ID, 0, st, "late", 10)
	hole.Entries[0].BaseOffset, hole.Entries[0].LastOffset, hole.New.NextOffset = 40, 49, 50
	if _, err := s.CommitChunks(ctx, []metastore.ChunkCommit{hole}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		partition int32
		from      int64
		limit     int
		wantBases []int64
		wantErr   error
	}{
		{"from zero", 0, 0, 10, []int64{0, 10, 20, 40}, nil},
		{"inside first entry", 0, 5, 10, []int64{0, 10, 20, 40}, nil},
		{"limit cuts", 0, 5, 2, []int64{0, 10}, nil},
		{"limit one covering", 0, 15, 1, []int64{10}, nil},
		{"exact base", 0, 10, 10, []int64{10, 20, 40}, nil},
		{"last offset of entry", 0, 29, 10, []int64{20, 40}, nil},
		{"in the hole", 0, 30, 10, []int64{40}, nil},
		{"end of hole", 0, 39, 1, []int64{40}, nil},
		{"last offset", 0, 49, 10, []int64{40}, nil},
		{"at next offset", 0, 50, 10, nil, nil},
		{"far beyond", 0, math.MaxInt64, 10, nil, nil},
		{"empty partition", 1, 0, 10, nil, nil},
		{"zero limit", 0, 0, 0, nil, metastore.ErrInvalid},
		{"negative offset", 0, -1, 10, nil, metastore.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.FindEntries(ctx, tp.ID, tt.partition, tt.from, tt.limit)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var bases []int64
			for _, e := range got {
				bases = append(bases, e.BaseOffset)
			}
			if !slices.Equal(bases, tt.wantBases) {
				t.Fatalf("bases = %v, want %v", bases, tt.wantBases)
			}
		})
	}
}

// TestScanEntriesPaginates proves ScanEntries walks more than one page (500)
// in order without losing or repeating entries, starts at the covering
// entry, and stops when fn returns false.
func TestScanEntriesPaginates(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testCtx(t)
	tp := mustCreateTopic(t, s, "t", 1)
	const total = 1234
	// 100 entries per commit: a stock etcd's 128 operations per
	// transaction (testenv.Etcd) take no more.
	ones := make([]int64, 0, 100)
	for done := 0; done < total; done += len(ones) {
		ones = ones[:min(100, total-done)]
		for i := range ones {
			ones[i] = 2 // each entry covers two offsets
		}
		mustCommit(t, s, tp.ID, 0, ones...)
	}
	if n, err := s.CountEntries(ctx, tp.ID, 0); err != nil || n != total {
		t.Fatalf("CountEntries = %d, %v; want %d", n, err, total)
	}

	tests := []struct {
		name      string
		from      int64
		stopAfter int
		wantFirst int64
		wantCount int
	}{
		{"everything", 0, -1, 0, total},
		{"from the middle of an entry on page two", 1201, -1, 1200, total - 600},
		{"stop early", 0, 10, 0, 10},
		{"stop on a page boundary", 0, 500, 0, 500},
		{"past the end", 2 * total, -1, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			count, first, next := 0, int64(-1), int64(-1)
			err := s.ScanEntries(ctx, tp.ID, 0, tt.from, func(e metastore.IndexEntry) bool {
				if first < 0 {
					first = e.BaseOffset
				} else if e.BaseOffset != next {
					t.Fatalf("entry at %d after one ending at %d", e.BaseOffset, next-1)
				}
				next = e.LastOffset + 1
				count++
				return count != tt.stopAfter
			})
			if err != nil {
				t.Fatal(err)
			}
			if first != tt.wantFirst || count != tt.wantCount {
				t.Fatalf("first %d count %d, want first %d count %d", first, count, tt.wantFirst, tt.wantCount)
			}
		})
	}
}
