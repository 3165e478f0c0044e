package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// DefaultGCGrace is how old an unreferenced object must be before garbage
// collection deletes it. It must exceed the longest time between an
// object's upload and its commit: the engine's UploadTimeout (30 s) and
// compaction's CommitDeadline (2 min).
const DefaultGCGrace = 10 * time.Minute

// DefaultGCPrefixes are the key prefixes shale writes objects under
// (engine.DefaultObjectPrefix and DefaultSegmentPrefix); garbage collection
// looks at nothing else in the bucket.
var DefaultGCPrefixes = []string{"wal/", "seg/"}

// GCStats counts what a garbage collection pass did.
type GCStats struct {
	Listed  int   // objects listed under the prefixes
	Deleted int   // unreferenced objects older than the grace period, deleted
	Bytes   int64 // their size
	// Orphan files of Iceberg tables (icetable.CollectOrphans), deleted
	// in the same pass.
	TableFiles int
	TableBytes int64
}

// CollectGarbage deletes the objects under prefixes that no index entry
// and no recovery manifest (manifest.Prefix) references and that were last modified before now-grace: leftovers of
// uploads never committed, objects of deleted topics, and objects whose
// entries compaction or retention replaced. The bucket is listed before the
// index is scanned (Unreferenced), so an object committed meanwhile is
// seen as referenced; one that is not listed is not touched.
func CollectGarbage(ctx context.Context, store s3tier.Store, meta *metastore.Store, prefixes []string, now time.Time, grace time.Duration, log *slog.Logger) (GCStats, error) {
	var stats GCStats
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(prefixes) == 0 {
		prefixes = DefaultGCPrefixes
	}
	var objs []s3tier.ObjectInfo
	for _, p := range prefixes {
		l, err := store.List(ctx, p)
		if err != nil {
			return stats, fmt.Errorf("gc: list %s: %w", p, err)
		}
		objs = append(objs, l...)
	}
	stats.Listed = len(objs)
	refs, err := ReferencedObjects(ctx, meta)
	if err != nil {
		return stats, fmt.Errorf("gc: %w", err)
	}
	// Objects of the manifests in the bucket are referenced too (recover
	// would point at them). A manifest being written may reference objects
	// that left the index since its snapshot: while one is pinned, delete
	// nothing. The pin is checked after the index scan and before the
	// manifest listing, so a manifest whose pin was gone at the check is
	// listed, and one pinned after it snapshots an index in which no
	// object this pass may delete is referenced (objects never come back
	// into the index).
	pinned, err := meta.ManifestPinned(ctx)
	if err != nil {
		return stats, fmt.Errorf("gc: %w", err)
	}
	if pinned {
		log.Debug("gc: a manifest is being written; deleting nothing this pass")
		return stats, nil
	}
	if err := manifestObjects(ctx, store, refs); err != nil {
		return stats, fmt.Errorf("gc: objects of the manifests: %w", err)
	}
	olderThan := now.Add(-grace)
	for _, o := range objs {
		if refs[o.Key] || !o.LastModified.Before(olderThan) {
			continue
		}
		if err := store.Delete(ctx, o.Key); err != nil {
			return stats, fmt.Errorf("gc: %w", err)
		}
		stats.Deleted++
		stats.Bytes += o.Size
		log.Debug("gc deleted object", "key", o.Key, "size", o.Size, "modified", o.LastModified)
	}
	if stats.Deleted > 0 {
		log.Info("gc deleted unreferenced objects", "objects", stats.Deleted, "bytes", stats.Bytes, "listed", stats.Listed)
	}
	return stats, nil
}
