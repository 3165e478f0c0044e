package span

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
)

// Span is one contiguously stored, checksummed run of record batches that
// an index entry points to: the whole byte range of a chunk entry, or one
// chunk of a compacted segment entry. Reading a span is one ranged GET.
type Span struct {
	Object string
	Pos    int64
	Size   int64
	CRC    uint32 // CRC-32C of [Pos, Pos+Size)
	// StoredBase is the offset the first batch stores; it is absolute
	// offset AbsBase.
	StoredBase int64
	AbsBase    int64
	Records    int64 // offsets spanned
	// MaxTimestamp is the largest batch maxTimestamp in the span.
	MaxTimestamp int64
}

// LastOffset is the absolute offset of the span's last record.
func (s Span) LastOffset() int64 { return s.AbsBase + s.Records - 1 }

// maxSpanSize refuses index entries or footers claiming absurd sizes, so a
// corrupt index cannot make an agent allocate without bound.
const maxSpanSize = 1 << 30

// DefaultFooterCacheEntries bounds a FooterCache: 1,024 footers of 128 MiB
// segments in 1 MiB chunks are about 10 MiB of memory.
const DefaultFooterCacheEntries = 1024

// FooterCache keeps the footers (chunk lists) of compacted segment objects
// in memory, least recently used first out, so that a reader needs one
// ranged GET per chunk once a segment's footer is known. Objects are
// immutable, so an entry never goes stale. Safe for concurrent use.
type FooterCache struct {
	mu    sync.Mutex
	max   int
	lru   *list.List // of *footerItem, most recent first
	items map[string]*list.Element
}

type footerItem struct {
	key    string
	chunks []segment.ChunkInfo
}

// NewFooterCache returns a cache of at most maxEntries footers (<= 0: the
// default).
func NewFooterCache(maxEntries int) *FooterCache {
	if maxEntries <= 0 {
		maxEntries = DefaultFooterCacheEntries
	}
	return &FooterCache{max: maxEntries, lru: list.New(), items: make(map[string]*list.Element)}
}

// Len is the number of cached footers.
func (c *FooterCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *FooterCache) get(key string) ([]segment.ChunkInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*footerItem).chunks, true
	}
	return nil, false
}

func (c *FooterCache) put(key string, chunks []segment.ChunkInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return
	}
	c.items[key] = c.lru.PushFront(&footerItem{key: key, chunks: chunks})
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*footerItem)
		delete(c.items, old.key)
	}
}

// Spans returns the spans of index entry e of partition (id, partition), in
// offset order: e itself for a chunk entry; the segment's chunks for a
// segment entry, whose footer comes from the cache or from one ranged GET
// of [e.Pos, e.Pos+e.Size), checked against e.CRC. A footer that does not
// cover exactly e's offsets is segment.ErrCorrupt.
func (c *FooterCache) Spans(ctx context.Context, store s3tier.Store, id metastore.TopicID, partition int32, e metastore.IndexEntry) ([]Span, error) {
	switch e.Kind {
	case metastore.EntryChunk:
		return []Span{{Object: e.ObjectKey, Pos: e.Pos, Size: e.Size, CRC: e.CRC, StoredBase: e.StoredBase,
			AbsBase: e.BaseOffset, Records: e.Records(), MaxTimestamp: e.MaxTimestamp}}, nil
	case metastore.EntrySegment:
	default:
		return nil, fmt.Errorf("index entry %d..%d of %s: unknown kind %d: %w", e.BaseOffset, e.LastOffset, e.ObjectKey, e.Kind, segment.ErrCorrupt)
	}
	chunks, ok := c.get(e.ObjectKey)
	if !ok {
		data, err := ReadRange(ctx, store, e.ObjectKey, e.Pos, e.Size)
		if err != nil {
			return nil, err
		}
		if got := segment.Checksum(data); got != e.CRC {
			return nil, fmt.Errorf("segment %s footer [%d, %d): CRC 0x%08x, index says 0x%08x: %w", e.ObjectKey, e.Pos, e.Pos+e.Size, got, e.CRC, segment.ErrCRC)
		}
		rd, err := segment.OpenTail(nil, e.Pos+e.Size, e.ObjectKey, data)
		if err != nil {
			return nil, err
		}
		chunks = rd.Chunks()
		c.put(e.ObjectKey, chunks)
	}
	spans := make([]Span, 0, len(chunks))
	next := e.BaseOffset
	for _, ch := range chunks {
		if metastore.TopicID(ch.TopicID) != id || ch.Partition != partition {
			continue
		}
		if ch.StoredBase != next {
			return nil, fmt.Errorf("segment %s: chunk at offset %d, want %d (entry %d..%d): %w", e.ObjectKey, ch.StoredBase, next, e.BaseOffset, e.LastOffset, segment.ErrCorrupt)
		}
		spans = append(spans, Span{Object: e.ObjectKey, Pos: ch.Pos, Size: ch.Size, CRC: ch.CRC, StoredBase: ch.StoredBase,
			AbsBase: ch.StoredBase, Records: ch.Records, MaxTimestamp: ch.MaxTimestamp})
		next = ch.NextOffset()
	}
	if next != e.LastOffset+1 {
		return nil, fmt.Errorf("segment %s: chunks of %s/%d cover %d..%d, entry says %d..%d: %w", e.ObjectKey, id, partition, e.BaseOffset, next-1, e.BaseOffset, e.LastOffset, segment.ErrCorrupt)
	}
	return spans, nil
}

// ParseSpan checks bytes read for sp (see segment.ParseChunk) and that the
// batches span exactly sp's stored offsets.
func ParseSpan(data []byte, sp Span) (segment.Chunk, error) {
	ch, err := segment.ParseChunk(data, sp.Object, sp.Pos, sp.CRC)
	if err != nil {
		return segment.Chunk{}, err
	}
	if ch.StoredBase() != sp.StoredBase || ch.NextOffset()-ch.StoredBase() != sp.Records {
		return segment.Chunk{}, fmt.Errorf("%s [%d, %d): batches store offsets %d..%d, index says %d..%d: %w", sp.Object, sp.Pos, sp.Pos+sp.Size,
			ch.StoredBase(), ch.NextOffset()-1, sp.StoredBase, sp.StoredBase+sp.Records-1, segment.ErrCorrupt)
	}
	return ch, nil
}

// ReadSpan reads sp with one ranged GET and checks it (ParseSpan).
func ReadSpan(ctx context.Context, store s3tier.Store, sp Span) (segment.Chunk, error) {
	data, err := ReadRange(ctx, store, sp.Object, sp.Pos, sp.Size)
	if err != nil {
		return segment.Chunk{}, err
	}
	return ParseSpan(data, sp)
}
