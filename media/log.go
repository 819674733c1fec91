package media

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/pion/logging"
)

// slogFactory routes pion's logs into the engine's slog.Logger, every line
// at slog.LevelDebug whatever pion's own level, so the node's log shows
// them only at --log-level debug. pion logs per call and per packet, and
// most of its warnings and errors are about what the remote peer or the
// network did (ICE checks that fail, DTLS alerts, SRTP packets discarded):
// untrusted input must not log at warn or error level, and a call's end is
// reported by the call itself. Each line carries the pion scope ("pion":
// "ice", "dtls", ...) and pion's level ("pion_level": "warn"). Trace lines
// go at levelTrace, below Debug, where only a handler set lower still sees
// them.
type slogFactory struct{ log *slog.Logger }

// levelTrace is the slog level of pion's trace lines.
const levelTrace = slog.LevelDebug - 4

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLeveled{log: f.log.With("pion", scope)}
}

type slogLeveled struct{ log *slog.Logger }

func (l slogLeveled) emit(level slog.Level, pionLevel, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, msg, "pion_level", pionLevel)
	}
}

func (l slogLeveled) emitf(level slog.Level, pionLevel, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...), "pion_level", pionLevel)
	}
}

func (l slogLeveled) Trace(msg string) { l.emit(levelTrace, "trace", msg) }
func (l slogLeveled) Tracef(format string, args ...any) {
	l.emitf(levelTrace, "trace", format, args...)
}
func (l slogLeveled) Debug(msg string) { l.emit(slog.LevelDebug, "debug", msg) }
func (l slogLeveled) Debugf(format string, args ...any) {
	l.emitf(slog.LevelDebug, "debug", format, args...)
}
func (l slogLeveled) Info(msg string) { l.emit(slog.LevelDebug, "info", msg) }
func (l slogLeveled) Infof(format string, args ...any) {
	l.emitf(slog.LevelDebug, "info", format, args...)
}
func (l slogLeveled) Warn(msg string) { l.emit(slog.LevelDebug, "warn", msg) }
func (l slogLeveled) Warnf(format string, args ...any) {
	l.emitf(slog.LevelDebug, "warn", format, args...)
}
func (l slogLeveled) Error(msg string) { l.emit(slog.LevelDebug, "error", msg) }
func (l slogLeveled) Errorf(format string, args ...any) {
	l.emitf(slog.LevelDebug, "error", format, args...)
}

// counter is an atomic event counter.
type counter struct{ n atomic.Uint64 }

func (c *counter) inc()         { c.n.Add(1) }
func (c *counter) load() uint64 { return c.n.Load() }
