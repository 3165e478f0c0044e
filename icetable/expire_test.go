package icetable_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/replay/replaytest"
	"github.com/shale-dev/shale/s3tier"
)

// TestSnapshotExpiry proves the job's commits expire snapshots older than
// Config.SnapshotMaxAge: with an age of 1 ns, after 5 commits the
// metadata holds 2 snapshots (the one current when the last commit
// started, and its own), the manifest list of the first snapshot is
// deleted, and the table still holds every record once, resuming from
// the current snapshot's offsets.
func TestSnapshotExpiry(t *testing.T) {
	ctx := replaytest.Ctx(t)
	const name = "expiring"
	f, tp := topicFixture(t, ctx, name, 1, icetable.ConfigMode, string(icetable.ModeKeyValue))
	c := f.C
	cl := c.Client(t, kgo.DefaultProduceTopic(name))
	var first string
	for i := range 5 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // snapshot ages are in ms: the previous one is older than 1 ns
		var st icetable.Stats
		if err := icetable.MaterializeTopic(ctx, c.Store, c.Meta, tp, icetable.Config{SnapshotMaxAge: time.Nanosecond}, &st); err != nil || st.Commits != 1 {
			t.Fatalf("pass %d: %+v %v, want one commit", i, st, err)
		}
		if i == 0 {
			tbl, err := icetable.Load(ctx, c.Store, c.Meta, tp)
			if err != nil {
				t.Fatal(err)
			}
			first = strings.TrimPrefix(tbl.CurrentSnapshot().ManifestList, icetable.Location(c.Store, ""))
			if _, err := c.Store.Head(ctx, first); err != nil {
				t.Fatalf("first manifest list %s: %v", first, err)
			}
		}
	}
	st, err := icetable.Status(ctx, c.Store, c.Meta, tp, time.Now())
	if err != nil || st.Snapshots != 2 || st.Rows != 5 || st.Lag != 0 {
		t.Fatalf("status %+v %v: want 2 snapshots, 5 rows, no lag", st, err)
	}
	if _, err := c.Store.Head(ctx, first); !s3tier.IsNotFound(err) {
		t.Fatalf("manifest list %s of an expired snapshot: %v, want deleted", first, err)
	}
	tbl, err := icetable.Load(ctx, c.Store, c.Meta, tp)
	if err != nil {
		t.Fatal(err)
	}
	all := consumeTopic(t, ctx, f, 1)
	replaytest.CompareRecs(t, "iceberg-go scan after expiry", scanTable(t, ctx, tbl), all)
	replaytest.CompareRecs(t, "DuckDB after expiry", duckRead(t, ctx, c.Store, tbl), all)
}
