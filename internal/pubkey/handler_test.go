package pubkey_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/pubkey"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

const secret = "tesla-private-key"

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// syncBuffer collects log lines written from several goroutines.
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

// fixture is a served handler over a memory store, a manual clock and a
// log buffer; every answer it fetched is kept, so a test can check none of
// them carries key material.
type fixture struct {
	t       *testing.T
	store   *secrets.Memory
	clock   *clock.Manual
	keys    *pubkey.Keys
	url     string
	logs    *syncBuffer
	mu      sync.Mutex
	answers []string
}

func newFixture(t *testing.T, payloads ...[]byte) *fixture {
	t.Helper()
	clk := clock.NewManual(start)
	store := secrets.NewMemory(clk)
	ctx := context.Background()
	for _, p := range payloads {
		if _, err := store.Add(ctx, secret, p); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuffer{}
	logger := logging.New(logging.Options{Format: logging.FormatJSON, Level: zap.DebugLevel, Service: "pubkey", Output: logs})
	keys := pubkey.NewKeys(store, pubkey.KeysConfig{Secret: secret, Clock: clk, Logger: logger})
	_, _ = keys.Load(ctx)
	srv := httptest.NewServer(pubkey.NewHandler(pubkey.Deps{Keys: keys, Logger: logger, ProjectID: "demo"}))
	t.Cleanup(srv.Close)
	return &fixture{t: t, store: store, clock: clk, keys: keys, url: srv.URL, logs: logs}
}

// noRedirects is a client that reports a redirect instead of following it.
var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) do(method, path string, body io.Reader) answer {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.answers = append(f.answers, resp.Status+"\n"+headerText(resp.Header)+"\n"+string(b))
	f.mu.Unlock()
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func headerText(h http.Header) string {
	var b strings.Builder
	_ = h.Write(&b)
	return b.String()
}

// errorCode decodes the project's error shape.
func errorCode(t *testing.T, a answer) string {
	t.Helper()
	var e contract.ErrorBody
	if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Status != "error" {
		t.Fatalf("not the error shape (%v): %s", err, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error answered as %q", ct)
	}
	return e.Error.Code
}

// newKey is a fresh P-256 key: its SEC1 PEM (what the secret holds) and
// the public PEM that must be served.
func newKey(t *testing.T) (private, public []byte) {
	t.Helper()
	k, sec1, err := carcmd.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return sec1, k.PublicPEM()
}

// assertNoKeyMaterial fails if a marker (see secretParts) or a private
// key's PEM header appears in an answer or a log line.
func (f *fixture) assertNoKeyMaterial(markers ...string) {
	f.t.Helper()
	f.mu.Lock()
	seen := strings.Join(f.answers, "\n")
	f.mu.Unlock()
	seen += f.logs.String()
	for _, m := range markers {
		if strings.Contains(seen, m) {
			f.t.Errorf("%q appears in an answer or a log line", m)
		}
	}
	if strings.Contains(seen, "PRIVATE KEY-----") {
		f.t.Error("a private key's PEM header appears in an answer or a log line")
	}
}

// secretParts are the forms a leaked private key would take: the PEM body
// as one string, its first line (which holds the private scalar; the last
// lines hold the public point, which is public and served), and the scalar
// in hex, base64 and base64url.
func secretParts(t *testing.T, privPEM []byte) []string {
	t.Helper()
	block, _ := pem.Decode(privPEM)
	k, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	d, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(privPEM)), "\n")
	body := lines[1 : len(lines)-1]
	return []string{strings.Join(body, ""), strings.Join(body, "\n"), body[0], hex.EncodeToString(d),
		base64.StdEncoding.EncodeToString(d), base64.RawURLEncoding.EncodeToString(d)}
}

func TestServesThePublicKey(t *testing.T) {
	t.Parallel()
	priv, pub := newKey(t)
	f := newFixture(t, priv)
	for _, path := range []string{pubkey.Path, pubkey.Path + "?cache=bust"} {
		a := f.do(http.MethodGet, path, nil)
		if a.status != http.StatusOK {
			t.Fatalf("GET %s: %d (a redirect is not followed and fails too) %s", path, a.status, a.body)
		}
		if a.body != string(pub) {
			t.Errorf("GET %s: body\n%s\nwant the key's PublicPEM\n%s", path, a.body, pub)
		}
		if !strings.HasPrefix(a.body, "-----BEGIN PUBLIC KEY-----\n") {
			t.Errorf("body is not a PKIX public key PEM: %q", a.body)
		}
		for h, want := range map[string]string{"Content-Type": "application/x-pem-file", "Cache-Control": "public, max-age=300",
			"X-Content-Type-Options": "nosniff", "Content-Length": "178"} {
			if got := a.header.Get(h); got != want {
				t.Errorf("GET %s: %s %q, want %q", path, h, got, want)
			}
		}
		if a.header.Get("Location") != "" {
			t.Errorf("GET %s: a Location header", path)
		}
	}
	head := f.do(http.MethodHead, pubkey.Path, nil)
	if head.status != http.StatusOK || head.body != "" {
		t.Errorf("HEAD: %d with body %q", head.status, head.body)
	}
	if head.header.Get("Content-Type") != pubkey.ContentType || head.header.Get("Content-Length") != "178" {
		t.Errorf("HEAD headers: %v", head.header)
	}
	f.assertNoKeyMaterial(secretParts(t, priv)...)
}

func TestNothingElseAnswers(t *testing.T) {
	t.Parallel()
	priv, _ := newKey(t)
	f := newFixture(t, priv)
	for _, path := range []string{"/", "/health", "/index.html", "/.well-known/", "/.well-known/appspecific/",
		"/.well-known/appspecific/com.tesla.3p.public-key", pubkey.Path + "/", pubkey.Path + ".txt",
		"/.well-known/appspecific/com.tesla.3p.public-key.PEM", "/.well-known/appspecific/com.tesla.3p.private-key.pem",
		"//.well-known/appspecific/com.tesla.3p.public-key.pem", "/x" + pubkey.Path, "/.well-known/../" + pubkey.Path[1:],
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
			a := f.do(method, path, nil)
			if a.status != http.StatusNotFound {
				t.Errorf("%s %s: %d, want 404 (and no redirect) %s", method, path, a.status, a.body)
				continue
			}
			if method != http.MethodHead && errorCode(t, a) != contract.CodeNotFound {
				t.Errorf("%s %s: %s", method, path, a.body)
			}
			if strings.Contains(a.body, "BEGIN") {
				t.Errorf("%s %s: a key in a 404", method, path)
			}
		}
	}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, "PROPFIND"} {
		a := f.do(method, pubkey.Path, strings.NewReader(`{"public_key":"mine"}`))
		if a.status != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 405", method, a.status)
			continue
		}
		if errorCode(t, a) != contract.CodeMethodNotAllowed || a.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %s, Allow %q", method, a.body, a.header.Get("Allow"))
		}
		if strings.Contains(a.body, "BEGIN") {
			t.Errorf("%s: the key in a 405", method)
		}
	}
	f.assertNoKeyMaterial(secretParts(t, priv)...)
}

// Until a key is stored the service answers 503 with what to do; it reads
// the store again at most every 30 s however many requests arrive, and
// serves the key once one is there.
func TestNoKeyYet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reads := f.store.Calls(secrets.OpLatest)
	for range 20 {
		a := f.do(http.MethodGet, pubkey.Path, nil)
		if a.status != http.StatusServiceUnavailable || errorCode(t, a) != contract.CodeKeyMissing {
			t.Fatalf("no key: %d %s", a.status, a.body)
		}
		if a.header.Get("Retry-After") != "30" || a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("no key: Retry-After %q, Cache-Control %q", a.header.Get("Retry-After"), a.header.Get("Cache-Control"))
		}
		if !strings.Contains(a.body, "fleetctl keygen") {
			t.Errorf("the answer does not say how to store a key: %s", a.body)
		}
	}
	if n := f.store.Calls(secrets.OpLatest) - reads; n != 0 {
		t.Errorf("20 requests within 30 s read the store %d times, want 0", n)
	}
	if !strings.Contains(f.logs.String(), "no public key to serve") || !strings.Contains(f.logs.String(), secret) {
		t.Errorf("the log does not say which secret has no key:\n%s", f.logs.String())
	}

	priv, pub := newKey(t)
	if _, err := f.store.Add(context.Background(), secret, priv); err != nil {
		t.Fatal(err)
	}
	if a := f.do(http.MethodGet, pubkey.Path, nil); a.status != http.StatusServiceUnavailable {
		t.Errorf("a key stored 0 s ago: %d before the retry interval", a.status)
	}
	f.clock.Advance(31 * time.Second)
	if a := f.do(http.MethodGet, pubkey.Path, nil); a.status != http.StatusOK || a.body != string(pub) {
		t.Errorf("after the retry interval: %d %s", a.status, a.body)
	}
	f.assertNoKeyMaterial(secretParts(t, priv)...)
}

func TestInvalidKey(t *testing.T) {
	t.Parallel()
	// Whatever the secret holds, none of it is quoted: not even a PEM
	// block of the wrong kind.
	const marker = "MARKER-not-a-key-7f3a9"
	rsaLike := []byte("-----BEGIN RSA PRIVATE KEY-----\nTUFSS0VSLXJzYS1ib2R5LTFhMmIzYw==\n-----END RSA PRIVATE KEY-----\n")
	for name, payload := range map[string][]byte{"text": []byte(marker), "wrong block": rsaLike} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, payload)
			a := f.do(http.MethodGet, pubkey.Path, nil)
			if a.status != http.StatusServiceUnavailable || errorCode(t, a) != contract.CodeKeyInvalid {
				t.Fatalf("invalid key: %d %s", a.status, a.body)
			}
			if !strings.Contains(f.logs.String(), "not a PEM P-256 private key") {
				t.Errorf("the log does not say the key is invalid:\n%s", f.logs.String())
			}
			f.assertNoKeyMaterial(marker, "TUFSS0VSLXJzYS1ib2R5LTFhMmIzYw==")
		})
	}
}

// A new key version is served once the old one is due; a store that fails
// for a moment keeps the known key served; a key that is gone stops it.
func TestRefresh(t *testing.T) {
	t.Parallel()
	priv1, pub1 := newKey(t)
	f := newFixture(t, priv1)
	ctx := context.Background()
	get := func() answer { return f.do(http.MethodGet, pubkey.Path, nil) }
	if a := get(); a.body != string(pub1) {
		t.Fatalf("first key: %d %s", a.status, a.body)
	}
	priv2, pub2 := newKey(t)
	if _, err := f.store.Add(ctx, secret, priv2); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(9 * time.Minute)
	if a := get(); a.body != string(pub1) {
		t.Errorf("read again before 10 minutes: %s", a.body)
	}
	f.clock.Advance(time.Minute + time.Second)
	if a := get(); a.body != string(pub2) {
		t.Errorf("a new version is not served after 10 minutes: %s", a.body)
	}

	f.clock.Advance(11 * time.Minute)
	f.store.FailNext(secrets.OpLatest, secrets.ErrUnavailable, 1)
	if a := get(); a.status != http.StatusOK || a.body != string(pub2) {
		t.Errorf("the store unavailable for a moment: %d %s; want the known key", a.status, a.body)
	}
	f.clock.Advance(11 * time.Minute)
	f.store.FailNext(secrets.OpLatest, secrets.ErrPermissionDenied, 1)
	if a := get(); a.status != http.StatusOK || a.body != string(pub2) {
		t.Errorf("permission denied once: %d %s; want the known key", a.status, a.body)
	}
	if !strings.Contains(f.logs.String(), "still serving the one read before") {
		t.Error("a failed re-read is not logged")
	}

	if err := f.store.Destroy(ctx, secret, "2"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(31 * time.Second)
	if a := get(); a.status != http.StatusServiceUnavailable || errorCode(t, a) != contract.CodeKeyMissing {
		t.Errorf("latest version destroyed: %d %s", a.status, a.body)
	}
	f.assertNoKeyMaterial(append(secretParts(t, priv1), secretParts(t, priv2)...)...)
}

func TestStoreUnavailableAtStart(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(start)
	store := secrets.NewMemory(clk)
	priv, pub := newKey(t)
	if _, err := store.Add(context.Background(), secret, priv); err != nil {
		t.Fatal(err)
	}
	store.FailNext(secrets.OpLatest, secrets.ErrUnavailable, 1)
	keys := pubkey.NewKeys(store, pubkey.KeysConfig{Secret: secret, Clock: clk})
	if _, err := keys.Load(context.Background()); err == nil {
		t.Fatal("a failed read reported a key")
	}
	srv := httptest.NewServer(pubkey.NewHandler(pubkey.Deps{Keys: keys}))
	defer srv.Close()
	f := &fixture{t: t, url: srv.URL, logs: &syncBuffer{}}
	if a := f.do(http.MethodGet, pubkey.Path, nil); a.status != http.StatusServiceUnavailable || errorCode(t, a) != contract.CodeStoreUnavailable {
		t.Errorf("store unavailable, no key known: %d %s", a.status, a.body)
	}
	clk.Advance(31 * time.Second)
	if a := f.do(http.MethodGet, pubkey.Path, nil); a.status != http.StatusOK || a.body != string(pub) {
		t.Errorf("store back: %d %s", a.status, a.body)
	}
}

// Many requests at once when the key is due: one read, everyone answered.
func TestConcurrentRequestsReadOnce(t *testing.T) {
	t.Parallel()
	priv, pub := newKey(t)
	f := newFixture(t, priv)
	f.clock.Advance(time.Hour)
	reads := f.store.Calls(secrets.OpLatest)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, f.url+pubkey.Path, nil)
			resp, err := noRedirects.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(b) != string(pub) {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	if n := f.store.Calls(secrets.OpLatest) - reads; n != 1 {
		t.Errorf("50 requests for a due key read the store %d times, want 1", n)
	}
}
