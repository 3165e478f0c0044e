package metastore

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TestZapToSlog proves etcd's zap logs reach slog at error level with their
// fields, below-minimum entries are dropped, and known shutdown noise is
// demoted out of the error level.
func TestZapToSlog(t *testing.T) {
	var buf bytes.Buffer
	l := zapToSlog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError})), zapcore.ErrorLevel)
	l.With(zap.String("member", "m1")).Error("disk full", zap.Int("free", 0))
	l.Warn("slow request")
	l.Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("http: Server closed")))
	out := buf.String()
	for _, want := range []string{"disk full", "member=m1", "free=0", "logger=etcd"} {
		if !strings.Contains(out, want) {
			t.Errorf("log output %q lacks %q", out, want)
		}
	}
	for _, unwanted := range []string{"slow request", "setting up serving"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("log output %q contains %q", out, unwanted)
		}
	}
}
