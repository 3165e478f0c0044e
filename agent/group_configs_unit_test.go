package agent

import (
	"testing"
	"time"
)

// TestParseISODuration proves share.auto.offset.reset's by_duration form
// reads ISO-8601 durations as Java's Duration.parse (Kafka) does, and
// refuses what it would refuse or what is negative.
func TestParseISODuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"PT1H":         time.Hour,
		"pt30m":        30 * time.Minute,
		"P1D":          24 * time.Hour,
		"P1DT12H":      36 * time.Hour,
		"PT1H30M15.5S": time.Hour + 30*time.Minute + 15500*time.Millisecond,
		"PT0S":         0,
	} {
		if got, err := parseISODuration(in); err != nil || got != want {
			t.Errorf("parseISODuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "1H", "PT-1H", "P1H", "PT1D", "PT1M1H", "PT1.5H", "P1DT", "PT1H1H", "PTXH", "PT1e3S", "P99999999999999D"} {
		if d, err := parseISODuration(in); err == nil {
			t.Errorf("parseISODuration(%q) = %v, want an error", in, d)
		}
	}
	for _, v := range []string{"earliest", "latest", "by_duration:PT10M"} {
		if err := validShareReset(v); err != nil {
			t.Errorf("validShareReset(%q): %v", v, err)
		}
	}
	for _, v := range []string{"", "Earliest", "by_duration:", "by_duration:10m", "none"} {
		if err := validShareReset(v); err == nil {
			t.Errorf("validShareReset(%q) accepted", v)
		}
	}
}
