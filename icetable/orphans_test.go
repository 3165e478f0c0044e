package icetable_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay/replaytest"
	"github.com/shale-dev/shale/s3tier"
)

// TestCollectOrphans proves the GC rules for table files: after three
// commits, a commit abandoned at its pointer swap for being older than
// MaxCommitAge (ErrCommitTooOld: the pointer does not move), and a stray
// file in the table's data/ directory, CollectOrphans
//   - deletes nothing younger than MinOrphanAge, even with no grace;
//   - an hour later deletes exactly the files the current metadata does
//     not reference: the stray file, the abandoned commit's files and the
//     stale v<N>.metadata.json copies (every file of every snapshot, the
//     metadata log, the current v<N> copy and version-hint.text stay);
//   - leaves a table that iceberg-go scans, at every snapshot, and DuckDB
//     reads equal to what a Kafka consumer reads, and that the job goes on
//     committing to;
//   - deletes nothing on a second pass.
func TestCollectOrphans(t *testing.T) {
	ctx := replaytest.Ctx(t)
	const name = "orphans"
	f, tp := topicFixture(t, ctx, name, 1, icetable.ConfigMode, string(icetable.ModeKeyValue))
	c := f.C
	cl := c.Client(t, kgo.DefaultProduceTopic(name))
	n := 0
	produce := func(k int) {
		t.Helper()
		for range k {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", n), Value: fmt.Appendf(nil, "v%d", n)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	materialize := func() error {
		var st icetable.Stats
		return icetable.MaterializeTopic(ctx, c.Store, c.Meta, tp, icetable.Config{}, &st)
	}
	for range 3 {
		produce(4)
		if err := materialize(); err != nil {
			t.Fatal(err)
		}
	}
	before, err := c.Meta.GetTablePointer(ctx, tp.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A commit whose first file is older than MaxCommitAge at its swap.
	produce(3)
	icetable.SetHookBeforeSwap(func() {
		icetable.SetClock(func() time.Time { return time.Now().Add(icetable.MaxCommitAge + time.Minute) })
	})
	err = materialize()
	icetable.SetHookBeforeSwap(nil)
	icetable.SetClock(nil)
	if !errors.Is(err, icetable.ErrCommitTooOld) {
		t.Fatalf("materialize with the commit aged past MaxCommitAge: %v, want ErrCommitTooOld", err)
	}
	if after, err := c.Meta.GetTablePointer(ctx, tp.ID); err != nil || after.Metadata != before.Metadata {
		t.Fatalf("pointer after the abandoned commit: %+v %v, want still %s", after, err, before.Metadata)
	}
	dir := icetable.TableKey(name) + "/"
	stray := dir + "data/stray.parquet"
	if err := c.Store.Put(ctx, stray, bytes.NewReader([]byte("not a table file")), 16); err != nil {
		t.Fatal(err)
	}
	listed := listKeys(t, ctx, c.Store, dir)

	// Young files stay, whatever the grace.
	st, err := icetable.CollectOrphans(ctx, c.Store, c.Meta, time.Now(), 0, nil)
	if err != nil || st.Deleted != 0 || st.Tables != 1 {
		t.Fatalf("collect now: %+v %v, want 1 table swept and nothing deleted", st, err)
	}

	// Which files the current metadata references, read independently
	// of CollectOrphans: the metadata file, its log, every snapshot's
	// list, manifests and their live data files, the Hadoop names.
	tbl, err := icetable.Load(ctx, c.Store, c.Meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	want := referencedKeys(t, c.Store, tbl, before)
	st, err = icetable.CollectOrphans(ctx, c.Store, c.Meta, time.Now().Add(icetable.MinOrphanAge+time.Minute), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	left := listKeys(t, ctx, c.Store, dir)
	var deleted []string
	for _, k := range listed {
		if !slices.Contains(left, k) {
			deleted = append(deleted, k)
		}
	}
	t.Logf("%d files listed, %d deleted: %v", len(listed), st.Deleted, deleted)
	if st.Deleted != len(deleted) {
		t.Errorf("CollectOrphans counted %d deleted, %d are gone", st.Deleted, len(deleted))
	}
	for _, k := range listed {
		if want[k] && !slices.Contains(left, k) {
			t.Errorf("referenced file %s was deleted", k)
		}
		if !want[k] && slices.Contains(left, k) {
			t.Errorf("orphan %s was not deleted", k)
		}
	}
	if !slices.Contains(deleted, stray) {
		t.Errorf("stray file %s not deleted", stray)
	}
	// The abandoned commit left a metadata file and a data file at
	// least; v0..v2 copies are stale (v3 is current).
	var abandonedMeta, staleCopies int
	for _, k := range deleted {
		base := k[strings.LastIndex(k, "/")+1:]
		switch {
		case strings.HasSuffix(base, ".metadata.json") && strings.HasPrefix(base, "v"):
			staleCopies++
		case strings.HasPrefix(base, "00004-") && strings.HasSuffix(base, ".metadata.json"):
			abandonedMeta++
		}
	}
	if abandonedMeta != 1 || staleCopies != 3 {
		t.Errorf("deleted %d metadata files of version 4 (the abandoned commit's) and %d stale v<N> copies, want 1 and 3", abandonedMeta, staleCopies)
	}

	all := consumeTopic(t, ctx, f, 1)
	wantRows := all[:12] // the abandoned commit's 3 records are not in the table yet
	replaytest.CompareRecs(t, "iceberg-go scan after orphan collection", scanTable(t, ctx, tbl), wantRows)
	replaytest.CompareRecs(t, "DuckDB after orphan collection", duckRead(t, ctx, c.Store, tbl), wantRows)
	for _, s := range tbl.Metadata().Snapshots() {
		if _, err := tbl.Scan(table.WithSnapshotID(s.SnapshotID)).ToArrowTable(ctx); err != nil {
			t.Errorf("scan of snapshot %d after orphan collection: %v", s.SnapshotID, err)
		}
	}
	if st, err := icetable.CollectOrphans(ctx, c.Store, c.Meta, time.Now().Add(icetable.MinOrphanAge+time.Minute), 0, nil); err != nil || st.Deleted != 0 {
		t.Errorf("second pass: %+v %v, want nothing deleted", st, err)
	}
	// The job goes on: the abandoned records are committed now.
	if err := materialize(); err != nil {
		t.Fatal(err)
	}
	if tbl, err = icetable.Load(ctx, c.Store, c.Meta, tp); err != nil {
		t.Fatal(err)
	}
	replaytest.CompareRecs(t, "iceberg-go scan after the next commit", scanTable(t, ctx, tbl), all)

	// The GC job's pass runs it too, and counts its deletions.
	if err := c.Store.Put(ctx, stray, bytes.NewReader([]byte("not a table file")), 16); err != nil {
		t.Fatal(err)
	}
	var gc lifecycle.GCStats
	lc, err := lifecycle.New(lifecycle.Config{Holder: "test", ManifestInterval: -1,
		Now:     func() time.Time { return time.Now().Add(icetable.MinOrphanAge + time.Minute) },
		Observe: func(_ string, st any) { gc, _ = st.(lifecycle.GCStats) }}, c.Store, c.Meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.RunOnce(ctx, lifecycle.JobGC); err != nil || gc.TableFiles < 1 || slices.Contains(listKeys(t, ctx, c.Store, dir), stray) {
		t.Errorf("GC job pass: %+v %v, want the stray table file deleted and counted", gc, err)
	}
}

func listKeys(t *testing.T, ctx context.Context, store s3tier.Store, prefix string) []string {
	t.Helper()
	objs, err := store.List(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(objs))
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

// referencedKeys reads, with iceberg-go, the store keys tbl's metadata
// references (ptr is the pointer it was loaded from).
func referencedKeys(t *testing.T, store s3tier.Store, tbl *table.Table, ptr metastore.TablePointer) map[string]bool {
	t.Helper()
	base := icetable.Location(store, "")
	refs := map[string]bool{}
	add := func(loc string) { refs[strings.TrimPrefix(loc, base)] = true }
	add(ptr.Metadata)
	md := tbl.Metadata()
	for e := range md.PreviousFiles() {
		add(e.MetadataFile)
	}
	dir := tbl.Location() + "/metadata/"
	add(dir + "version-hint.text")
	add(fmt.Sprintf("%sv%d.metadata.json", dir, ptr.Version))
	fs, err := tbl.FS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range md.Snapshots() {
		add(s.ManifestList)
		mfs, err := s.Manifests(fs)
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			add(mf.FilePath())
			entries, err := mf.FetchEntries(fs, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				add(e.DataFile().FilePath())
			}
		}
	}
	return refs
}
