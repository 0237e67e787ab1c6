package fleet

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// testToken carries a marker that must never show up in an error string.
const (
	testToken  = "eyJhbGciOi.TOKENSECRET-0123456789abcdef.sig"
	tokenMark  = "TOKENSECRET"
	testVIN    = "5YJ3E1EA1JF000001"
	tokenInErr = "error string contains the access token"
)

type staticToken string

func (s staticToken) AccessToken(context.Context) (string, error) { return string(s), nil }

// recorded is one request as the fake Tesla saw it.
type recorded struct {
	Method   string
	Path     string // escaped path
	RawQuery string
	Header   http.Header
	Body     []byte
}

// fakeTesla is a loopback HTTP server answering as the Fleet API (or the
// proxy) would, recording every request so tests can count them.
type fakeTesla struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newFakeTesla(t *testing.T, handle http.HandlerFunc) *fakeTesla {
	t.Helper()
	f := &fakeTesla{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{
			Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: body,
		})
		f.mu.Unlock()
		handle(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTesla) URL() string { return f.srv.URL }

func (f *fakeTesla) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

// answer writes a status and a body.
func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// teslaError is Tesla's error envelope.
func teslaError(msg string) string {
	return `{"response":null,"error":"` + msg + `","error_description":""}`
}

func assertNoToken(t *testing.T, err error) {
	t.Helper()
	if err != nil && (strings.Contains(err.Error(), tokenMark) || strings.Contains(err.Error(), testToken)) {
		t.Fatalf("%s: %q", tokenInErr, err)
	}
}
