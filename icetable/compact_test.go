package icetable_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/agent/agenttest"
	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/replay/replaytest"
	"github.com/shale-dev/shale/s3tier"
)

// TestCompactSmallFiles proves the job rewrites a closed day's small data
// files (5 commits of 2 records, target 1 MiB) into one file (parquet-go's
// rewrite of key_value files, no fallback to iceberg-go's) in a snapshot
// that keeps the offsets (a pass after it commits nothing), iceberg-go's
// scan and DuckDB still reading every record once; and that once the
// snapshot before the rewrite expires, the replaced files are deleted.
func TestCompactSmallFiles(t *testing.T) {
	ctx := replaytest.Ctx(t)
	const name = "compacted"
	f, tp := topicFixture(t, ctx, name, 1, icetable.ConfigMode, string(icetable.ModeKeyValue), icetable.ConfigTargetFileBytes, "1048576")
	c := f.C
	cl := c.Client(t, kgo.DefaultProduceTopic(name))
	t0 := time.UnixMilli(1_764_064_800_000) // 2025-11-25T10:00:00Z: a closed day
	sent := 0
	produce := func(n int) {
		for range n {
			sent++
			r := &kgo.Record{Value: bytes.Repeat([]byte{'a' + byte(sent%26)}, 600), Timestamp: t0.Add(time.Duration(sent) * time.Second)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	tbl0 := func() []string {
		_, keys := tableFiles(t, ctx, c, tp)
		return keys
	}
	// Five passes, a commit each: the fifth file makes five small files in
	// the closed day, rewritten into one.
	var st icetable.Stats
	for i := range 5 {
		produce(2)
		if err := icetable.MaterializeTopic(ctx, c.Store, c.Meta, tp, icetable.Config{}, &st); err != nil {
			t.Fatal(err)
		}
		if n := len(tbl0()); i < 4 && (n != i+1 || st.Rewritten != 0) {
			t.Fatalf("pass %d: %+v, %d data files: want %d, none rewritten", i, st, n, i+1)
		}
	}
	files := tbl0()
	if st.Commits != 5 || st.Rewritten != 5 || len(files) != 1 {
		t.Fatalf("passes %+v, %d data files after: want 5 commits and a rewrite of their 5 files into 1", st, len(files))
	}
	if n := icetable.KVRewriteFallbacks(); n != 0 {
		t.Fatalf("%d rewrites with parquet-go failed (iceberg-go redid them), want none", n)
	}
	tbl, err := icetable.Load(ctx, c.Store, c.Meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	all := consumeTopic(t, ctx, f, 1)
	replaytest.CompareRecs(t, "iceberg-go scan after the rewrite", scanTable(t, ctx, tbl), all)
	replaytest.CompareRecs(t, "DuckDB after the rewrite", duckRead(t, ctx, c.Store, tbl), all)
	var again icetable.Stats
	if err := icetable.MaterializeTopic(ctx, c.Store, c.Meta, tp, icetable.Config{}, &again); err != nil || again.Commits != 0 || again.Rewritten != 0 {
		t.Fatalf("pass after the rewrite: %+v %v, want nothing to do", again, err)
	}
	// The first commit's file, replaced: deleted once the snapshots before
	// the rewrite expire (with the next commit, at an age of 1 ns).
	var replaced string
	snaps := tbl.Metadata().Snapshots()
	if len(snaps) < 2 {
		t.Fatalf("%d snapshots", len(snaps))
	}
	fsKeys := func(s string) string { return strings.TrimPrefix(s, icetable.Location(c.Store, "")) }
	{
		first, err := icetable.Load(ctx, c.Store, c.Meta, tp)
		if err != nil {
			t.Fatal(err)
		}
		fsys, err := first.FS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mans, err := snaps[0].Manifests(fsys)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := mans[0].FetchEntries(fsys, true)
		if err != nil {
			t.Fatal(err)
		}
		replaced = fsKeys(entries[0].DataFile().FilePath())
	}
	if _, err := c.Store.Head(ctx, replaced); err != nil {
		t.Fatalf("replaced file %s before expiry: %v", replaced, err)
	}
	produce(1)
	time.Sleep(2 * time.Millisecond)
	if err := icetable.MaterializeTopic(ctx, c.Store, c.Meta, tp, icetable.Config{SnapshotMaxAge: time.Nanosecond}, &again); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store.Head(ctx, replaced); !s3tier.IsNotFound(err) {
		t.Fatalf("replaced file %s after the snapshots before the rewrite expired: %v, want deleted", replaced, err)
	}
	tbl, err = icetable.Load(ctx, c.Store, c.Meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	all = consumeTopic(t, ctx, f, 1)
	replaytest.CompareRecs(t, "iceberg-go scan after expiry", scanTable(t, ctx, tbl), all)
	replaytest.CompareRecs(t, "DuckDB after expiry", duckRead(t, ctx, c.Store, tbl), all)
	t.Logf("%d commits, %d files rewritten into %d; %d rows", st.Commits, st.Rewritten, len(files), len(all))
}

// TestKeyValueFilesAtTarget proves a key_value commit writes a Kafka
// partition's rows as files of about shale.iceberg.target.file.bytes: a
// file is closed and the next one begun once it reaches the target (64
// KiB here; 1 MiB of incompressible values, in batches of 8 KiB, in one
// commit), so every file but the last is at least the target and none is
// rewritten, and iceberg-go's scan and DuckDB read every record once.
func TestKeyValueFilesAtTarget(t *testing.T) {
	ctx := replaytest.Ctx(t)
	const name, target = "at-target", 64 << 10
	f, tp := topicFixture(t, ctx, name, 1, icetable.ConfigMode, string(icetable.ModeKeyValue), icetable.ConfigTargetFileBytes, strconv.Itoa(target))
	c := f.C
	// Batches of 8 KiB: a file is checked after each batch's rows.
	cl := c.Client(t, kgo.DefaultProduceTopic(name), kgo.ProducerBatchMaxBytes(8<<10))
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1024 {
		v := make([]byte, 1024)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		cl.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var st icetable.Stats
	if err := icetable.MaterializeTopic(ctx, c.Store, c.Meta, tp, icetable.Config{CommitBytes: 1 << 30}, &st); err != nil {
		t.Fatal(err)
	}
	tbl, keys := tableFiles(t, ctx, c, tp)
	small := 0
	var sizes []int64
	for _, k := range keys {
		info, err := c.Store.Head(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, info.Size)
		if info.Size < target {
			small++
		}
	}
	if st.Commits != 1 || st.Rewritten != 0 || len(keys) < 8 || small > 1 {
		t.Fatalf("pass %+v, data files of %v bytes: want one commit of 8 or more files, all but one of %d bytes or more, none rewritten", st, sizes, target)
	}
	all := consumeTopic(t, ctx, f, 1)
	replaytest.CompareRecs(t, "iceberg-go scan", scanTable(t, ctx, tbl), all)
	replaytest.CompareRecs(t, "DuckDB", duckRead(t, ctx, c.Store, tbl), all)
	t.Logf("%d records in %d files of %v bytes", len(all), len(keys), sizes)
}

// tableFiles loads tp's table and lists the store keys of its current
// data files.
func tableFiles(t *testing.T, ctx context.Context, c *agenttest.Cluster, tp metastore.Topic) (*table.Table, []string) {
	t.Helper()
	tbl, err := icetable.Load(ctx, c.Store, c.Meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := icetable.DataFiles(ctx, c.Store, tbl)
	if err != nil {
		t.Fatal(err)
	}
	return tbl, keys
}
