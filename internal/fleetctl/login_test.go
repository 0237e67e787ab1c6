package fleetctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// tokenRecorder sits in front of the simulator's token endpoint and keeps
// the form of each authorization_code request, so the test can check what
// the CLI sent (audience, redirect_uri, client secret).
type tokenRecorder struct {
	mu    sync.Mutex
	forms []url.Values
}

func (h *harness) recordTokenRequests() *tokenRecorder {
	rec := &tokenRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		rec.mu.Lock()
		rec.forms = append(rec.forms, form)
		rec.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		h.sim.Handler().ServeHTTP(w, r)
	}))
	h.t.Cleanup(srv.Close)
	h.vars["TESLA_AUTH_URL"] = srv.URL + "/oauth2/v3/token"
	return rec
}

func (r *tokenRecorder) only(t *testing.T) url.Values {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.forms) != 1 {
		t.Fatalf("token requests = %d, want 1", len(r.forms))
	}
	return r.forms[0]
}

func TestLoginLoopbackEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := h.recordTokenRequests()
	run := h.start("login")

	authURL := run.authorizeURL(t)
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	// The URL's scopes, client id and loopback redirect are in the golden
	// transcript; the state is random and must be 32 bytes of base64url.
	q := u.Query()
	if st := q.Get("state"); len(st) != 43 || strings.ContainsAny(st, "+/=") {
		t.Errorf("state %q is not 32 bytes of base64url", st)
	}
	redirect := q.Get("redirect_uri")

	// The browser: Tesla's authorize page approves and redirects to the
	// CLI's callback, which answers once the tokens are stored.
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "logged in") {
		t.Fatalf("callback page: %d %s", resp.StatusCode, page)
	}
	if code := run.wait(t); code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, run.stderr.String())
	}

	pair, ver := h.latest()
	if ver != "1" || pair.Source != "login" || !h.sim.RefreshTokenAccepted(pair.RefreshToken) {
		t.Errorf("stored v%s source %q accepted=%v", ver, pair.Source, h.sim.RefreshTokenAccepted(pair.RefreshToken))
	}
	if want := h.clock.Now().Add(fleetsim.DefaultAccessTokenTTL); !pair.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %s, want %s (expires_in on the clock)", pair.ExpiresAt, want)
	}
	if n := h.sim.TokenExchanges(fleetsim.OutcomeAuthCodeOK); n != 1 {
		t.Errorf("auth code exchanges = %d, want 1", n)
	}
	form := rec.only(t)
	if form.Get("grant_type") != "authorization_code" || form.Get("audience") != h.url ||
		form.Get("redirect_uri") != redirect || form.Get("client_secret") != fleetsim.DefaultClientSecret {
		t.Errorf("token request: grant %q audience %q redirect %q secret sent %v",
			form.Get("grant_type"), form.Get("audience"), form.Get("redirect_uri"), form.Get("client_secret") != "")
	}
	out := run.stdout.String()
	tr := h.transcript(t)
	tr.ran(run, ExitOK)
	tr.note("the browser's page after the redirect: %s", strings.TrimSpace(string(page)))
	tr.check("login")
	noLeak(t, append(h.storedTokens(), form.Get("code")), out, run.stderr.String(), string(page))
}

// pasteLogin runs `login --paste`, plays the browser up to Tesla's redirect
// and pastes what edit makes of the redirect URL.
func pasteLogin(t *testing.T, h *harness, edit func(*url.URL) string, extra ...string) (*running, int) {
	t.Helper()
	run := h.start(append([]string{"login", "--paste", "--redirect-uri", "https://app.example.com/tesla/callback"}, extra...)...)
	resp, err := noRedirects.Get(run.authorizeURL(t))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("authorize: %d %v", resp.StatusCode, err)
	}
	if _, err := io.WriteString(run.stdin, edit(loc)+"\n"); err != nil {
		t.Fatal(err)
	}
	return run, run.wait(t)
}

func TestLoginPaste(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*url.URL) string
	}{
		{"redirect URL", func(u *url.URL) string { return u.String() }},
		{"bare code", func(u *url.URL) string { return u.Query().Get("code") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			var code string
			run, exit := pasteLogin(t, h, func(u *url.URL) string { code = u.Query().Get("code"); return tc.edit(u) }, "--json")
			if exit != ExitOK {
				t.Fatalf("exit %d; stderr:\n%s", exit, run.stderr.String())
			}
			var res loginResult
			if err := json.Unmarshal([]byte(run.stdout.String()), &res); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, run.stdout.String())
			}
			if !res.OK || res.Version != "1" || res.Region != "EU" || res.RedirectURI != "https://app.example.com/tesla/callback" || len(res.MissingScopes) != 0 {
				t.Errorf("result = %+v", res)
			}
			pair, _ := h.latest()
			if pair.Source != "login" || !h.sim.RefreshTokenAccepted(pair.RefreshToken) {
				t.Errorf("stored pair source %q accepted=%v", pair.Source, h.sim.RefreshTokenAccepted(pair.RefreshToken))
			}
			noLeak(t, append(h.storedTokens(), code), run.stdout.String(), run.stderr.String())
		})
	}
}

func TestLoginWrongStateWritesNothing(t *testing.T) {
	t.Parallel()
	t.Run("loopback", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		run := h.start("login")
		authURL := run.authorizeURL(t)
		u, _ := url.Parse(authURL)
		q := u.Query()
		q.Set("state", "forged-"+q.Get("state")[:10])
		u.RawQuery = q.Encode()
		resp, err := http.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "state does not match") {
			t.Errorf("callback answered %d %q, want 400 explaining the mismatch", resp.StatusCode, body)
		}
		assertNothingStored(t, h)
		// The forged redirect did not end the login: the real one still works.
		resp, err = http.Get(authURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if code := run.wait(t); code != ExitOK {
			t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitOK, run.stderr.String())
		}
	})
	t.Run("paste", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		run, exit := pasteLogin(t, h, func(u *url.URL) string {
			q := u.Query()
			q.Set("state", "not-the-state")
			u.RawQuery = q.Encode()
			return u.String()
		})
		if exit != ExitFailure {
			t.Fatalf("exit %d, want %d", exit, ExitFailure)
		}
		assertNothingStored(t, h)
		tr := h.transcript(t)
		tr.note("pasted: the redirect URL with another state")
		tr.ran(run, exit)
		tr.check("login_paste_wrong_state")
	})
}

func assertNothingStored(t *testing.T, h *harness) {
	t.Helper()
	if _, err := h.store.Latest(context.Background(), "fleet-tokens"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("fleet-tokens: err = %v, want not found", err)
	}
	if n := h.sim.TokenExchanges(fleetsim.OutcomeAuthCodeOK); n != 0 {
		t.Errorf("auth code exchanges = %d, want 0", n)
	}
}

// A login takes the manager's writer lease: while a worker holds it the
// code is not exchanged (which would start a new chain under the worker's
// feet), and after the wait nothing has changed.
func TestLoginWaitsForTheWorkersLease(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.runner.ManagerConfig = func(c *tokens.Config) { c.LeaseWait = 100 * time.Millisecond }
	lease, err := h.store.TryLease(context.Background(), "fleet-tokens", "worker", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(context.Background())
	run, exit := pasteLogin(t, h, func(u *url.URL) string { return u.String() })
	if exit != ExitFailure {
		t.Fatalf("exit %d, want %d; stderr:\n%s", exit, ExitFailure, run.stderr.String())
	}
	assertNothingStored(t, h)
	tr := h.transcript(t)
	tr.note("a worker holds the lease on fleet-tokens")
	tr.ran(run, exit)
	tr.check("login_waits_for_the_lease")
}

func TestLoginDeniedAndUsage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tr := h.transcript(t)
	run, exit := pasteLogin(t, h, func(u *url.URL) string {
		return "https://app.example.com/tesla/callback?error=access_denied&error_description=user+cancelled"
	})
	tr.note("pasted: Tesla's redirect after the owner said no")
	tr.ran(run, exit)
	if exit != ExitFailure {
		t.Errorf("exit %d, want %d", exit, ExitFailure)
	}
	assertNothingStored(t, h)

	if code, _, _ := tr.run("", "login", "--paste"); code != ExitUsage {
		t.Errorf("--paste without a redirect URI: exit %d, want %d", code, ExitUsage)
	}
	if code, _, _ := tr.run("", "login", "--redirect-uri", "not a url"); code != ExitUsage {
		t.Errorf("bad --redirect-uri: exit %d, want %d", code, ExitUsage)
	}
	tr.check("login_denied_and_usage")
}

func TestLoginNeedsClientSecret(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.vars["TESLA_CLIENT_SECRET_SECRET"] = "no-such-secret"
	tr := h.transcript(t)
	tr.note("TESLA_CLIENT_SECRET_SECRET=no-such-secret")
	if code, _, _ := tr.run("", "login", "--paste", "--redirect-uri", "https://app.example.com/cb"); code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	tr.check("login_needs_client_secret")
}

// --open hands the URL to the browser opener (here: a test browser that
// follows it); --no-browser wins over --open.
func TestLoginOpen(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	opened := make(chan string, 1)
	h.runner.OpenBrowser = func(u string) error {
		opened <- u
		go func() {
			if resp, err := http.Get(u); err == nil {
				resp.Body.Close()
			}
		}()
		return nil
	}
	run := h.start("login", "--open")
	printed := run.authorizeURL(t)
	if code := run.wait(t); code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, run.stderr.String())
	}
	if got := <-opened; got != printed {
		t.Errorf("opened %q, printed %q", got, printed)
	}

	h.runner.OpenBrowser = func(string) error { t.Error("--no-browser opened a browser"); return nil }
	run = h.start("login", "--open", "--no-browser")
	resp, err := http.Get(run.authorizeURL(t))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code := run.wait(t); code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, run.stderr.String())
	}
	if _, ver := h.latest(); ver != "2" {
		t.Errorf("latest version %s, want 2 (two logins)", ver)
	}
}

// A registered loopback redirect URI (localhost with a fixed port) is
// listened on as given, on the path it names.
func TestLoginRegisteredLoopbackRedirect(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // find a free port
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	redirect := fmt.Sprintf("http://localhost:%d/tesla/done", port)
	run := h.start("login", "--redirect-uri", redirect)
	u, _ := url.Parse(run.authorizeURL(t))
	if got := u.Query().Get("redirect_uri"); got != redirect {
		t.Errorf("redirect_uri = %q, want %q", got, redirect)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code := run.wait(t); code != ExitOK || resp.StatusCode != http.StatusOK {
		t.Fatalf("exit %d, callback %d; stderr:\n%s", code, resp.StatusCode, run.stderr.String())
	}
	if pair, _ := h.latest(); pair.Source != "login" {
		t.Errorf("source %q", pair.Source)
	}
}

// The authorize URL asks for PKCE S256 and full consent; the sim checks the
// verifier at the exchange (a login without it would fail there).
func TestLoginUsesPKCEAndFullConsent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	run := h.start("login", "--paste", "--redirect-uri", "https://app.example.com/tesla/callback")
	authURL := run.authorizeURL(t)
	u, _ := url.Parse(authURL)
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 ||
		q.Get("prompt_missing_scopes") != "true" || q.Get("require_requested_scopes") != "true" {
		t.Errorf("authorize URL lacks PKCE or consent parameters: %s", authURL)
	}
	resp, err := noRedirects.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if _, err := io.WriteString(run.stdin, loc.String()+"\n"); err != nil {
		t.Fatal(err)
	}
	if code := run.wait(t); code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, run.stderr.String())
	}
}

// The owner unticks a scope on Tesla's consent page: the login fails at
// once, naming it, and nothing is stored.
func TestLoginWithAMissingScopeFailsAndStoresNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	run := h.start("login", "--paste", "--redirect-uri", "https://app.example.com/tesla/callback")
	u, _ := url.Parse(run.authorizeURL(t))
	q := u.Query()
	q.Set("scope", "openid offline_access user_data vehicle_device_data vehicle_cmds vehicle_charging_cmds") // no vehicle_location
	u.RawQuery = q.Encode()
	resp, err := noRedirects.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if _, err := io.WriteString(run.stdin, loc.String()+"\n"); err != nil {
		t.Fatal(err)
	}
	code := run.wait(t)
	if code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	tr := h.transcript(t)
	tr.note("the owner unticked vehicle_location on Tesla's consent page")
	tr.ran(run, code)
	tr.check("login_missing_scope")
	if _, err := h.store.Latest(context.Background(), "fleet-tokens"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("fleet-tokens: err = %v, want nothing stored", err)
	}
}

// Another program holding one of localhost's addresses would receive the
// browser's redirect and its code: the login refuses to start.
func TestLoginRefusesAPartlyTakenLocalhost(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// ::1 taken, 127.0.0.1 free: listening on the free one alone is the hole.
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	tr := h.transcript(t)
	tr.name(fmt.Sprintf(":%d", port), ":PORT")
	tr.note("another program listens on [::1]:PORT")
	if code, _, _ := tr.run("", "login", "--redirect-uri", fmt.Sprintf("http://localhost:%d/callback", port), "--timeout", "2s"); code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	tr.check("login_refuses_a_partly_taken_localhost")
}

func TestRedirectTextIsStrippedOfControlCharacters(t *testing.T) {
	t.Parallel()
	q := url.Values{"error": {"access_denied\x1b[2J"}, "error_description": {"bye\x1b]0;pwned\x07\r\nnow"}}
	_, err := codeFromQuery(q, "s")
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\x07\r\n") || !strings.Contains(err.Error(), "access_denied") {
		t.Fatalf("err = %q", err)
	}
}
