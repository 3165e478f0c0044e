package cli

import (
	"testing"
	"time"

	"github.com/shale-dev/shale/icetable"
	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metrics"
)

// TestIcebergMetrics proves an iceberg pass's counts reach the iceberg_*
// counters.
func TestIcebergMetrics(t *testing.T) {
	s := &Stack{Metrics: metrics.New()}
	s.observeLifecycle(lifecycle.JobIceberg, icetable.Stats{Topics: 2, Commits: 3, Rows: 500, Files: 4, Skipped: 7, Raw: 5, Rewritten: 6, Failed: 1})
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"shale_iceberg_commits_total": 3, "shale_iceberg_rows_total": 500,
		"shale_iceberg_data_files_total": 4, "shale_iceberg_skipped_offsets_total": 7, "shale_iceberg_raw_rows_total": 5, "shale_iceberg_rewritten_files_total": 6, "shale_iceberg_failures_total": 1}
	for _, mf := range mfs {
		if w, ok := want[mf.GetName()]; ok {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != w {
				t.Errorf("%s = %v, want %v", mf.GetName(), v, w)
			}
			delete(want, mf.GetName())
		}
	}
	if len(want) > 0 {
		t.Fatalf("not registered: %v", want)
	}
}

// TestIcebergSnapshotMaxAgeFlag proves --iceberg-snapshot-max-age reaches
// the iceberg job: its default is icetable's, 0 keeps every snapshot.
func TestIcebergSnapshotMaxAgeFlag(t *testing.T) {
	cmd := newAgentCmd()
	for _, c := range []struct {
		args string
		want time.Duration
	}{{"", icetable.DefaultSnapshotMaxAge}, {"--iceberg-snapshot-max-age=1h", time.Hour}, {"--iceberg-snapshot-max-age=0", -1}} {
		args, want := c.args, c.want
		if args != "" {
			if err := cmd.ParseFlags([]string{args}); err != nil {
				t.Fatal(err)
			}
		}
		v, err := newViper(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got := icebergConfig(v).SnapshotMaxAge; got != want {
			t.Errorf("%q: SnapshotMaxAge %v, want %v", args, got, want)
		}
	}
}
