package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/logging"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start serves h on a loopback port and returns its base URL and a stop func
// that cancels the serve context and returns Serve's error.
func start(t *testing.T, h http.Handler, logger *zap.Logger, opts Options) (string, func() error) {
	t.Helper()
	ln, err := Listen("0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(ln, h, logger, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	port := ln.Addr().String()[strings.LastIndex(ln.Addr().String(), ":"):]
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return "http://127.0.0.1" + port, stop
}

func decodeError(t *testing.T, resp *http.Response) contract.ErrorBody {
	t.Helper()
	defer resp.Body.Close()
	var body contract.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("error body is not JSON: %v", err)
	}
	if body.Status != "error" || body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("error body has the wrong shape: %+v", body)
	}
	return body
}

func TestListenRejectsBadPort(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"http", "-1", "70000"} {
		if _, err := Listen(p); err == nil || !strings.Contains(err.Error(), "PORT") {
			t.Errorf("Listen(%q) error = %v, want one naming PORT", p, err)
		}
	}
}

func TestRouterErrorsHaveTheErrorShape(t *testing.T) {
	t.Parallel()
	r := NewRouter(zap.NewNop(), "")
	r.Post("/echo", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if DecodeJSON(w, r, &v, false) {
			WriteJSON(w, 200, v)
		}
	})
	r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	base, _ := start(t, r, zap.NewNop(), Options{})

	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown path", "GET", "/nope", "", 404, contract.CodeNotFound},
		{"wrong method", "GET", "/echo", "", 405, contract.CodeMethodNotAllowed},
		{"malformed JSON", "POST", "/echo", `{"a":`, 400, contract.CodeBadRequest},
		{"trailing data", "POST", "/echo", `{"a":1} {"b":2}`, 400, contract.CodeBadRequest},
		{"empty required body", "POST", "/echo", ``, 400, contract.CodeBadRequest},
		{"oversized body", "POST", "/echo", `{"a":"` + strings.Repeat("x", DefaultMaxBody) + `"}`, 413, contract.CodePayloadTooLarge},
		{"panic", "GET", "/boom", "", 500, contract.CodeInternal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if got := decodeError(t, resp); got.Error.Code != tc.code {
				t.Errorf("code = %s, want %s", got.Error.Code, tc.code)
			}
		})
	}

	resp, err := http.Post(base+"/echo", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("valid body status = %d", resp.StatusCode)
	}
}

func TestChunkedOversizedBodyIs413(t *testing.T) {
	t.Parallel()
	r := NewRouter(zap.NewNop(), "")
	r.Post("/echo", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if DecodeJSON(w, r, &v, false) {
			WriteJSON(w, 200, v)
		}
	})
	base, _ := start(t, r, zap.NewNop(), Options{})
	// No Content-Length: the limit must still hold while reading.
	body := io.MultiReader(strings.NewReader(`{"a":"`), strings.NewReader(strings.Repeat("y", 2*DefaultMaxBody)), strings.NewReader(`"}`))
	req, _ := http.NewRequest("POST", base+"/echo", body)
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 413 {
		t.Errorf("status = %d, want 413", resp.StatusCode)
	}
	decodeError(t, resp)
}

func TestRequestLogCarriesTraceAndPanicIsLogged(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	logger := logging.New(logging.Options{Output: &buf, Level: zapcore.DebugLevel})
	r := NewRouter(logger, "proj-1")
	r.Get("/hello", func(w http.ResponseWriter, r *http.Request) {
		logging.FromContext(r.Context()).Info("inside handler")
		WriteJSON(w, 200, map[string]string{"status": "ok"})
	})
	r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	base, stop := start(t, r, logger, Options{})

	req, _ := http.NewRequest("GET", base+"/hello?code=abc", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_ = stop()

	out := buf.String()
	var sawHandler, sawRequest, sawPanic bool
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		trace, _ := m["logging.googleapis.com/trace"].(string)
		switch m["message"] {
		case "inside handler":
			sawHandler = trace == "projects/proj-1/traces/4bf92f3577b34da6a3ce929d0e0e4736"
		case "request":
			hr, _ := m["httpRequest"].(map[string]any)
			if hr["requestUrl"] == "/hello" {
				sawRequest = trace != "" && hr["status"] == float64(200)
			}
		case "panic serving request":
			sawPanic = m["severity"] == "ERROR"
		}
	}
	if !sawHandler || !sawRequest || !sawPanic {
		t.Errorf("handler line traced=%v, request line traced=%v, panic logged=%v\n%s", sawHandler, sawRequest, sawPanic, out)
	}
	if strings.Contains(out, "code=abc") {
		t.Error("query strings must not be logged")
	}
}

func TestShutdownFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		WriteJSON(w, 200, map[string]string{"status": "done"})
	})
	base, stop := start(t, h, zap.NewNop(), Options{ShutdownTimeout: time.Minute})

	type result struct {
		status int
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		resp.Body.Close()
		got <- result{status: resp.StatusCode}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()

	// While shutting down, the in-flight request still holds the server open.
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned before the in-flight request finished: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if r := <-got; r.err != nil || r.status != 200 {
		t.Fatalf("in-flight request: status %d, err %v", r.status, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get(base + "/slow"); err == nil {
		t.Error("a request after shutdown should fail to connect")
	}
}

func TestShutdownIsBoundedByItsTimeout(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	block := make(chan struct{})
	defer close(block)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	base, stop := start(t, h, zap.NewNop(), Options{ShutdownTimeout: 100 * time.Millisecond})
	go func() {
		if resp, err := http.Get(base + "/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	if err := stop(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Serve with a stuck request = %v, want the shutdown deadline", err)
	}
}
