package metastore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapToSlog returns a zap logger (what etcd wants) that writes entries at
// level min and above to l.
func zapToSlog(l *slog.Logger, min zapcore.Level) *zap.Logger {
	return zap.New(&slogCore{l: l, min: min})
}

// slogCore is a zapcore.Core forwarding to a slog.Logger.
type slogCore struct {
	l     *slog.Logger
	min   zapcore.Level
	attrs []any
}

func (c *slogCore) Enabled(lvl zapcore.Level) bool { return lvl >= c.min }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{l: c.l, min: c.min, attrs: append(append([]any(nil), c.attrs...), fieldAttrs(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	lvl := slog.LevelInfo
	switch {
	case e.Level >= zapcore.ErrorLevel:
		lvl = slog.LevelError
	case e.Level == zapcore.WarnLevel:
		lvl = slog.LevelWarn
	case e.Level <= zapcore.DebugLevel:
		lvl = slog.LevelDebug
	}
	attrs := fieldAttrs(fields)
	if lvl == slog.LevelError && benign(e.Message, attrs) {
		lvl = slog.LevelDebug
	}
	args := append(append([]any{"logger", "etcd"}, c.attrs...), attrs...)
	c.l.Log(context.Background(), lvl, e.Message, args...)
	return nil
}

// benignErrors are messages etcd logs at error level during a normal start
// or shutdown of an embedded server; they are demoted to debug so test and
// dev-mode output stays meaningful.
var benignErrors = []struct{ msg, errContains string }{
	{"setting up serving from embedded etcd failed.", "closed"},
	{"failed to update storage version", "missing term information"},
}

func benign(msg string, attrs []any) bool {
	var errText string
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i] == "error" {
			errText = fmt.Sprint(attrs[i+1])
		}
	}
	for _, b := range benignErrors {
		if msg == b.msg && strings.Contains(errText, b.errContains) {
			return true
		}
	}
	return false
}

func (c *slogCore) Sync() error { return nil }

func fieldAttrs(fields []zapcore.Field) []any {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, k, v)
	}
	return out
}
