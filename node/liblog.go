package node

import (
	"context"
	"log/slog"

	golog "github.com/ipfs/go-log/v2"
	"go.uber.org/zap/zapcore"
)

// RouteLibraryLogs sends go-libp2p's and kad-dht's logs (go-log, a zap
// logger shared by the whole process) to log: their errors only, or their
// warnings too when verbose (the libraries warn about routine things, such
// as an empty routing table on a node's first start). It is process-wide:
// the binary calls it once; tests with many nodes in one process leave the
// libraries' default (errors to stderr) alone.
func RouteLibraryLogs(log *slog.Logger, verbose bool) {
	level, glevel := zapcore.ErrorLevel, golog.LevelError
	if verbose {
		level, glevel = zapcore.WarnLevel, golog.LevelWarn
	}
	golog.SetPrimaryCore(&zapSlog{log: log, level: level})
	golog.SetAllLoggers(glevel)
}

// zapSlog is a zapcore.Core that writes to a slog.Logger.
type zapSlog struct {
	log    *slog.Logger
	level  zapcore.Level
	fields []zapcore.Field
}

func (z *zapSlog) Enabled(l zapcore.Level) bool { return l >= z.level }

func (z *zapSlog) With(fields []zapcore.Field) zapcore.Core {
	return &zapSlog{log: z.log, level: z.level, fields: append(append([]zapcore.Field{}, z.fields...), fields...)}
}

func (z *zapSlog) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if z.Enabled(e.Level) {
		return ce.AddCore(e, z)
	}
	return ce
}

func (z *zapSlog) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field{}, z.fields...), fields...) {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields)+1)
	attrs = append(attrs, slog.String("lib", e.LoggerName))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	level := slog.LevelInfo
	switch {
	case e.Level >= zapcore.ErrorLevel:
		// A library's "error" is about a peer or the network, never ours
		// to page about: report it as a warning.
		level = slog.LevelWarn
	case e.Level >= zapcore.WarnLevel:
		level = slog.LevelWarn
	case e.Level <= zapcore.DebugLevel:
		level = slog.LevelDebug
	}
	z.log.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

func (z *zapSlog) Sync() error { return nil }
