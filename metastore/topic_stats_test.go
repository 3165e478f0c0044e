package metastore_test

import (
	"sync"
	"testing"

	"github.com/shale-dev/shale/metastore"
)

// TestCompressionStats proves concurrent adds to a topic's compression
// counters all count (compare-and-swap), and that the counters go with the
// topic: DeleteTopic removes them and a later add is ErrTopicNotFound
// instead of leaving an orphan key.
func TestCompressionStats(t *testing.T) {
	s, cli, _ := newStore(t)
	ctx := testCtx(t)
	tp := mustCreateTopic(t, s, "stats", 1)
	if c, err := s.GetCompressionStats(ctx, tp.ID); err != nil || c != (metastore.CompressionStats{}) {
		t.Fatalf("fresh topic: %+v %v", c, err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.AddCompressionStats(ctx, tp.ID, metastore.CompressionStats{Produced: 100, Stored: 40}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	c, err := s.GetCompressionStats(ctx, tp.ID)
	if err != nil || c.Produced != 800 || c.Stored != 320 || c.Saved() != 480 {
		t.Fatalf("after 8 adds: %+v %v", c, err)
	}
	if n := countKeys(t, cli, testNS+"/topic-stats/"); n != 1 {
		t.Fatalf("%d stats keys, want 1", n)
	}
	if _, err := s.DeleteTopic(ctx, "stats"); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, cli, testNS+"/topic-stats/"); n != 0 {
		t.Fatalf("%d stats keys left after DeleteTopic", n)
	}
	wantErr(t, s.AddCompressionStats(ctx, tp.ID, metastore.CompressionStats{Produced: 1}), metastore.ErrTopicNotFound)
	if n := countKeys(t, cli, testNS+"/topic-stats/"); n != 0 {
		t.Fatalf("an add after DeleteTopic left %d keys", n)
	}
}
