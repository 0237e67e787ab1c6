package logging

import (
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Trace is the request's trace context as Cloud Logging wants it.
type Trace struct {
	TraceID string
	SpanID  string // hexadecimal, 16 digits
	Sampled bool
}

// ParseTrace reads the W3C traceparent header, falling back to Google's
// older X-Cloud-Trace-Context (whose span id is decimal).
func ParseTrace(h http.Header) (Trace, bool) {
	if tp := h.Get("traceparent"); tp != "" {
		// 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
		parts := strings.Split(strings.TrimSpace(tp), "-")
		if len(parts) == 4 && len(parts[1]) == 32 && len(parts[2]) == 16 && isHex(parts[1]) && isHex(parts[2]) && parts[1] != strings.Repeat("0", 32) {
			flags, err := strconv.ParseUint(parts[3], 16, 8)
			return Trace{TraceID: parts[1], SpanID: parts[2], Sampled: err == nil && flags&1 == 1}, true
		}
	}
	if xc := h.Get("X-Cloud-Trace-Context"); xc != "" {
		// TRACE_ID/SPAN_ID;o=OPTIONS with SPAN_ID in decimal.
		traceID, rest, _ := strings.Cut(xc, "/")
		if len(traceID) != 32 || !isHex(traceID) {
			return Trace{}, false
		}
		t := Trace{TraceID: traceID}
		spanDec, opts, _ := strings.Cut(rest, ";")
		if n, err := strconv.ParseUint(spanDec, 10, 64); err == nil && n != 0 {
			t.SpanID = leftPad16(strconv.FormatUint(n, 16))
		}
		t.Sampled = strings.TrimSpace(opts) == "o=1"
		return t, true
	}
	return Trace{}, false
}

// Fields returns the Cloud Logging trace fields. Without a project id the
// trace can't be linked, so only the bare id is kept for grep.
func (t Trace) Fields(projectID string) []zap.Field {
	if t.TraceID == "" {
		return nil
	}
	trace := t.TraceID
	if projectID != "" {
		trace = "projects/" + projectID + "/traces/" + t.TraceID
	}
	fields := []zap.Field{zap.String("logging.googleapis.com/trace", trace)}
	if t.SpanID != "" {
		fields = append(fields, zap.String("logging.googleapis.com/spanId", t.SpanID))
	}
	return append(fields, zap.Bool("logging.googleapis.com/trace_sampled", t.Sampled))
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}

func leftPad16(s string) string {
	if len(s) >= 16 {
		return s
	}
	return strings.Repeat("0", 16-len(s)) + s
}
