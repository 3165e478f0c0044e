package icetable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// MaxCommitAge bounds a commit: from the first file the table's handle
// writes after its last commit to the pointer swap. A commit older than
// this is abandoned before the swap (its files become orphans, the next
// pass reads the same offsets again), so that no file of a commit still
// in progress is older than MaxCommitAge when CollectOrphans looks.
const MaxCommitAge = 30 * time.Minute

// MinOrphanAge is the youngest an unreferenced table file may be when
// CollectOrphans deletes it, whatever grace it is given: twice
// MaxCommitAge, so that a commit in progress (and clock skew between the
// agents and the bucket) never loses a file.
const MinOrphanAge = 2 * MaxCommitAge

// OrphanStats counts what an orphan collection pass did.
type OrphanStats struct {
	Tables  int   // tables swept
	Listed  int   // files listed under their locations
	Deleted int   // orphans deleted
	Bytes   int64 // their size
}

// CollectOrphans deletes the orphan files of every topic's table: files
// under iceberg/<topic>/ that the table's current metadata (the one the
// etcd pointer names) does not reference, last modified before
// now-max(grace, MinOrphanAge). Referenced are: the current metadata file
// and the previous ones its metadata log lists; the Hadoop-style
// version-hint.text and the v<N>.metadata.json of the current version and
// of the version the hint names; each snapshot's manifest list, its
// manifests and the data and delete files their live entries name; and
// the replaced-file lists (shale.replaced-files) the snapshots' summaries
// name. Orphans are the files of commits that crashed or lost the pointer
// swap, manifests that a rewrite superseded, data files that a rewrite
// replaced and no remaining snapshot names (normally deleted at expiry,
// best effort), old metadata files past the metadata log, stale
// v<N>.metadata.json copies, and the files of an earlier table at the
// same location (a topic deleted and created again under its name). The
// table's location is listed before its metadata is loaded, so a file a
// commit references meanwhile is seen as referenced; files are immutable
// and never referenced again once they left the metadata. A topic with no
// table, or whose pointer names another topic's table, is left alone.
func CollectOrphans(ctx context.Context, store s3tier.Store, meta *metastore.Store, now time.Time, grace time.Duration, log *slog.Logger) (OrphanStats, error) {
	var st OrphanStats
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	olderThan := now.Add(-max(grace, MinOrphanAge))
	topics, err := meta.ListTopics(ctx)
	if err != nil {
		return st, err
	}
	var first error
	for _, t := range topics {
		if err := collectTableOrphans(ctx, store, meta, t, olderThan, &st, log); err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			log.Warn("iceberg orphan collection failed", "topic", t.Name, "err", err)
			if first == nil {
				first = err
			}
		}
	}
	if st.Deleted > 0 {
		log.Info("deleted orphan table files", "files", st.Deleted, "bytes", st.Bytes, "listed", st.Listed, "tables", st.Tables)
	}
	return st, first
}

func collectTableOrphans(ctx context.Context, store s3tier.Store, meta *metastore.Store, t metastore.Topic, olderThan time.Time, st *OrphanStats, log *slog.Logger) error {
	ptr, err := meta.GetTablePointer(ctx, t.ID)
	if err != nil || ptr.Revision == 0 {
		return err // no table: nothing is known to be an orphan
	}
	dir := TableKey(t.Name) + "/"
	objs, err := store.List(ctx, dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	// Loaded from the pointer read above, never created (openTable
	// would create a table for a topic deleted meanwhile).
	h := &handle{meta: meta, store: store, fsio: newStoreIO(ctx, store), topic: t}
	if err := h.load(ctx, ptr); err != nil {
		if errors.Is(err, ErrForeignTable) {
			return nil
		}
		return err
	}
	refs, err := h.referenced(ctx)
	if err != nil {
		return err
	}
	st.Tables++
	st.Listed += len(objs)
	for _, o := range objs {
		if refs[o.Key] || !o.LastModified.Before(olderThan) {
			continue
		}
		if err := store.Delete(ctx, o.Key); err != nil && !s3tier.IsNotFound(err) {
			return fmt.Errorf("delete %s: %w", o.Key, err)
		}
		st.Deleted++
		st.Bytes += o.Size
		log.Debug("deleted orphan table file", "key", o.Key, "size", o.Size, "modified", o.LastModified)
	}
	return nil
}

// orphanCache caches what a pass read of immutable files, by path: the
// manifests a manifest list names, and the files a manifest's live
// entries name. A table's snapshots share most manifests (fast appends
// carry them forward) and each pass sees the same lists again, so a pass
// reads only the lists and manifests of the commits since the last one.
// What no snapshot of a table lists any more is dropped at the end of the
// table's pass.
var orphanCache = struct {
	sync.Mutex
	lists     map[string][]string
	manifests map[string][]string
}{lists: map[string][]string{}, manifests: map[string][]string{}}

// referenced is the set of store keys the table's current metadata
// references (CollectOrphans).
func (h *handle) referenced(ctx context.Context) (map[string]bool, error) {
	refs := map[string]bool{}
	add := func(loc string) {
		if k, err := h.fsio.key(loc); err == nil {
			refs[k] = true
		}
	}
	md := h.tbl.Metadata()
	add(h.ptr.Metadata)
	for e := range md.PreviousFiles() {
		add(e.MetadataFile)
	}
	for s := range md.Statistics() {
		add(s.StatisticsPath)
	}
	for s := range md.PartitionStatistics() {
		add(s.StatisticsPath)
	}
	dir := h.location() + "/metadata/"
	add(dir + versionHint)
	add(dir + "v" + strconv.Itoa(h.ptr.Version) + ".metadata.json")
	if b, err := h.fsio.ReadFile(dir + versionHint); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			add(dir + "v" + strconv.Itoa(n) + ".metadata.json")
		}
	}
	c := &orphanCache
	c.Lock()
	defer c.Unlock()
	seen := map[string]bool{}
	for _, s := range md.Snapshots() {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		add(s.ManifestList)
		seen[s.ManifestList] = true
		if s.Summary != nil {
			if list := s.Summary.Properties[summaryReplaced]; list != "" {
				add(list)
			}
		}
		var mfs []iceberg.ManifestFile
		read := func() error {
			if mfs != nil {
				return nil
			}
			var err error
			if mfs, err = s.Manifests(h.fsio); err != nil {
				return fmt.Errorf("snapshot %d: manifest list %s: %w", s.SnapshotID, s.ManifestList, err)
			}
			return nil
		}
		paths, ok := c.lists[s.ManifestList]
		if !ok {
			if err := read(); err != nil {
				return nil, err
			}
			paths = make([]string, 0, len(mfs))
			for _, mf := range mfs {
				paths = append(paths, mf.FilePath())
			}
			c.lists[s.ManifestList] = paths
		}
		for _, p := range paths {
			add(p)
			if seen[p] {
				continue
			}
			seen[p] = true
			files, ok := c.manifests[p]
			if !ok {
				if err := read(); err != nil {
					return nil, err
				}
				i := slices.IndexFunc(mfs, func(mf iceberg.ManifestFile) bool { return mf.FilePath() == p })
				if i < 0 {
					return nil, fmt.Errorf("snapshot %d: manifest list %s no longer lists %s", s.SnapshotID, s.ManifestList, p)
				}
				entries, err := mfs[i].FetchEntries(h.fsio, true)
				if err != nil {
					return nil, fmt.Errorf("manifest %s: %w", p, err)
				}
				files = make([]string, 0, len(entries))
				for _, e := range entries {
					files = append(files, e.DataFile().FilePath())
				}
				c.manifests[p] = files
			}
			for _, f := range files {
				add(f)
			}
		}
	}
	prefix := h.location() + "/"
	for _, m := range []map[string][]string{c.lists, c.manifests} {
		for p := range m {
			if strings.HasPrefix(p, prefix) && !seen[p] {
				delete(m, p)
			}
		}
	}
	return refs, nil
}
