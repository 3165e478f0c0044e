package cli

import (
	"testing"
	"time"

	"github.com/shale-dev/shale/lifecycle"
	"github.com/shale-dev/shale/metastore"
	"github.com/shale-dev/shale/metrics"
)

// TestParseRetention proves --group-offsets-retention takes durations and
// -1 (forever, as any negative duration), refuses zero and nonsense, and
// that the flag's default prints as Kafka's 7 days.
func TestParseRetention(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"168h", 7 * 24 * time.Hour, false},
		{"30m", 30 * time.Minute, false},
		{" -1 ", -1, false},
		{"-1h", -1, false},
		{"0", 0, true},
		{"0s", 0, true},
		{"7d", 0, true},
		{"", 0, true},
	} {
		got, err := ParseRetention(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseRetention(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	r := Retention(7 * 24 * time.Hour)
	if r.String() != "168h0m0s" {
		t.Errorf("default prints %q", r.String())
	}
	if err := r.Set("-1"); err != nil || r.String() != "-1" || time.Duration(r) >= 0 {
		t.Errorf("Set(-1): %v, %q", err, r.String())
	}
	if err := newAgentCmd().Flags().Set("group-offsets-retention", "-1"); err != nil {
		t.Errorf("the agent flag refuses -1: %v", err)
	}
}

// TestGroupExpiryMetric proves a group-expiry pass's counts reach
// shale_group_offsets_expired_total.
func TestGroupExpiryMetric(t *testing.T) {
	s := &Stack{Metrics: metrics.New()}
	s.observeLifecycle(lifecycle.JobGroupExpiry, metastore.GroupExpiryStats{Groups: 2, Offsets: 3})
	s.observeLifecycle(lifecycle.JobGroupExpiry, metastore.GroupExpiryStats{Groups: 1, Offsets: 4})
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "shale_group_offsets_expired_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 7 {
				t.Fatalf("shale_group_offsets_expired_total = %v, want 7", v)
			}
			return
		}
	}
	t.Fatal("shale_group_offsets_expired_total not registered")
}

// TestKeyCompactionMetrics proves a key-compaction pass's counts reach the
// key_compaction_* counters (passes, records removed, failures, keys,
// bytes read and written, the run's duration) and its segments the
// compaction_* ones.
func TestKeyCompactionMetrics(t *testing.T) {
	s := &Stack{Metrics: metrics.New()}
	st := lifecycle.KeyCompactStats{Passes: 2, RecordsRemoved: 40, Failed: 1, Keys: 17, BytesRead: 10000, Duration: 1500 * time.Millisecond}
	st.Segments, st.EntriesReplaced, st.BytesWritten = 3, 9, 4096
	s.observeLifecycle(lifecycle.JobKeyCompaction, st)
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"shale_key_compaction_passes_total": 2, "shale_key_compaction_records_removed_total": 40,
		"shale_key_compaction_failures_total": 1, "shale_compaction_segments_total": 3, "shale_compaction_bytes_written_total": 4096,
		"shale_key_compaction_keys_total": 17, "shale_key_compaction_bytes_read_total": 10000, "shale_key_compaction_bytes_written_total": 4096,
		"shale_key_compaction_duration_seconds": 1.5}
	for _, mf := range mfs {
		if w, ok := want[mf.GetName()]; ok {
			v := mf.GetMetric()[0].GetCounter().GetValue()
			if h := mf.GetMetric()[0].GetHistogram(); h != nil {
				v = h.GetSampleSum()
			}
			if v != w {
				t.Errorf("%s = %v, want %v", mf.GetName(), v, w)
			}
			delete(want, mf.GetName())
		}
	}
	if len(want) > 0 {
		t.Errorf("not registered: %v", want)
	}
}
