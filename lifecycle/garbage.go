package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// Unreferenced lists the objects under prefix that no index entry of any
// topic references and that were last modified before olderThan: the
// leftovers of uploads that were never committed, of deleted topics and of
// rewritten index ranges. Garbage collection deletes these once the grace
// period has passed; an object modified after olderThan may belong to a
// commit still in flight and is never listed.
func Unreferenced(ctx context.Context, store s3tier.Store, meta *metastore.Store, prefix string, olderThan time.Time) ([]s3tier.ObjectInfo, error) {
	// List the bucket first: an object committed after this point is
	// referenced by an entry the scan below will see.
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	refs, err := ReferencedObjects(ctx, meta)
	if err != nil {
		return nil, err
	}
	var out []s3tier.ObjectInfo
	for _, o := range objs {
		if !refs[o.Key] && o.LastModified.Before(olderThan) {
			out = append(out, o)
		}
	}
	return out, nil
}

// ReferencedObjects returns the set of object keys some index entry points into.
func ReferencedObjects(ctx context.Context, meta *metastore.Store) (map[string]bool, error) {
	topics, err := meta.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	refs := make(map[string]bool)
	for _, t := range topics {
		for p := int32(0); p < t.Partitions; p++ {
			err := meta.ScanEntries(ctx, t.ID, p, 0, func(e metastore.IndexEntry) bool {
				refs[e.ObjectKey] = true
				return true
			})
			if err != nil {
				return nil, fmt.Errorf("scan index of %s/%d: %w", t.Name, p, err)
			}
		}
	}
	return refs, nil
}
