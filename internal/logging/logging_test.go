package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestJSONUsesCloudLoggingFields(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := New(Options{Format: FormatJSON, Level: zapcore.DebugLevel, Service: "worker", Output: &buf})
	l.Debug("d")
	l.Info("i")
	l.Warn("w")
	l.Error("e")
	lines := decodeLines(t, &buf)
	want := []string{"DEBUG", "INFO", "WARNING", "ERROR"}
	for i, m := range lines {
		if m["severity"] != want[i] {
			t.Errorf("line %d severity = %v, want %s", i, m["severity"], want[i])
		}
		if _, ok := m["message"]; !ok {
			t.Errorf("line %d has no message field: %v", i, m)
		}
		ts, _ := m["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("line %d time %q is not RFC 3339: %v", i, ts, err)
		}
		if m["service"] != "worker" {
			t.Errorf("line %d service = %v", i, m["service"])
		}
	}
}

func TestSeverityNames(t *testing.T) {
	t.Parallel()
	cases := map[zapcore.Level]string{
		zapcore.DebugLevel: "DEBUG", zapcore.InfoLevel: "INFO", zapcore.WarnLevel: "WARNING",
		zapcore.ErrorLevel: "ERROR", zapcore.DPanicLevel: "CRITICAL", zapcore.PanicLevel: "ALERT", zapcore.FatalLevel: "EMERGENCY",
	}
	for lvl, want := range cases {
		if got := Severity(lvl); got != want {
			t.Errorf("Severity(%v) = %s, want %s", lvl, got, want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Format{"": FormatJSON, "json": FormatJSON, "CONSOLE": FormatConsole} {
		got, err := ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil || !strings.Contains(err.Error(), "LOG_FORMAT") {
		t.Errorf("ParseFormat(xml) error = %v, want one naming LOG_FORMAT", err)
	}
}

func TestConsoleFormatIsReadable(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	New(Options{Format: FormatConsole, Output: &buf}).Info("hello there", zap.String("vin", "X"))
	if s := buf.String(); !strings.Contains(s, "hello there") || strings.HasPrefix(s, "{") {
		t.Errorf("console output %q", s)
	}
}

func TestSecretNeverPrintsItsValue(t *testing.T) {
	t.Parallel()
	const token = "EU_supersecretrefreshtoken0123456789"
	s := Secret(token)
	var buf bytes.Buffer
	l := New(Options{Output: &buf})
	l.Info("used", Token("refresh_token", token), zap.Any("any", s), zap.Stringer("stringer", s))
	js, _ := json.Marshal(struct{ T Secret }{s})
	printed := fmt.Sprintf("%v %s %+v %#v %q", s, s, s, s, s)
	for name, out := range map[string]string{"zap": buf.String(), "json": string(js), "fmt": printed} {
		if strings.Contains(out, token) {
			t.Errorf("%s output contains the token: %s", name, out)
		}
	}
	if !strings.Contains(buf.String(), s.Fingerprint()) {
		t.Errorf("log should carry the fingerprint %s: %s", s.Fingerprint(), buf.String())
	}
	if s.Reveal() != token {
		t.Error("Reveal must return the value")
	}
	if Secret("other").Fingerprint() == s.Fingerprint() {
		t.Error("different secrets should have different fingerprints")
	}
}

func TestParseTrace(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		header map[string]string
		want   Trace
		ok     bool
	}{
		{"traceparent sampled", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			Trace{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true}, true},
		{"traceparent not sampled", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
			Trace{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", false}, true},
		{"cloud trace context decimal span", map[string]string{"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
			Trace{"105445aa7843bc8bf206b12000100000", "0000000000000001", true}, true},
		{"traceparent wins", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
			Trace{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true}, true},
		{"bad traceparent falls back", map[string]string{"traceparent": "garbage", "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/12345"},
			Trace{"105445aa7843bc8bf206b12000100000", "0000000000003039", false}, true},
		{"none", map[string]string{}, Trace{}, false},
		{"bad cloud context", map[string]string{"X-Cloud-Trace-Context": "nothex/1"}, Trace{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got, ok := ParseTrace(h)
			if ok != tc.ok || got != tc.want {
				t.Errorf("ParseTrace = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTraceFieldsName(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tr := Trace{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", Sampled: true}
	New(Options{Output: &buf}).Info("x", tr.Fields("my-proj")...)
	m := decodeLines(t, &buf)[0]
	if m["logging.googleapis.com/trace"] != "projects/my-proj/traces/4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace field = %v", m["logging.googleapis.com/trace"])
	}
	if m["logging.googleapis.com/spanId"] != "00f067aa0ba902b7" || m["logging.googleapis.com/trace_sampled"] != true {
		t.Errorf("span fields = %v", m)
	}
}
