package engine

import (
	"context"
	"log/slog"
	"sort"
	"sync"

	"github.com/shale-dev/shale/metastore"
)

// stateView is this agent's view of partitions' offsets, kept fresh by an
// etcd watch and by its own commits, with change notification for long
// polls. It is a cache: the answers that must be exact (ListOffsets, an
// offset past the cached end) re-read etcd.
type stateView struct {
	meta  *metastore.Store
	mu    sync.Mutex
	parts map[partKey]*partView
}

type partView struct {
	next, start int64
	lso         int64 // last stable offset
	known       bool
	wake        chan struct{} // closed and replaced when next advances
}

func newStateView(meta *metastore.Store) *stateView {
	return &stateView{meta: meta, parts: make(map[partKey]*partView)}
}

func (v *stateView) part(k partKey) *partView {
	p := v.parts[k]
	if p == nil {
		p = &partView{wake: make(chan struct{})}
		v.parts[k] = p
	}
	return p
}

// partOffsets are one partition's offsets in the view.
type partOffsets struct {
	next, start, lso int64
}

// advance moves the view forward; it never moves offsets backwards, so a
// late watch event cannot undo a newer commit. (The last stable offset
// never moves back either: a transaction opened later starts at or
// after the next offset of its time.)
func (v *stateView) advance(k partKey, next, start, lso int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.part(k)
	changed := !p.known || next > p.next || start > p.start || lso > p.lso
	if !p.known || next > p.next {
		p.next = next
	}
	if !p.known || start > p.start {
		p.start = start
	}
	if !p.known || lso > p.lso {
		p.lso = lso
	}
	p.known = true
	if changed {
		close(p.wake)
		p.wake = make(chan struct{})
	}
}

func (v *stateView) forget(k partKey) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p := v.parts[k]; p != nil {
		close(p.wake)
		delete(v.parts, k)
	}
}

// get returns the cached offsets, reading etcd on a miss.
func (v *stateView) get(ctx context.Context, k partKey) (next, start int64, err error) {
	o, err := v.getAll(ctx, k)
	return o.next, o.start, err
}

func (v *stateView) getAll(ctx context.Context, k partKey) (partOffsets, error) {
	v.mu.Lock()
	if p := v.parts[k]; p != nil && p.known {
		o := partOffsets{next: p.next, start: p.start, lso: p.lso}
		v.mu.Unlock()
		return o, nil
	}
	v.mu.Unlock()
	return v.refreshAll(ctx, k)
}

// refresh reads the partition's state from etcd (a linearizable read).
func (v *stateView) refresh(ctx context.Context, k partKey) (next, start int64, err error) {
	o, err := v.refreshAll(ctx, k)
	return o.next, o.start, err
}

func (v *stateView) refreshAll(ctx context.Context, k partKey) (partOffsets, error) {
	st, err := v.meta.PartitionState(ctx, k.id, k.p)
	if err != nil {
		return partOffsets{}, err
	}
	o := partOffsets{next: st.NextOffset, start: st.LogStartOffset, lso: st.LastStableOffset()}
	v.advance(k, o.next, o.start, o.lso)
	return o, nil
}

// wakeChan is closed when the partition's offsets next change.
func (v *stateView) wakeChan(k partKey) <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.part(k).wake
}

func (v *stateView) watch(ctx context.Context, rev int64, log *slog.Logger) {
	for ev := range v.meta.WatchStates(ctx, rev) {
		k := partKey{ev.TopicID, ev.Partition}
		switch {
		case ev.Resync:
			log.Debug("state watch resynced", "revision", ev.Revision)
			v.mu.Lock()
			for k, p := range v.parts {
				close(p.wake)
				delete(v.parts, k)
			}
			v.mu.Unlock()
		case ev.Deleted:
			v.forget(k)
		default:
			v.advance(k, ev.State.NextOffset, ev.State.LogStartOffset, ev.State.LastStableOffset())
		}
	}
}

// indexCache keeps index entries of each partition in two contiguous,
// sorted runs: the tail (the most recent entries, fed by commits and the
// watch, so fetches of recent data need no etcd read) and one history run
// (entries older than the tail that a fetch read from etcd, so a consumer
// replaying history while the partition is written reads etcd once per
// run of entries, not on every fetch). A run must stay contiguous to be
// trusted: entries that do not continue one replace it.
//
// Entries a fetch read from etcd are filed only if the partition's index
// was not rewritten since the read began (addRead with the generation
// taken before it): otherwise a read that raced a compaction's swap would
// file the replaced entries after the watch dropped them, and the agent
// would serve the old log until the partition's next rewrite (kafka-go's
// TestReaderReadCompactedMessage read the uncompacted log for its 90 s).
type indexCache struct {
	mu    sync.Mutex
	parts map[partKey]*indexRuns
	gens  map[partKey]uint64 // bumped by forget
	epoch uint64             // bumped by a watch resync, which drops every partition
}

// cacheGen is a partition's generation in the index cache.
type cacheGen struct{ epoch, gen uint64 }

type indexRuns struct {
	tail, hist []metastore.IndexEntry
}

// maxCachedEntries bounds the entries kept per run.
const maxCachedEntries = 512

func newIndexCache() *indexCache {
	return &indexCache{parts: make(map[partKey]*indexRuns), gens: make(map[partKey]uint64)}
}

// generation is taken before reading entries from etcd, for addRead.
func (c *indexCache) generation(k partKey) cacheGen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cacheGen{c.epoch, c.gens[k]}
}

// addRead files entries read from etcd (add) unless the partition's cached
// entries were dropped since g was taken: they may predate a rewrite.
func (c *indexCache) addRead(k partKey, g cacheGen, entries []metastore.IndexEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if (cacheGen{c.epoch, c.gens[k]}) == g {
		c.addLocked(k, entries)
	}
}

// lookup returns the cached entries starting with the one covering offset.
func (c *indexCache) lookup(k partKey, offset int64) []metastore.IndexEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.parts[k]
	if r == nil {
		return nil
	}
	for _, es := range [][]metastore.IndexEntry{r.tail, r.hist} {
		if len(es) == 0 || offset < es[0].BaseOffset || offset > es[len(es)-1].LastOffset {
			continue
		}
		i := sort.Search(len(es), func(i int) bool { return es[i].LastOffset >= offset })
		return append([]metastore.IndexEntry(nil), es[i:min(len(es), i+16)]...)
	}
	return nil
}

// add files entries (sorted, contiguous) into the tail run or, when they
// end before the tail begins, into the history run.
func (c *indexCache) add(k partKey, entries []metastore.IndexEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(k, entries)
}

func (c *indexCache) addLocked(k partKey, entries []metastore.IndexEntry) {
	if len(entries) == 0 {
		return
	}
	r := c.parts[k]
	if r == nil {
		r = &indexRuns{}
		c.parts[k] = r
	}
	last := entries[len(entries)-1].LastOffset
	switch {
	case len(r.tail) > 0 && last < r.tail[0].BaseOffset:
		r.hist = extendRun(r.hist, entries)
	case len(r.tail) > 0 && last <= r.tail[len(r.tail)-1].LastOffset:
		// Already known (our own commit seen again through the watch), or
		// straddling the tail's start: nothing to add.
	default:
		old := r.tail
		r.tail = extendRun(r.tail, entries)
		switch {
		case len(old) > 0 && old[len(old)-1].LastOffset < r.tail[0].BaseOffset:
			r.hist = old // a newer run replaced the tail: the old one is history now
		case len(r.hist) > 0 && r.hist[len(r.hist)-1].LastOffset >= r.tail[0].BaseOffset:
			r.hist = nil // the tail caught up with the history run
		}
	}
}

// extendRun appends entries to run when they continue it, ignores them when
// run already covers them, and otherwise starts a new run; it keeps the
// last maxCachedEntries.
func extendRun(run, entries []metastore.IndexEntry) []metastore.IndexEntry {
	switch {
	case len(run) > 0 && entries[0].BaseOffset == run[len(run)-1].LastOffset+1:
		run = append(run, entries...)
	case len(run) > 0 && entries[0].BaseOffset >= run[0].BaseOffset && entries[len(entries)-1].LastOffset <= run[len(run)-1].LastOffset:
		return run
	default:
		run = append([]metastore.IndexEntry(nil), entries...)
	}
	if len(run) > maxCachedEntries {
		run = append([]metastore.IndexEntry(nil), run[len(run)-maxCachedEntries:]...)
	}
	return run
}

func (c *indexCache) forget(k partKey) {
	c.mu.Lock()
	delete(c.parts, k)
	c.gens[k]++
	c.mu.Unlock()
}

// forgetAll drops every partition's entries (a watch resync).
func (c *indexCache) forgetAll() {
	c.mu.Lock()
	clear(c.parts)
	c.epoch++
	c.mu.Unlock()
}

func (c *indexCache) watch(ctx context.Context, meta *metastore.Store, rev int64, log *slog.Logger) {
	for ev := range meta.WatchIndex(ctx, rev) {
		k := partKey{ev.TopicID, ev.Partition}
		switch {
		case ev.Resync:
			log.Debug("index watch resynced", "revision", ev.Revision)
			c.forgetAll()
		case ev.Deleted, ev.Overwrite:
			// Retention, compaction or topic deletion rewrote the index (an
			// overwrite: key compaction replaced a single entry).
			c.forget(k)
		default:
			c.add(k, []metastore.IndexEntry{ev.Entry})
		}
	}
}
