package fleetctl

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

type loginOptions struct {
	redirectURI string
	paste       bool
	open        bool
	noBrowser   bool
	timeout     time.Duration
}

func loginCommand() *command {
	return &command{
		name:    "login",
		summary: "log in to Tesla in a browser and store the first pair of a new token chain",
		help: `The authorization-code flow. fleetctl prints Tesla's authorize URL (with the
scopes this project needs and a random state); you open it, sign in and
approve. Tesla redirects the browser to the redirect URI with a code:
  - by default fleetctl listens on a loopback port and the redirect URI is
    http://127.0.0.1:<port>/callback;
  - with --redirect-uri http://localhost:8765/callback (a URI registered with
    your Tesla app) it listens there;
  - with --paste, or a redirect URI that is not on this machine, paste the
    URL the browser lands on (or the bare code) on stdin.
The state is checked, the code exchanged (client id and secret from the
secret store, audience = TESLA_FLEET_API_URL), and the pair written as a new
version of fleet-tokens under the worker's lease. A login starts a new
Tesla token chain: older refresh tokens stop working.
Instructions go to stderr; the result to stdout.`,
		flags: func(fs *flag.FlagSet) any {
			o := &loginOptions{}
			fs.StringVar(&o.redirectURI, "redirect-uri", "", "redirect URI registered with the Tesla app (env TESLA_REDIRECT_URI; default a loopback listener's http://127.0.0.1:<port>/callback)")
			fs.BoolVar(&o.paste, "paste", false, "read the redirect URL or the code from stdin instead of listening")
			fs.BoolVar(&o.open, "open", false, "open the authorize URL with xdg-open / open")
			fs.BoolVar(&o.noBrowser, "no-browser", false, "only print the authorize URL (overrides --open)")
			fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the browser or the pasted URL")
			return o
		},
		run: runLogin,
	}
}

// loginResult is what a login stored; it carries no token.
type loginResult struct {
	OK            bool       `json:"ok"`
	Secret        string     `json:"secret"`
	Version       string     `json:"version"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Scopes        []string   `json:"scopes"`
	MissingScopes []string   `json:"missing_scopes,omitempty"`
	Region        string     `json:"region,omitempty"`
	Subject       string     `json:"subject,omitempty"`
	RedirectURI   string     `json:"redirect_uri"`
}

// errStateMismatch: the redirect's state is not the one this login sent —
// a stale browser tab or a forged redirect. Nothing is exchanged.
var errStateMismatch = errors.New("the redirect's state does not match this login's: nothing was exchanged or stored (start fleetctl login again and use the URL it prints)")

func runLogin(ctx context.Context, s *session, opts any) error {
	o := opts.(*loginOptions)
	listenAt, err := o.resolve(s)
	if err != nil {
		return err
	}
	store, err := s.openStore(ctx)
	if err != nil {
		return err
	}
	mcfg := s.manager(store, s.managerConfig()).Config() // the manager's defaults: lease TTL and wait, secret names
	client, err := readClient(ctx, store, mcfg)
	if err != nil {
		return err
	}
	state, err := newState()
	if err != nil {
		return err
	}

	redirect := o.redirectURI
	var cb *callback
	if !o.paste {
		cb, err = listenCallback(listenAt, state)
		if err != nil {
			return err
		}
		defer cb.close()
		redirect = cb.redirect
	}
	ex := s.exchanger()
	verifier := tokens.NewVerifier()
	s.showAuthorizeURL(ex.AuthCodeURL(client, redirect, state, verifier), o)

	code, err := s.awaitCode(ctx, o, cb, redirect, state)
	if err != nil {
		cb.finish(false, "fleetctl: the login failed: "+err.Error())
		return err
	}
	res, err := s.storeLogin(ctx, store, mcfg, client, ex, code, redirect, verifier)
	if err != nil {
		cb.finish(false, "fleetctl: the login failed: "+err.Error())
		return err
	}
	cb.finish(true, fmt.Sprintf("fleetctl: logged in; the tokens are stored as version %s of %s. You can close this tab.", res.Version, res.Secret))
	s.printLogin(res)
	return nil
}

// resolve checks the options and decides how the code arrives: on a
// loopback listener (at the returned URL; nil = a port of its own) or
// pasted (o.paste, also chosen for a redirect URI this machine cannot
// receive).
func (o *loginOptions) resolve(s *session) (listenAt *url.URL, err error) {
	if o.redirectURI == "" {
		o.redirectURI = s.cfg.Command.RedirectURI
	}
	if o.timeout <= 0 {
		return nil, usageError{errors.New("--timeout must be positive")}
	}
	if o.redirectURI == "" {
		if o.paste {
			return nil, usageError{errors.New("--paste needs --redirect-uri (or TESLA_REDIRECT_URI): the redirect URI registered with your Tesla app")}
		}
		return nil, nil
	}
	u, err := url.Parse(o.redirectURI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError{fmt.Errorf("--redirect-uri: %q is not an http(s) URL", o.redirectURI)}
	}
	if !o.paste && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		s.notef("The redirect URI %s is not a plain-http loopback address, so fleetctl cannot receive it: paste it instead.", o.redirectURI)
		o.paste = true
	}
	if o.paste {
		return nil, nil
	}
	return u, nil
}

// showAuthorizeURL prints the URL the operator opens, and opens it with
// --open.
func (s *session) showAuthorizeURL(authURL string, o *loginOptions) {
	s.notef("Open this URL in a browser, sign in to Tesla and approve the access:\n\n  %s\n", authURL)
	if !o.open || o.noBrowser {
		return
	}
	open := s.runner.OpenBrowser
	if open == nil {
		open = openBrowser
	}
	if err := open(authURL); err != nil {
		s.notef("Could not open a browser (%v); open the URL yourself.", err)
	}
}

// awaitCode waits, at most --timeout, for the code: pasted on stdin or
// brought by the browser to the callback.
func (s *session) awaitCode(ctx context.Context, o *loginOptions, cb *callback, redirect, state string) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if o.paste {
		s.notef("Then paste the URL your browser was sent to (it starts with %s), or just the code, and press Enter:", redirect)
		return readPasted(wctx, s.stdin, state)
	}
	s.notef("Waiting for Tesla to send the browser to %s …", redirect)
	return cb.wait(wctx)
}

// printLogin reports what the login stored.
func (s *session) printLogin(res loginResult) {
	if s.json {
		s.printJSON(res)
		return
	}
	now := s.clock.Now()
	s.printf("logged in: stored %s version %s", res.Secret, res.Version)
	if res.ExpiresAt != nil {
		s.printf("expires %s (%s)", stamp(*res.ExpiresAt), relative(*res.ExpiresAt, now))
	}
	s.printf("scopes: %s", joinOr(res.Scopes, "unknown"))
	if len(res.MissingScopes) > 0 {
		s.printf("warning: Tesla did not grant %s; log in again and approve every scope", strings.Join(res.MissingScopes, " "))
	}
	s.printf("region: %s", orUnknown(res.Region))
	s.printf("subject: %s", orUnknown(res.Subject))
}

// readClient reads the app's client registration. The authorization-code
// grant needs the client secret, unlike a refresh.
func readClient(ctx context.Context, store secrets.Store, mcfg tokens.Config) (tokens.Client, error) {
	read := func(name string) (string, error) {
		v, err := store.Latest(ctx, name)
		if errors.Is(err, secrets.ErrNotFound) {
			return "", fmt.Errorf("%w: secret %s does not exist: store your Tesla app's value in it first", tokens.ErrMisconfigured, name)
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", name, err)
		}
		value := strings.TrimSpace(string(v.Payload))
		if value == "" {
			return "", fmt.Errorf("%w: secret %s is empty", tokens.ErrMisconfigured, name)
		}
		return value, nil
	}
	id, err := read(mcfg.ClientIDSecret)
	if err != nil {
		return tokens.Client{}, err
	}
	secret, err := read(mcfg.ClientSecretSecret)
	if err != nil {
		return tokens.Client{}, err
	}
	return tokens.Client{ID: id, Secret: secret}, nil
}

// newState is 32 random bytes, base64url: the CSRF guard of the redirect.
func newState() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random state: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func stateMatches(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// storeLogin exchanges the code and stores the pair through the token
// manager, which takes the writer lease first (a login cycles out the token a
// worker may be refreshing with) and retries the write as it does for a
// refresh.
func (s *session) storeLogin(ctx context.Context, store secrets.Store, mcfg tokens.Config, client tokens.Client, ex *tokens.Exchanger, code, redirect, verifier string) (loginResult, error) {
	m := s.manager(store, mcfg)
	res, err := m.Login(ctx, func(ctx context.Context) (tokens.Issued, error) {
		iss, err := ex.ExchangeCode(ctx, client, code, redirect, s.cfg.TeslaFleetAPIURL, verifier)
		if err != nil {
			return tokens.Issued{}, fmt.Errorf("exchange the code: %w", err)
		}
		if missing := missingLoginScopes(iss); len(missing) > 0 {
			return tokens.Issued{}, fmt.Errorf("%w: Tesla did not grant %s, which this system needs; nothing was stored. "+
				"Check the scopes of your app at developer.tesla.com, then log in again and approve every scope "+
				"(or revoke the consent at https://auth.tesla.com/user/revoke/consent?revoke_client_id=%s first)",
				errMissingScopes, strings.Join(missing, ", "), url.QueryEscape(client.ID))
		}
		return iss, nil
	})
	if errors.Is(err, tokens.ErrBusy) {
		return loginResult{}, fmt.Errorf("%w: nothing was exchanged, start the login again", err)
	}
	if err != nil {
		return loginResult{}, err
	}
	pair, _ := m.Current()
	cv := viewPair(pair)
	return loginResult{
		OK: true, Secret: mcfg.FleetSecret, Version: res.Version, ExpiresAt: timePtr(res.ExpiresAt),
		Scopes: nonNil(cv.Scopes), MissingScopes: missingScopes(tokens.Scopes, cv.Scopes),
		Region: cv.Region, Subject: cv.Subject, RedirectURI: redirect,
	}, nil
}

// errMissingScopes: the login was approved without a scope the system needs.
var errMissingScopes = errors.New("missing scopes")

// missingLoginScopes lists what the worker and scout cannot do without:
// the refresh token (offline_access), reading the car and its location, and
// charging commands (vehicle_charging_cmds, or the wider vehicle_cmds). The
// token's own scp claim decides; the answer's scope field only when the
// token carries none.
func missingLoginScopes(iss tokens.Issued) []string {
	granted := strings.Fields(iss.Scope)
	if c, err := tokens.ParseClaims(iss.AccessToken); err == nil && len(c.Scopes) > 0 {
		granted = c.Scopes
	}
	missing := missingScopes([]string{"offline_access", "vehicle_device_data", "vehicle_location"}, granted)
	if len(missingScopes([]string{"vehicle_charging_cmds"}, granted)) > 0 && len(missingScopes([]string{"vehicle_cmds"}, granted)) > 0 {
		missing = append(missing, "vehicle_charging_cmds (or vehicle_cmds)")
	}
	return missing
}

// readPasted reads one line from stdin: a redirect URL (its state must
// match) or a bare code (there is no state to check; the operator copied it
// from their own browser).
func readPasted(ctx context.Context, stdin io.Reader, state string) (string, error) {
	lines := make(chan string, 1)
	errs := make(chan error, 1)
	go func() {
		r := bufio.NewReader(stdin)
		for {
			line, err := r.ReadString('\n')
			if line = strings.TrimSpace(line); line != "" {
				lines <- line
				return
			}
			if err != nil {
				errs <- errors.New("nothing was pasted (stdin ended)")
				return
			}
		}
	}()
	var line string
	select {
	case line = <-lines:
	case err := <-errs:
		return "", err
	case <-ctx.Done():
		return "", fmt.Errorf("no URL or code was pasted in time: %w", ctx.Err())
	}
	if !strings.Contains(line, "code=") && !strings.Contains(line, "error=") {
		if strings.ContainsAny(line, " \t/?&=") {
			return "", errors.New("the pasted text is neither a redirect URL nor a code")
		}
		return line, nil
	}
	u, err := url.Parse(line)
	if err != nil {
		return "", errors.New("the pasted redirect URL does not parse")
	}
	return codeFromQuery(u.Query(), state)
}

// codeFromQuery checks a redirect's query and returns its code. Tesla's
// error and error_description are shown; the code never is.
func codeFromQuery(q url.Values, state string) (string, error) {
	if e := q.Get("error"); e != "" {
		msg := "Tesla did not authorize: " + printable(e)
		if d := q.Get("error_description"); d != "" {
			msg += ": " + printable(d)
		}
		return "", errors.New(msg)
	}
	if !stateMatches(q.Get("state"), state) {
		return "", errStateMismatch
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("the redirect carries no code")
	}
	return code, nil
}

// printable drops control characters (terminal escapes among them) from
// text a redirect carries, before it reaches the operator's terminal, and
// bounds its length.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}

// callback receives Tesla's redirect on a loopback listener. The first
// request to the redirect path decides the login; the browser gets its
// answer once the tokens are stored (or the login failed).
type callback struct {
	redirect string
	path     string
	state    string
	srv      *http.Server
	results  chan callbackResult

	mu      sync.Mutex
	taken   bool
	done    chan struct{}
	ok      bool
	message string
	once    sync.Once
}

type callbackResult struct {
	code string
	err  error
}

func listenCallback(at *url.URL, state string) (*callback, error) {
	addrs, path := []string{"127.0.0.1:0"}, "/callback"
	if at != nil {
		port := at.Port()
		if port == "" {
			port = "80"
		}
		addrs = []string{net.JoinHostPort(at.Hostname(), port)}
		if at.Hostname() == "localhost" {
			// A browser may resolve localhost to ::1 or to 127.0.0.1: listen on both.
			addrs = []string{net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("::1", port)}
		}
		path = at.Path
		if path == "" {
			path = "/"
		}
	}
	var lns []net.Listener
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			// Another process holding one of localhost's addresses would get
			// the browser's redirect, and with it the code: refuse to start.
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("listen for the redirect on %s: %w (another program may be listening there: stop it, or use another --redirect-uri)", addr, err)
		}
		lns = append(lns, ln)
	}
	c := &callback{path: path, state: state, results: make(chan callbackResult, 1), done: make(chan struct{})}
	if at != nil {
		c.redirect = at.String()
	} else {
		c.redirect = "http://" + lns[0].Addr().String() + path
	}
	c.srv = &http.Server{Handler: http.HandlerFunc(c.serve), ReadHeaderTimeout: 10 * time.Second}
	for _, ln := range lns {
		go func() { _ = c.srv.Serve(ln) }()
	}
	return c, nil
}

func (c *callback) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != c.path {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if q.Get("code") == "" && q.Get("error") == "" && q.Get("state") == "" {
		http.Error(w, "fleetctl: this is not a Tesla redirect", http.StatusBadRequest)
		return
	}
	// A redirect with another state (a stale tab, a forged link) is
	// refused and does not end the login: the real one may still come.
	if !stateMatches(q.Get("state"), c.state) {
		http.Error(w, "fleetctl: "+errStateMismatch.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	taken := c.taken
	c.taken = true
	c.mu.Unlock()
	if taken {
		http.Error(w, "fleetctl: this login already received its redirect", http.StatusConflict)
		return
	}
	code, err := codeFromQuery(q, c.state)
	c.results <- callbackResult{code: code, err: err}
	select {
	case <-c.done:
	case <-r.Context().Done():
		return
	}
	status := http.StatusOK
	if !c.ok {
		status = http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>fleetctl login</title><p>%s</p>\n", html.EscapeString(c.message))
}

func (c *callback) wait(ctx context.Context) (string, error) {
	select {
	case res := <-c.results:
		return res.code, res.err
	case <-ctx.Done():
		return "", fmt.Errorf("no redirect arrived at %s in time (--timeout): %w", c.redirect, ctx.Err())
	}
}

// finish gives the browser its answer; safe on a nil callback (paste mode).
func (c *callback) finish(ok bool, message string) {
	if c == nil {
		return
	}
	c.once.Do(func() {
		c.ok, c.message = ok, message
		close(c.done)
	})
}

func (c *callback) close() {
	c.finish(false, "fleetctl: the login was abandoned")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.srv.Shutdown(ctx); err != nil {
		_ = c.srv.Close()
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// openBrowser starts the platform's URL opener and does not wait for it.
func openBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
