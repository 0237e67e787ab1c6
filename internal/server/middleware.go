package server

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/logging"
)

// DefaultMaxBody is the request body limit both services use (64 KiB).
const DefaultMaxBody = 64 << 10

// BodyLimit caps request bodies; reading past the cap fails with
// *http.MaxBytesError, which DecodeJSON answers with 413.
func BodyLimit(limit int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > limit {
				WriteError(w, http.StatusRequestEntityTooLarge, contract.CodePayloadTooLarge,
					fmt.Sprintf("request body is larger than %d bytes", limit))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			next.ServeHTTP(w, r)
		})
	}
}

// statusRecorder remembers the status and size written.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// RequestLogger logs one line per request with Cloud Logging's httpRequest
// and trace fields, and puts a logger carrying the trace into the request
// context so domain code logs correlated lines too. Probes (/health) log at
// debug level so a liveness probe does not fill the log.
func RequestLogger(logger *zap.Logger, projectID string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			reqLogger := logger
			if tr, ok := logging.ParseTrace(r.Header); ok {
				reqLogger = logger.With(tr.Fields(projectID)...)
			}
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r.WithContext(logging.WithLogger(r.Context(), reqLogger)))
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			level := zap.InfoLevel
			switch {
			case rec.status >= 500:
				level = zap.ErrorLevel
			case rec.status >= 400:
				level = zap.WarnLevel
			case r.URL.Path == "/health":
				level = zap.DebugLevel
			}
			reqLogger.Check(level, "request").Write(zap.Object("httpRequest", httpRequest{
				method: r.Method, url: r.URL.Path, status: rec.status, size: rec.bytes,
				userAgent: r.UserAgent(), remoteIP: r.RemoteAddr, latency: time.Since(start),
			}))
		})
	}
}

// httpRequest is Cloud Logging's HttpRequest structure. The URL is the path
// only: query strings could carry codes or tokens (the CLI's callback does).
type httpRequest struct {
	method, url, userAgent, remoteIP string
	status, size                     int
	latency                          time.Duration
}

func (h httpRequest) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("requestMethod", h.method)
	enc.AddString("requestUrl", h.url)
	enc.AddInt("status", h.status)
	enc.AddString("responseSize", fmt.Sprint(h.size))
	enc.AddString("userAgent", h.userAgent)
	enc.AddString("remoteIp", h.remoteIP)
	enc.AddString("latency", fmt.Sprintf("%.3fs", h.latency.Seconds()))
	return nil
}

// Recoverer turns a panic into a 500 with the error shape and a logged stack,
// instead of a dropped connection.
func Recoverer(logger *zap.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				rec := recover()
				if rec == nil {
					return
				}
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				logging.FromContext(r.Context()).Error("panic serving request",
					zap.String("path", r.URL.Path), zap.String("panic", fmt.Sprint(rec)),
					zap.ByteString("stack", debug.Stack()))
				WriteError(w, http.StatusInternalServerError, contract.CodeInternal, "internal error")
			}()
			next.ServeHTTP(w, r)
		})
	}
}
