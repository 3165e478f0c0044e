package icetable

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/iceberg-go/table"

	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/s3tier"
)

// ErrNoTable: the topic has no table yet (never materialized).
var ErrNoTable = errors.New("icetable: topic has no table yet")

// Load returns a topic's table as its pointer names it now, for reading
// (scans, status); it never creates or commits.
func Load(ctx context.Context, store s3tier.Store, meta *metastore.Store, t metastore.Topic) (*table.Table, error) {
	ptr, err := meta.GetTablePointer(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	if ptr.Revision == 0 {
		return nil, fmt.Errorf("table %s: %w", t.Name, ErrNoTable)
	}
	h := &handle{meta: meta, store: store, fsio: newStoreIO(ctx, store), topic: t, ptr: ptr}
	tbl, err := table.NewFromLocation(ctx, h.ident(), ptr.Metadata, h.fsF, h)
	if err != nil {
		return nil, fmt.Errorf("load table %s from %s: %w", t.Name, ptr.Metadata, err)
	}
	return tbl, nil
}

// DataFiles lists the store keys of the data files the table's current
// snapshot's manifests list (none before the first snapshot).
func DataFiles(ctx context.Context, store s3tier.Store, tbl *table.Table) ([]string, error) {
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return nil, nil
	}
	fsys, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	mans, err := snap.Manifests(fsys)
	if err != nil {
		return nil, fmt.Errorf("read manifest list: %w", err)
	}
	sio := newStoreIO(ctx, store)
	var out []string
	for _, m := range mans {
		entries, err := m.FetchEntries(fsys, true)
		if err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
		}
		for _, e := range entries {
			k, err := sio.key(e.DataFile().FilePath())
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
	}
	return out, nil
}
