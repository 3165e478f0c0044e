package testenv

import (
	"runtime"
	"testing"
)

// recorder is a testing.TB that records Fatal and Skip instead of ending the
// real test.
type recorder struct {
	testing.TB
	fatal, skipped bool
}

func (r *recorder) Helper()      {}
func (r *recorder) Fatal(...any) { r.fatal = true; runtime.Goexit() }
func (r *recorder) Fatalf(string, ...any) {
	r.fatal = true
	runtime.Goexit()
}
func (r *recorder) Skip(...any) { r.skipped = true; runtime.Goexit() }

// TestMissingServerFailsUnderCI proves a test whose MinIO binary is missing
// is skipped locally but fails under CI=true, so CI never counts a test that
// did not run as passed.
func TestMissingServerFailsUnderCI(t *testing.T) {
	t.Setenv("SHALE_MINIO", "/nonexistent/minio")
	for _, tc := range []struct {
		ci                     string
		wantFatal, wantSkipped bool
	}{
		{"", false, true},
		{"true", true, false},
	} {
		t.Setenv("CI", tc.ci)
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			MinIO(r)
		}()
		<-done
		if r.fatal != tc.wantFatal || r.skipped != tc.wantSkipped {
			t.Errorf("CI=%q: fatal %v skipped %v; want fatal %v skipped %v", tc.ci, r.fatal, r.skipped, tc.wantFatal, tc.wantSkipped)
		}
	}
}
