package server

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/contract"
)

// raw sends a request exactly as written and reads the answer.
func raw(t *testing.T, base, request string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestAnswersBeforeRoutingHaveTheErrorShape(t *testing.T) {
	t.Parallel()
	r := NewRouter(zap.NewNop(), "")
	r.Get("/health", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 200, map[string]string{"status": "ok"}) })
	base, _ := start(t, r, zap.NewNop(), Options{})

	huge := strings.Repeat("x", DefaultMaxHeaderBytes+8<<10)
	cases := []struct {
		name, request string
		status        int
		code          string
	}{
		{"header too large", "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + huge + "\r\n\r\n", 431, contract.CodeHeadersTooLarge},
		{"many headers too large", "GET /health HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 80) + "\r\n", 431, contract.CodeHeadersTooLarge},
		{"no Host", "GET /health HTTP/1.1\r\n\r\n", 400, contract.CodeBadRequest},
		{"malformed header", "GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, contract.CodeBadRequest},
		{"garbage request line", "HELLO\r\n\r\n", 400, contract.CodeBadRequest},
		{"HTTP/3.0", "GET /health HTTP/3.0\r\nHost: x\r\n\r\n", 505, contract.CodeHTTPVersionNotSupported},
		{"unknown transfer encoding", "POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, contract.CodeNotImplemented},
		{"unknown Expect", "POST /health HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}", 417, contract.CodeExpectationFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := raw(t, base, tc.request)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := decodeError(t, resp); got.Error.Code != tc.code {
				t.Errorf("code = %s, want %s (%s)", got.Error.Code, tc.code, got.Error.Message)
			}
		})
	}

	// Just under the limit is an ordinary request, and a connection kept
	// alive serves request after request as before.
	ok := "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("y", DefaultMaxHeaderBytes-1024) + "\r\n\r\n"
	if resp := raw(t, base, ok); resp.StatusCode != 200 {
		t.Errorf("headers under the limit: status %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/health", nil)
	for i := 0; i < 3; i++ {
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("keep-alive request %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
}

func TestMaxHeaderBytesIsConfigurable(t *testing.T) {
	t.Parallel()
	base, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), zap.NewNop(), Options{MaxHeaderBytes: 2048})
	resp := raw(t, base, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("z", 8<<10)+"\r\n\r\n")
	body := decodeError(t, resp)
	if resp.StatusCode != 431 || !strings.Contains(body.Error.Message, "2048") {
		t.Errorf("status %d, message %q", resp.StatusCode, body.Error.Message)
	}
}

func TestPlainAnswerLeavesHandlersAlone(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nDate: Sun, 01 Mar 2026 12:00:00 GMT\r\n\r\nbad",
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}",
		"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\n\r\n{}",
		"{\"status\":\"error\"}",
		"HTTP/1.1 4",
	} {
		if status, _, ok := plainAnswer([]byte(p)); ok {
			t.Errorf("plainAnswer(%q) = %d, true; want it left alone", p, status)
		}
	}
	status, detail, ok := plainAnswer([]byte("HTTP/1.1 400 Bad Request: missing required Host header" + plainErrorHeaders + "400 Bad Request: missing required Host header"))
	if !ok || status != 400 || detail != "missing required Host header" {
		t.Errorf("plainAnswer = %d %q %v", status, detail, ok)
	}
}
