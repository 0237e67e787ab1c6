// Package httpclienttest has a redirect trap for the tests of outbound
// clients: a loopback server that answers every request with a redirect to a
// second loopback server (another port), which records whatever reaches it.
package httpclienttest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Seen is one request that reached the sink.
type Seen struct {
	Method string
	Path   string
	Header http.Header
	Body   string
}

// Trap is the redirecting server (URL) and the sink it redirects to.
type Trap struct {
	URL string // base URL of the redirecting server
	// Sink is where the redirects point; nothing should ever arrive there.
	Sink *httptest.Server

	mu    sync.Mutex
	front int // requests the redirecting server answered
	seen  []Seen
}

// NewTrap starts both servers for the test; status is the redirect's
// (302, 307, 308, …). The Location keeps the request's path and query, as a
// moved endpoint would.
func NewTrap(t testing.TB, status int) *Trap {
	t.Helper()
	tr := &Trap{}
	tr.Sink = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		tr.mu.Lock()
		tr.seen = append(tr.seen, Seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body)})
		tr.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"stolen","refresh_token":"stolen","expires_in":28800,"response":[],"success":true}`)
	}))
	t.Cleanup(tr.Sink.Close)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		tr.mu.Lock()
		tr.front++
		tr.mu.Unlock()
		http.Redirect(w, r, tr.Sink.URL+r.URL.RequestURI(), status)
	}))
	t.Cleanup(front.Close)
	tr.URL = front.URL
	return tr
}

// Redirected is the number of requests the redirecting server answered.
func (tr *Trap) Redirected() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.front
}

// Seen lists what reached the sink.
func (tr *Trap) Seen() []Seen {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]Seen(nil), tr.seen...)
}

// AssertNothingLeaked fails the test if the sink received any request
// carrying an Authorization or X-API-Key header, a client_secret or
// refresh_token field, or any of secrets; and if the redirecting server
// was never asked (the test would then prove nothing).
func (tr *Trap) AssertNothingLeaked(t testing.TB, secrets ...string) {
	t.Helper()
	if tr.Redirected() == 0 {
		t.Fatal("the redirecting server was never called: the test proves nothing")
	}
	for _, s := range tr.Seen() {
		for _, h := range []string{"Authorization", "X-Api-Key", "X-Serverless-Authorization"} {
			if v := s.Header.Get(h); v != "" {
				t.Errorf("%s %s reached the redirect target with %s", s.Method, s.Path, h)
			}
		}
		for _, field := range []string{"client_secret", "refresh_token"} {
			if strings.Contains(s.Body, field) {
				t.Errorf("%s %s reached the redirect target with %s in its body", s.Method, s.Path, field)
			}
		}
		for _, secret := range secrets {
			if secret == "" {
				continue
			}
			all := s.Body
			for _, vs := range s.Header {
				all += "\n" + strings.Join(vs, "\n")
			}
			if strings.Contains(all, secret) {
				t.Errorf("%s %s reached the redirect target carrying a credential", s.Method, s.Path)
			}
		}
	}
	if n := len(tr.Seen()); n > 0 {
		t.Errorf("%d request(s) followed the redirect; none should", n)
	}
}
