// Package logging sets up zap for Cloud Logging's structured stdout format
// (severity names, message, RFC 3339 time, trace correlation) and offers
// field types that let code say "a token was used" without its value.
package logging

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Format selects the output encoding.
type Format string

// Formats: JSON for Cloud Run, console for a human at a terminal.
const (
	FormatJSON    Format = "json"
	FormatConsole Format = "console"
)

// ParseFormat validates a LOG_FORMAT value; empty means JSON.
func ParseFormat(s string) (Format, error) {
	switch Format(strings.ToLower(strings.TrimSpace(s))) {
	case "", FormatJSON:
		return FormatJSON, nil
	case FormatConsole:
		return FormatConsole, nil
	default:
		return "", fmt.Errorf("LOG_FORMAT: %q is not one of json, console", s)
	}
}

// Options configure New.
type Options struct {
	Format  Format
	Level   zapcore.Level // default Info
	Service string        // added to every entry as "service"
	Version string        // added to every entry as "version" when set
	Output  io.Writer     // default os.Stdout; tests pass a buffer
}

// New builds a logger writing to opts.Output.
func New(opts Options) *zap.Logger {
	out := opts.Output
	if out == nil {
		out = os.Stdout
	}
	var enc zapcore.Encoder
	if opts.Format == FormatConsole {
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		cfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		if f, ok := out.(*os.File); !ok || !isTerminal(f) {
			cfg.EncodeLevel = zapcore.CapitalLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(cfg)
	} else {
		enc = zapcore.NewJSONEncoder(CloudLoggingEncoderConfig())
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(out)), zap.NewAtomicLevelAt(opts.Level))
	logger := zap.New(core, zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr)))
	if opts.Service != "" {
		logger = logger.With(zap.String("service", opts.Service))
	}
	if opts.Version != "" {
		logger = logger.With(zap.String("version", opts.Version))
	}
	return logger
}

// CloudLoggingEncoderConfig names fields the way Cloud Logging reads them
// from a JSON line: severity, message, time (RFC 3339) and
// logging.googleapis.com/sourceLocation-compatible caller.
func CloudLoggingEncoderConfig() zapcore.EncoderConfig {
	return zapcore.EncoderConfig{
		TimeKey:        "time",
		LevelKey:       "severity",
		NameKey:        "logger",
		CallerKey:      "caller",
		MessageKey:     "message",
		StacktraceKey:  "stack_trace",
		LineEnding:     zapcore.DefaultLineEnding,
		EncodeLevel:    encodeSeverity,
		EncodeTime:     zapcore.RFC3339NanoTimeEncoder,
		EncodeDuration: zapcore.MillisDurationEncoder,
		EncodeCaller:   zapcore.ShortCallerEncoder,
	}
}

// Severity maps a zap level to Cloud Logging's severity name. zap's "warn"
// is not one Cloud Logging knows, so WARNING is spelled out.
func Severity(l zapcore.Level) string {
	switch l {
	case zapcore.DebugLevel:
		return "DEBUG"
	case zapcore.InfoLevel:
		return "INFO"
	case zapcore.WarnLevel:
		return "WARNING"
	case zapcore.ErrorLevel:
		return "ERROR"
	case zapcore.DPanicLevel:
		return "CRITICAL"
	case zapcore.PanicLevel:
		return "ALERT"
	case zapcore.FatalLevel:
		return "EMERGENCY"
	default:
		return "DEFAULT"
	}
}

func encodeSeverity(l zapcore.Level, enc zapcore.PrimitiveArrayEncoder) {
	enc.AppendString(Severity(l))
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

type ctxKey struct{}

// WithLogger returns a context carrying l.
func WithLogger(ctx context.Context, l *zap.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// FromContext returns the logger stored by WithLogger, or a no-op logger, so
// domain code can log with request correlation without knowing about HTTP.
func FromContext(ctx context.Context) *zap.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*zap.Logger); ok && l != nil {
		return l
	}
	return zap.NewNop()
}
