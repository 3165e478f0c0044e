package icetable_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/replay/replaytest"
)

// TestPartitionByHour proves shale.iceberg.partition=hour partitions a
// table's data files by hour of the record timestamp, and that switching
// the topic to day (through a Kafka AlterConfigs) partitions the next
// commits' files by day (Iceberg partition evolution) while the earlier
// files keep theirs, every row still read once by iceberg-go's scan and
// DuckDB as the consumer reads it.
func TestPartitionByHour(t *testing.T) {
	ctx := replaytest.Ctx(t)
	const name = "hourly"
	f, _ := topicFixture(t, ctx, name, 1, icetable.ConfigMode, string(icetable.ModeKeyValue), icetable.ConfigPartition, "hour")
	c := f.C
	adm := c.Admin(t)
	cl := c.Client(t, kgo.DefaultProduceTopic(name))
	t0 := time.UnixMilli(1_764_064_800_000) // 2025-11-25T10:00:00Z
	produce := func(from int, offsets ...time.Duration) {
		for i, d := range offsets {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "v%d", from+i), Timestamp: t0.Add(d)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// dirs materializes the topic and returns the table's partition
	// directories of data files, and its spec's field name.
	dirs := func() ([]string, string) {
		t.Helper()
		tp, err := c.Meta.GetTopic(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		var st icetable.Stats
		if err := icetable.MaterializeTopic(ctx, c.Store, c.Meta, tp, icetable.Config{}, &st); err != nil {
			t.Fatal(err)
		}
		tbl, keys := tableFiles(t, ctx, c, tp)
		var out []string
		for _, k := range keys {
			_, rest, _ := strings.Cut(k, "/data/")
			dir, _, _ := strings.Cut(rest, "/")
			out = append(out, dir)
		}
		slices.Sort(out)
		all := consumeTopic(t, ctx, f, 1)
		replaytest.CompareRecs(t, "iceberg-go scan", scanTable(t, ctx, tbl), all)
		replaytest.CompareRecs(t, "DuckDB", duckRead(t, ctx, c.Store, tbl), all)
		spec := tbl.Spec()
		for _, pf := range spec.Fields() {
			return slices.Compact(out), pf.Name
		}
		return slices.Compact(out), ""
	}
	produce(0, 0, 30*time.Minute, 75*time.Minute, 125*time.Minute)
	got, spec := dirs()
	want := []string{"timestamp_hour=2025-11-25-10", "timestamp_hour=2025-11-25-11", "timestamp_hour=2025-11-25-12"}
	if !slices.Equal(got, want) || spec != "timestamp_hour" {
		t.Fatalf("hourly table: spec %s, data directories %v, want timestamp_hour, %v", spec, got, want)
	}
	set := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: icetable.ConfigPartition, Value: kmsg.StringPtr("day")}}
	if ar, err := adm.AlterTopicConfigs(ctx, set, name); err != nil || ar[0].Err != nil {
		t.Fatalf("alter to day: %v %v", err, ar)
	}
	produce(4, 3*time.Hour, 4*time.Hour)
	got, spec = dirs()
	want = append(want[:3:3], "timestamp_day=2025-11-25")
	slices.Sort(want)
	if !slices.Equal(got, want) || spec != "timestamp_day" {
		t.Fatalf("after the switch to day: spec %s, data directories %v, want timestamp_day, %v", spec, got, want)
	}
}
