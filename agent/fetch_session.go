package agent

// Fetch sessions (KIP-227), as Kafka's FetchManager keeps them. The rules
// are in fetch.go's header; this file holds the cache and the per-session
// partition state.

import (
	"container/list"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/metastore"
)

const (
	// fetchSessionSlots is Kafka's max.incremental.fetch.session.cache.slots.
	fetchSessionSlots = 1000
	// fetchSessionEviction is Kafka's min.incremental.fetch.session.eviction.ms:
	// a session unused this long may be evicted for a new one.
	fetchSessionEviction = 2 * time.Minute
	// fetchSessionPartitions bounds the partitions all sessions of an
	// agent hold (about 50 MiB), so clients cannot grow sessions without
	// bound (Kafka bounds only the number of sessions). A session that
	// does not fit is not created (the client keeps fetching in full); an
	// incremental fetch that would exceed it closes its session and is
	// answered FETCH_SESSION_ID_NOT_FOUND (the client opens a new one).
	fetchSessionPartitions = 1 << 18

	sessionInitialEpoch = 0  // JFetchMetadata.INITIAL_EPOCH
	sessionFinalEpoch   = -1 // JFetchMetadata.FINAL_EPOCH
)

// sessKey names a partition in a session: by topic ID in sessions made
// with Fetch v13+, by name before (a session never mixes the two).
type sessKey struct {
	id   metastore.TopicID
	name string
	part int32
}

// sessPart is a partition's cached state: what the client last asked for
// and what the session last answered (-1: answer it next time).
type sessPart struct {
	key    sessKey
	offset int64
	max    int32
	hw     int64
	lso    int64
	stable int64 // last stable offset (read_committed), as Kafka's sessions compare it too
}

type fetchSession struct {
	mu    sync.Mutex
	id    int32
	epoch int32
	byID  bool
	parts map[sessKey]*list.Element // of *sessPart
	order *list.List                // the session's partition order

	closed bool // removed from the cache (under mu)

	// For eviction, read without mu (the cache's lock is taken first).
	lastUsed atomic.Int64 // unix nanoseconds
	size     atomic.Int32 // len(parts)
}

// close marks fs removed from c and gives its partitions back to c's
// budget. Lock order: c.mu (if held) before fs.mu.
func (fs *fetchSession) close(c *fetchSessionCache) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.closed {
		fs.closed = true
		c.total.Add(-int64(len(fs.parts)))
	}
}

// fetchSessionCache holds one agent's fetch sessions.
type fetchSessionCache struct {
	mu       sync.Mutex
	slots    int
	maxParts int64
	total    atomic.Int64 // partitions held by all sessions
	sessions map[int32]*fetchSession
}

func newFetchSessionCache(slots int, maxParts int64) *fetchSessionCache {
	return &fetchSessionCache{slots: slots, maxParts: maxParts, sessions: make(map[int32]*fetchSession)}
}

// remove closes a session; it reports whether it existed. The caller must
// not hold the session's lock.
func (c *fetchSessionCache) remove(id int32) bool {
	c.mu.Lock()
	fs, ok := c.sessions[id]
	delete(c.sessions, id)
	c.mu.Unlock()
	if ok {
		fs.close(c)
	}
	return ok
}

// get returns the session with id, or nil.
func (c *fetchSessionCache) get(id int32) *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[id]
}

// create adds a session holding parts (with the state just answered) and
// returns its ID, or 0 when the cache is full and no session may be evicted
// for it, or its partitions do not fit the budget (the client then keeps
// sending full fetches). As Kafka does, a session unused for
// fetchSessionEviction is evicted first, else the smallest session if it
// holds fewer partitions than the new one.
func (c *fetchSessionCache) create(byID bool, parts []sessPart) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.total.Load()+int64(len(parts)) > c.maxParts {
		return 0
	}
	if len(c.sessions) >= c.slots && !c.evictLocked(now, len(parts)) {
		return 0
	}
	fs := &fetchSession{epoch: 1, byID: byID, parts: make(map[sessKey]*list.Element, len(parts)), order: list.New()}
	fs.lastUsed.Store(now.UnixNano())
	for _, p := range parts {
		if e, ok := fs.parts[p.key]; ok {
			*e.Value.(*sessPart) = p
			continue
		}
		fs.parts[p.key] = fs.order.PushBack(&sessPart{key: p.key, offset: p.offset, max: p.max, hw: p.hw, lso: p.lso, stable: p.stable})
	}
	fs.size.Store(int32(len(fs.parts)))
	c.total.Add(int64(len(fs.parts)))
	for {
		id := rand.Int32()
		if _, used := c.sessions[id]; id != 0 && !used {
			fs.id = id
			c.sessions[id] = fs
			return id
		}
	}
}

func (c *fetchSessionCache) evictLocked(now time.Time, size int) bool {
	var (
		stale, small      *fetchSession
		staleUsed, smallN int64
	)
	for _, s := range c.sessions {
		used, n := s.lastUsed.Load(), int64(s.size.Load())
		if now.UnixNano()-used > int64(fetchSessionEviction) && (stale == nil || used < staleUsed) {
			stale, staleUsed = s, used
		}
		if small == nil || n < smallN {
			small, smallN = s, n
		}
	}
	victim := stale
	if victim == nil && small != nil && smallN < int64(size) {
		victim = small
	}
	if victim == nil {
		return false
	}
	delete(c.sessions, victim.id)
	victim.close(c)
	return true
}

// sessionFetch is what one Fetch request asks for once its session
// metadata is applied.
type sessionFetch struct {
	errCode int16         // top-level error: answer nothing else
	session *fetchSession // incremental fetch of this session; nil: full
	create  bool          // full fetch that creates a session
	wanted  []sessPart    // partitions to read, in order
}

// openSession applies a request's session ID and epoch (KIP-227) and
// returns the partitions to read. Under Fetch v7 there are no sessions.
func (c *fetchSessionCache) openSession(req *kmsg.FetchRequest) sessionFetch {
	byID := req.Version >= 13
	fromRequest := func() []sessPart {
		var out []sessPart
		for _, rt := range req.Topics {
			for _, p := range rt.Partitions {
				out = append(out, sessPart{key: requestKey(byID, rt.TopicID, rt.Topic, p.Partition), offset: p.FetchOffset, max: p.PartitionMaxBytes, hw: -1, lso: -1})
			}
		}
		return out
	}
	if req.Version < 7 {
		return sessionFetch{wanted: fromRequest()}
	}
	if req.SessionEpoch == sessionInitialEpoch || req.SessionEpoch == sessionFinalEpoch {
		// A full fetch closes the session it names, whatever the epoch.
		if req.SessionID != 0 {
			c.remove(req.SessionID)
		}
		return sessionFetch{wanted: fromRequest(), create: req.SessionEpoch == sessionInitialEpoch}
	}
	fs := c.get(req.SessionID)
	if fs == nil {
		return sessionFetch{errCode: kerr.FetchSessionIDNotFound.Code}
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	switch {
	case fs.closed:
		return sessionFetch{errCode: kerr.FetchSessionIDNotFound.Code}
	case fs.epoch != req.SessionEpoch:
		return sessionFetch{errCode: kerr.InvalidFetchSessionEpoch.Code}
	case fs.byID != byID:
		return sessionFetch{errCode: kerr.FetchSessionTopicIDError.Code}
	}
	before := len(fs.parts)
	for _, p := range fromRequest() {
		if e, ok := fs.parts[p.key]; ok {
			sp := e.Value.(*sessPart)
			sp.offset, sp.max = p.offset, p.max
			continue
		}
		fs.parts[p.key] = fs.order.PushBack(&p)
	}
	for _, ft := range req.ForgottenTopics {
		for _, part := range ft.Partitions {
			k := requestKey(byID, ft.TopicID, ft.Topic, part)
			if e, ok := fs.parts[k]; ok {
				fs.order.Remove(e)
				delete(fs.parts, k)
			}
		}
	}
	fs.size.Store(int32(len(fs.parts)))
	grew := len(fs.parts) - before
	if c.total.Add(int64(grew)) > c.maxParts && grew > 0 {
		fs.mu.Unlock()
		c.remove(fs.id)
		fs.mu.Lock()
		return sessionFetch{errCode: kerr.FetchSessionIDNotFound.Code}
	}
	if len(fs.parts) == 0 {
		// Kafka closes a session left empty and answers sessionless.
		fs.mu.Unlock()
		c.remove(fs.id)
		fs.mu.Lock()
		return sessionFetch{wanted: fromRequest()}
	}
	fs.lastUsed.Store(time.Now().UnixNano())
	fs.epoch = nextSessionEpoch(fs.epoch)
	out := sessionFetch{session: fs, wanted: make([]sessPart, 0, fs.order.Len())}
	for e := fs.order.Front(); e != nil; e = e.Next() {
		out.wanted = append(out.wanted, *e.Value.(*sessPart))
	}
	return out
}

func requestKey(byID bool, id [16]byte, name string, part int32) sessKey {
	if byID {
		return sessKey{id: metastore.TopicID(id), part: part}
	}
	return sessKey{name: name, part: part}
}

// nextSessionEpoch is JFetchMetadata.nextEpoch.
func nextSessionEpoch(e int32) int32 {
	switch {
	case e < 0:
		return sessionFinalEpoch
	case e == 1<<31-1:
		return 1
	}
	return e + 1
}

// filterIncremental records what an incremental answer carries for each
// session partition and keeps in it only those the client must hear about
// (Kafka's CachedPartition.maybeUpdateResponseData): records, an error, or
// a changed high watermark or log start offset. Partitions that returned
// records move to the end of the session's order, so the next fetches
// serve the others first. slots[i] answers wanted[i].
func (fs *fetchSession) filterIncremental(wanted []sessPart, slots []*kmsg.FetchResponseTopicPartition) []bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	keep := make([]bool, len(slots))
	for i, op := range slots {
		e, ok := fs.parts[wanted[i].key]
		if !ok {
			keep[i] = true // forgotten meanwhile by a newer request: answer anyway
			continue
		}
		sp := e.Value.(*sessPart)
		must := len(op.RecordBatches) > 0 || op.ErrorCode != 0 || sp.hw != op.HighWatermark || sp.lso != op.LogStartOffset ||
			sp.stable != op.LastStableOffset
		sp.hw, sp.lso, sp.stable = op.HighWatermark, op.LogStartOffset, op.LastStableOffset
		if op.ErrorCode != 0 {
			sp.hw = -1 // answer it again once the error is gone
		}
		if len(op.RecordBatches) > 0 {
			fs.order.MoveToBack(e)
		}
		keep[i] = must
	}
	return keep
}
