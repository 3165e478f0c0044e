package engine

import (
	"testing"

	"github.com/shale-dev/shale/metastore"
)

// entriesAt makes n contiguous index entries of 10 offsets from base.
func entriesAt(base int64, n int) []metastore.IndexEntry {
	es := make([]metastore.IndexEntry, n)
	for i := range es {
		es[i] = metastore.IndexEntry{BaseOffset: base + int64(10*i), LastOffset: base + int64(10*i) + 9}
	}
	return es
}

// TestIndexCacheKeepsHistoryBesideTail proves a history reader's entries
// and the writer's new commits do not evict each other: the tail (fed by
// commits) and the history run (fed by fetches of old offsets) are both
// served, so a replay while the partition is written needs no etcd read
// per fetch; and that nothing non-contiguous is ever served.
func TestIndexCacheKeepsHistoryBesideTail(t *testing.T) {
	c := newIndexCache()
	k := partKey{metastore.TopicID{1}, 0}
	c.add(k, entriesAt(10000, 4)) // tail: 10000..10039
	c.add(k, entriesAt(0, 16))    // a replay reads history: 0..159
	c.add(k, entriesAt(10040, 1)) // a commit continues the tail
	c.add(k, entriesAt(160, 16))  // the replay goes on: 160..319
	for _, off := range []int64{0, 155, 160, 319, 10000, 10045} {
		es := c.lookup(k, off)
		if len(es) == 0 || es[0].BaseOffset > off || es[0].LastOffset < off {
			t.Fatalf("offset %d: not served from the cache (%v)", off, es)
		}
		for i := 1; i < len(es); i++ {
			if es[i].BaseOffset != es[i-1].LastOffset+1 {
				t.Fatalf("offset %d: lookup not contiguous at %d", off, es[i].BaseOffset)
			}
		}
	}
	if es := c.lookup(k, 500); es != nil {
		t.Fatalf("offset 500 is in no run, got %v", es)
	}
	// A jump in the tail (a missed commit) keeps the old tail as history
	// and never stitches across the gap.
	c.add(k, entriesAt(20000, 1))
	if es := c.lookup(k, 10040); len(es) != 1 || es[0].LastOffset != 10049 {
		t.Fatalf("old tail after a jump: %v", es)
	}
	if es := c.lookup(k, 20000); len(es) != 1 {
		t.Fatalf("new tail: %v", es)
	}
	c.forget(k)
	if c.lookup(k, 20000) != nil || c.lookup(k, 10040) != nil {
		t.Fatal("forget left entries")
	}
}

// TestIndexCacheDropsReadsThatRacedARewrite proves that entries a fetch
// read from etcd are not filed when the partition's cached entries were
// dropped (a compaction's swap seen by the watch, or a resync) after the
// read began: filed, they would be served until the partition's next
// rewrite, the log as it was before the swap (kafka-go's
// TestReaderReadCompactedMessage read duplicates for its 90 s after key
// compaction had removed them). A read that began after the drop is filed.
func TestIndexCacheDropsReadsThatRacedARewrite(t *testing.T) {
	c := newIndexCache()
	k := partKey{metastore.TopicID{1}, 0}
	for _, drop := range []func(){func() { c.forget(k) }, c.forgetAll} {
		g := c.generation(k)
		drop() // the watch, while the read was in flight
		c.addRead(k, g, entriesAt(0, 4))
		if es := c.lookup(k, 0); es != nil {
			t.Fatalf("entries read before the drop are cached: %v", es)
		}
		c.addRead(k, c.generation(k), entriesAt(0, 1))
		if es := c.lookup(k, 0); len(es) != 1 {
			t.Fatalf("entries read after the drop: cached %v, want the one read", es)
		}
		c.forget(k)
	}
}
