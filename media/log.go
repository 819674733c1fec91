package media

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/pion/logging"
)

// slogFactory routes pion's logs into the engine's slog.Logger. pion's
// trace output is dropped, its errors become warnings: pion reports
// problems caused by remote peers as errors, and untrusted input must never
// log at error level.
type slogFactory struct{ log *slog.Logger }

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLeveled{log: f.log.With("pion", scope)}
}

type slogLeveled struct{ log *slog.Logger }

func (l slogLeveled) emit(level slog.Level, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l slogLeveled) emitf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (slogLeveled) Trace(string)          {}
func (slogLeveled) Tracef(string, ...any) {}
func (l slogLeveled) Debug(msg string)    { l.emit(slog.LevelDebug, msg) }
func (l slogLeveled) Debugf(format string, args ...any) {
	l.emitf(slog.LevelDebug, format, args...)
}
func (l slogLeveled) Info(msg string) { l.emit(slog.LevelDebug, msg) }
func (l slogLeveled) Infof(format string, args ...any) {
	l.emitf(slog.LevelDebug, format, args...)
}
func (l slogLeveled) Warn(msg string) { l.emit(slog.LevelWarn, msg) }
func (l slogLeveled) Warnf(format string, args ...any) {
	l.emitf(slog.LevelWarn, format, args...)
}
func (l slogLeveled) Error(msg string) { l.emit(slog.LevelWarn, msg) }
func (l slogLeveled) Errorf(format string, args ...any) {
	l.emitf(slog.LevelWarn, format, args...)
}

// counter is an atomic event counter.
type counter struct{ n atomic.Uint64 }

func (c *counter) inc()         { c.n.Add(1) }
func (c *counter) load() uint64 { return c.n.Load() }
