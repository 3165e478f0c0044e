package icetable_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/shale-dev/shale/cli"
	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/replay"
	"github.com/shale-dev/shale/replay/replaytest"
	"github.com/shale-dev/shale/s3tier"
)

// TestReplayToIceberg proves `shale replay --format iceberg --out DIR`
// writes a one-off table that a path reader opens (version-hint.text),
// in json mode by hour here: iceberg-go's scan and DuckDB read the rows
// the consumer reads, with the value columns and _raw of a materialized
// table; a second export to the same directory is refused; and a
// key_value export in many small commits holds every record once.
func TestReplayToIceberg(t *testing.T) {
	ctx := replaytest.Ctx(t)
	f, tp := jsonFixture(t, ctx, "exported")
	cases := []jsonCase{
		{part: 0, value: obj(`{"id":1,"name":"a"}`), cols: map[string]any{"id": 1.0, "name": "a"}},
		{part: 1, value: obj(`{"id":2,"tags":[1]}`), cols: map[string]any{"id": 2.0, "tags": "[1]"}},
		{part: 0, value: obj(`{"id":"x"}`), raw: true},
		{part: 0, value: obj(`plain`), raw: true},
		{part: 1, value: nil},
	}
	produceCases(t, ctx, f, 0, cases)
	dir := t.TempDir()
	flags := []string{"--etcd-endpoints", strings.Join(f.C.Endpoints, ","), "--etcd-namespace", f.C.Namespace, "--bucket", f.C.BucketDir}
	export := func() (string, int) {
		var out, errb bytes.Buffer
		code := cli.Execute(ctx, append([]string{"replay", "-t", f.Topic, "--format", "iceberg", "--out", dir, "--iceberg-partition", "hour"}, flags...),
			nil, &out, &errb)
		return out.String() + errb.String(), code
	}
	msg, code := export()
	if code != 0 {
		t.Fatalf("shale replay --format iceberg: exit %d: %s", code, msg)
	}
	t.Log(strings.TrimSpace(msg))
	ds, err := s3tier.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := icetable.LoadPath(ctx, ds, "")
	if err != nil {
		t.Fatal(err)
	}
	want := wantRows(t, consumeTopic(t, ctx, f, 2), cases)
	compareRows(t, "iceberg-go scan of the export", scanRows(t, ctx, tbl, jsonNames), want)
	compareRows(t, "DuckDB on the export", duckRows(t, ctx, ds, tbl, true), want)
	spec := tbl.Spec()
	for _, pf := range spec.Fields() {
		if pf.Name != "_timestamp_hour" {
			t.Fatalf("export partitioned by %s, want _timestamp_hour", pf.Name)
		}
	}
	if msg, code := export(); code == 0 || !strings.Contains(msg, "already holds an Iceberg table") {
		t.Fatalf("second export to %s: exit %d: %s, want refused", dir, code, msg)
	}

	// key_value, committed every 40 record bytes (about every row).
	kvDir := t.TempDir()
	kvStore, err := s3tier.NewDirStore(kvDir)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := replay.NewPlan(ctx, f.C.Meta, replay.Options{Topic: tp.Name})
	if err != nil {
		t.Fatal(err)
	}
	st, err := icetable.Export(ctx, f.C.Meta, f.C.Store, kvStore, plan, icetable.ExportOptions{Mode: icetable.ModeKeyValue, Partition: icetable.PartitionDay, CommitBytes: 40})
	if err != nil {
		t.Fatal(err)
	}
	if st.Commits < 4 || st.Rows != int64(len(cases)) {
		t.Fatalf("key_value export %+v: want %d rows in several commits", st, len(cases))
	}
	kv, err := icetable.LoadPath(ctx, kvStore, "")
	if err != nil {
		t.Fatal(err)
	}
	all := consumeTopic(t, ctx, f, 2)
	replaytest.CompareRecs(t, "iceberg-go scan of the key_value export", scanTable(t, ctx, kv), all)
	replaytest.CompareRecs(t, "DuckDB on the key_value export", duckRead(t, ctx, kvStore, kv), all)
	if _, err := icetable.Export(ctx, f.C.Meta, f.C.Store, kvStore, plan, icetable.ExportOptions{Mode: icetable.ModeKeyValue, Partition: icetable.PartitionDay}); !errors.Is(err, icetable.ErrTableExists) {
		t.Fatalf("export over a table: %v, want ErrTableExists", err)
	}
}
