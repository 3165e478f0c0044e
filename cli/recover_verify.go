package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
	"github.com/shale-dev/shale/segment"
	"github.com/shale-dev/shale/span"
)

// verifyWorkers is how many objects recover checks at once.
const verifyWorkers = 16

// verifyTailBytes is how much of an object's end recover reads in one
// ranged GET to find its trailer and footer: the footer of up to 107
// chunks (76 bytes each; a fresh object holds one chunk per partition it
// got records for); a larger footer costs a second GET. segment.Open reads
// 64 KiB, which at 1 GiB in 276 objects made recover read 17.4 MiB.
const verifyTailBytes = 8 << 10

// planEntry is one index entry of a manifest: its key (relative to the
// namespace) and where it lies in the plan's kvs.
type planEntry struct {
	rel       string
	kv        int // index into recoveryPlan.kvs
	id        metastore.TopicID
	partition int32
	e         metastore.IndexEntry
}

// lostRange is a range of offsets of one partition whose records were in
// an object recover skipped.
type lostRange struct {
	topic       string
	partition   int32
	first, last int64
	object      string
}

// corruptObject is an object the manifest references that failed its
// check, or is not in the bucket (errNotInBucket).
type corruptObject struct {
	key string
	err error
}

// errNotInBucket is a referenced object the bucket listing lacks. Under
// --skip-corrupt it is skipped as a corrupt one is, unless every object
// is missing (the wrong bucket or prefix: recover refuses).
var errNotInBucket = errors.New("not in the bucket")

// relPartition parses the partition of a relative index/<id>/<p>/<base> key.
func relPartition(rel string) (int32, bool) {
	parts := strings.Split(rel, "/")
	if len(parts) != 4 {
		return 0, false
	}
	p, err := strconv.ParseInt(parts[2], 10, 32)
	return int32(p), err == nil
}

// storeReaderAt reads an object through ranged GETs (span.ReadRangeInto:
// a body failing midway resumes; a range past the object's end is
// segment.ErrTruncated).
type storeReaderAt struct {
	ctx   context.Context
	store s3tier.Store
	key   string
}

func (r storeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := span.ReadRangeInto(r.ctx, r.store, r.key, off, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// checkObject checks one object against the index entries that point into
// it, reading only: its size (from the listing) must hold every entry; its
// trailer and footer (one ranged GET of its end) must decode and pass
// their CRC; each chunk entry's byte range must be chunks of its
// partition in the footer, starting at its stored base, with its CRC when
// it is one chunk; each segment entry's footer-and-trailer range must
// have its CRC. With data, every chunk's bytes are read too (one GET
// streaming the object) and checked against the footer's CRCs. Damage is
// an error wrapping segment.ErrCorrupt; anything else (the store failing)
// is returned as it is.
func checkObject(ctx context.Context, store s3tier.Store, key string, size int64, entries []planEntry, data bool) error {
	tailLen := min(size, verifyTailBytes)
	for _, pe := range entries {
		e := pe.e
		if e.Pos < 0 || e.Size <= 0 || e.Pos+e.Size > size {
			return fmt.Errorf("%w: the object is %d bytes, but offsets %d-%d of partition %d are indexed at bytes [%d, %d) (truncated?)",
				segment.ErrTruncated, size, e.BaseOffset, e.LastOffset, pe.partition, e.Pos, e.Pos+e.Size)
		}
		if e.Kind == metastore.EntrySegment {
			tailLen = max(tailLen, size-e.Pos)
		}
	}
	ra := storeReaderAt{ctx: ctx, store: store, key: key}
	tail := make([]byte, tailLen)
	if _, err := ra.ReadAt(tail, size-tailLen); err != nil {
		return err
	}
	rd, err := segment.OpenTail(ra, size, key, tail)
	if err != nil {
		return err
	}
	chunks := rd.Chunks()
	for _, pe := range entries {
		e := pe.e
		if e.Kind == metastore.EntrySegment {
			if e.Pos+e.Size != size {
				return fmt.Errorf("%w: segment entry of offsets %d-%d ends at byte %d, the object at %d", segment.ErrCorrupt, e.BaseOffset, e.LastOffset, e.Pos+e.Size, size)
			}
			b := tail[e.Pos-(size-tailLen):]
			if got := segment.Checksum(b); got != e.CRC {
				return fmt.Errorf("%w: footer and trailer CRC %08x, the index says %08x", segment.ErrCRC, got, e.CRC)
			}
			continue
		}
		if err := chunkEntryInFooter(pe, chunks); err != nil {
			return err
		}
	}
	if !data {
		return nil
	}
	return checkChunkData(ctx, store, key, chunks)
}

// chunkEntryInFooter checks that a chunk entry's bytes are chunks of its
// partition in the footer, back to back, the first at its stored base.
func chunkEntryInFooter(pe planEntry, chunks []segment.ChunkInfo) error {
	e := pe.e
	i, _ := slices.BinarySearchFunc(chunks, e.Pos, func(c segment.ChunkInfo, pos int64) int { return cmp.Compare(c.Pos, pos) })
	bad := func(why string) error {
		return fmt.Errorf("%w: offsets %d-%d of partition %d, indexed at bytes [%d, %d): %s",
			segment.ErrCorrupt, e.BaseOffset, e.LastOffset, pe.partition, e.Pos, e.Pos+e.Size, why)
	}
	if i == len(chunks) || chunks[i].Pos != e.Pos {
		return bad("no chunk of the footer starts there")
	}
	if chunks[i].StoredBase != e.StoredBase {
		return bad(fmt.Sprintf("the footer's chunk stores base offset %d, the index %d", chunks[i].StoredBase, e.StoredBase))
	}
	end := e.Pos
	for j := i; end < e.Pos+e.Size; j++ {
		if j == len(chunks) || chunks[j].Pos != end {
			return bad("the footer's chunks do not tile it")
		}
		c := chunks[j]
		if metastore.TopicID(c.TopicID) != pe.id || c.Partition != pe.partition {
			return bad(fmt.Sprintf("the footer's chunk at byte %d is of partition %s/%d", c.Pos, metastore.TopicID(c.TopicID), c.Partition))
		}
		if c.Pos == e.Pos && c.Size == e.Size && c.CRC != e.CRC {
			return fmt.Errorf("%w: offsets %d-%d of partition %d: the footer's chunk CRC %08x, the index says %08x",
				segment.ErrCRC, e.BaseOffset, e.LastOffset, pe.partition, c.CRC, e.CRC)
		}
		end = c.End()
	}
	if end != e.Pos+e.Size {
		return bad("the footer's chunks end elsewhere")
	}
	return nil
}

// checkChunkData streams the object's chunks (they tile it from the
// header to the footer) and checks each one's CRC.
func checkChunkData(ctx context.Context, store s3tier.Store, key string, chunks []segment.ChunkInfo) error {
	if len(chunks) == 0 {
		return nil
	}
	first, last := chunks[0].Pos, chunks[len(chunks)-1].End()
	rc, err := store.GetRange(ctx, key, first, last-first)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	h := segment.NewChecksum()
	for _, c := range chunks {
		h.Reset()
		n, err := io.CopyN(h, rc, c.Size)
		if err != nil && n < c.Size && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return fmt.Errorf("%w: chunk at byte %d: %d of %d bytes", segment.ErrTruncated, c.Pos, n, c.Size)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		if got := h.Sum32(); got != c.CRC {
			return fmt.Errorf("%w: chunk at bytes [%d, %d) of partition %s/%d: CRC %08x, the footer says %08x",
				segment.ErrCRC, c.Pos, c.End(), metastore.TopicID(c.TopicID), c.Partition, got, c.CRC)
		}
	}
	return nil
}

// verifyObjects checks every object the plan's index entries point into
// (checkObject, verifyWorkers at once; sizes from the bucket listing) and
// returns those that failed, in key order. A failure that is not damage
// (the store erring) fails the call.
func verifyObjects(ctx context.Context, store s3tier.Store, p *recoveryPlan, sizes map[string]int64, data bool, errw io.Writer) ([]corruptObject, error) {
	byObject := map[string][]planEntry{}
	for _, pe := range p.entries {
		byObject[pe.e.ObjectKey] = append(byObject[pe.e.ObjectKey], pe)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range byObject {
			if !yield(k) {
				return
			}
		}
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		done    int64
		bad     []corruptObject
		firstEr error
		wg      sync.WaitGroup
	)
	what := "checking object footers"
	if data {
		what = "checking objects"
	}
	prog := newProgress(errw, what, int64(len(keys)))
	work := make(chan string)
	for range min(verifyWorkers, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				err := errNotInBucket
				if size, ok := sizes[k]; ok {
					err = checkObject(ctx, store, k, size, byObject[k], data)
				}
				mu.Lock()
				done++
				prog.set(done)
				switch {
				case err == nil:
				case errors.Is(err, segment.ErrCorrupt), errors.Is(err, errNotInBucket):
					bad = append(bad, corruptObject{key: k, err: err})
				case firstEr == nil:
					firstEr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
	prog.done()
	if firstEr != nil {
		return nil, firstEr
	}
	slices.SortFunc(bad, func(a, b corruptObject) int { return strings.Compare(a.key, b.key) })
	return bad, nil
}

// skipObjects drops from the plan every index entry pointing into one of
// bad, and returns the offset ranges lost, per partition in order. A
// partition whose lost ranges come before every entry it keeps gets its
// log start offset moved past them (to its first kept entry, or to its
// next offset if none is left); ranges lost between kept entries stay
// gaps, which a fetch skips as Kafka skips the gaps of a compacted log.
func (p *recoveryPlan) skipObjects(bad []corruptObject) ([]lostRange, error) {
	skip := map[string]bool{}
	for _, b := range bad {
		skip[b.key] = true
	}
	type part struct {
		id metastore.TopicID
		p  int32
	}
	drop := map[int]bool{}
	firstKept := map[part]int64{}
	var lost []lostRange
	lostParts := map[part]int64{} // partition -> first lost offset
	for _, pe := range p.entries {
		k := part{pe.id, pe.partition}
		if !skip[pe.e.ObjectKey] {
			if f, ok := firstKept[k]; !ok || pe.e.BaseOffset < f {
				firstKept[k] = pe.e.BaseOffset
			}
			continue
		}
		drop[pe.kv] = true
		lost = append(lost, lostRange{topic: p.topic(pe.id).name, partition: pe.partition, first: pe.e.BaseOffset, last: pe.e.LastOffset, object: pe.e.ObjectKey})
		if f, ok := lostParts[k]; !ok || pe.e.BaseOffset < f {
			lostParts[k] = pe.e.BaseOffset
		}
		t := p.topic(pe.id)
		t.bytes -= pe.e.Bytes()
		p.bytes -= pe.e.Bytes()
	}
	p.kinds[metastore.KindIndex] -= len(drop)
	newStart := map[part]int64{}
	// Log start offsets of partitions that lost their first records.
	for i, kv := range p.kvs {
		if metastore.SnapshotKind(kv.Key) != metastore.KindPartition || strings.Count(kv.Key, "/") != 2 {
			continue
		}
		id, ok := relTopicID(kv.Key)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(kv.Key[strings.LastIndexByte(kv.Key, '/')+1:], 10, 32)
		if err != nil {
			continue
		}
		k := part{id, int32(n)}
		firstLost, ok := lostParts[k]
		if !ok {
			continue
		}
		kept, hasKept := firstKept[k]
		if hasKept && kept < firstLost {
			continue
		}
		st, err := metastore.DecodePartitionState(kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		start := st.NextOffset
		if hasKept {
			start = kept
		}
		if start <= st.LogStartOffset {
			continue
		}
		p.topic(id).records -= start - st.LogStartOffset
		st.LogStartOffset = start
		newStart[k] = start
		if err := st.Validate(); err != nil {
			return nil, fmt.Errorf("partition %s: log start %d: %w", kv.Key, start, err)
		}
		b, err := json.Marshal(st)
		if err != nil {
			return nil, err
		}
		p.kvs[i].Value = b
	}
	// Ranges lost between kept entries are offsets no record holds any more.
	for _, pe := range p.entries {
		if s, ok := newStart[part{pe.id, pe.partition}]; skip[pe.e.ObjectKey] && (!ok || pe.e.BaseOffset >= s) {
			p.topic(pe.id).records -= pe.e.Records()
		}
	}
	kvs := p.kvs[:0]
	for i, kv := range p.kvs {
		if !drop[i] {
			kvs = append(kvs, kv)
		}
	}
	p.kvs = kvs
	p.entries = nil // their kv positions are stale
	p.objects = slices.DeleteFunc(p.objects, func(o string) bool { return skip[o] })
	slices.SortFunc(lost, func(a, b lostRange) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition), cmp.Compare(a.first, b.first))
	})
	// Adjacent ranges of one partition (several entries of one object) read as one.
	merged := lost[:0]
	for _, r := range lost {
		if n := len(merged); n > 0 && merged[n-1].topic == r.topic && merged[n-1].partition == r.partition && merged[n-1].last+1 == r.first && merged[n-1].object == r.object {
			merged[n-1].last = r.last
			continue
		}
		merged = append(merged, r)
	}
	return merged, nil
}

// corruptError is the error for objects that failed their check, without
// --skip-corrupt.
func corruptError(plan *recoveryPlan, bad []corruptObject) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d objects the manifest %s references are corrupt; recover changed nothing:", len(bad), plan.key)
	for i, o := range bad {
		if i == 5 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(bad)-i)
			break
		}
		fmt.Fprintf(&b, "\n  %s: %v", o.key, o.err)
	}
	b.WriteString("\npass --skip-corrupt to restore without them (the offsets they hold are lost, and listed)")
	return errors.New(b.String())
}

// countObjects counts the distinct objects of lost.
func countObjects(lost []lostRange) int {
	seen := map[string]bool{}
	for _, r := range lost {
		seen[r.object] = true
	}
	return len(seen)
}
