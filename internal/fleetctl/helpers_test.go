package fleetctl

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

var start = time.Date(2026, 7, 21, 10, 0, 0, 0, time.UTC)

// harness is one fleetctl installation: the simulator on loopback, a file
// secret store in a temp dir (the same directory the CLI opens), and a
// manual clock shared by all three.
type harness struct {
	t      *testing.T
	sim    *fleetsim.Sim
	url    string
	clock  *clock.Manual
	dir    string
	store  *secrets.File
	vars   map[string]string
	runner Runner
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, fleetsim.Options{})
}

// newHarnessWith is newHarness with the simulator's options (its clock is
// always the harness's).
func newHarnessWith(t *testing.T, opts fleetsim.Options) *harness {
	t.Helper()
	clk := clock.NewManual(start)
	opts.Clock = clk
	sim := fleetsim.New(opts)
	u, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	dir := filepath.Join(t.TempDir(), "secrets") // made by the store: 0700, as doctor wants
	store, err := secrets.NewFile(dir, clk)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, sim: sim, url: u, clock: clk, dir: dir, store: store,
		vars: map[string]string{
			"SECRETS_BACKEND":     "file",
			"SECRETS_DIR":         dir,
			"TESLA_AUTH_URL":      u + "/oauth2/v3/token",
			"TESLA_AUTHORIZE_URL": u + "/oauth2/v3/authorize",
			"TESLA_FLEET_API_URL": u,
		},
		runner: Runner{
			Clock: clk,
			ManagerConfig: func(c *tokens.Config) {
				c.LeaseWait = 2 * time.Second
				c.RetryBase = time.Millisecond
				c.PersistBudget = time.Second
			},
			OpenBrowser: func(string) error {
				t.Error("a test must never open a browser")
				return nil
			},
		},
	}
	h.put("tesla-client-id", fleetsim.DefaultClientID)
	h.put("tesla-client-secret", fleetsim.DefaultClientSecret)
	return h
}

// env is the harness's environment, as fleetctl reads it.
func (h *harness) env() envconfig.Lookuper { return envconfig.MapLookuper(h.vars) }

func (h *harness) put(secret, value string) string {
	h.t.Helper()
	id, err := h.store.Add(context.Background(), secret, []byte(value))
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

// seedLogin stores the first pair of a new chain, as a login would.
func (h *harness) seedLogin() tokens.Pair {
	h.t.Helper()
	return h.seedLoginWithScope(fleetsim.DefaultScope)
}

// seedLoginWithScope stores a login in which the owner approved only scope.
func (h *harness) seedLoginWithScope(scope string) tokens.Pair {
	h.t.Helper()
	p := h.sim.LoginWithScope(scope)
	now := h.clock.Now()
	pair := tokens.Pair{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken,
		ExpiresAt: now.Add(time.Duration(p.ExpiresIn) * time.Second), RefreshTokenCreatedAt: now,
		UpdatedAt: now, Source: "login", TokenType: "Bearer", Scope: p.Scope}
	payload, err := pair.Marshal()
	if err != nil {
		h.t.Fatal(err)
	}
	h.put("fleet-tokens", string(payload))
	return pair
}

// latest reads the stored pair.
func (h *harness) latest() (tokens.Pair, string) {
	h.t.Helper()
	v, err := h.store.Latest(context.Background(), "fleet-tokens")
	if err != nil {
		h.t.Fatalf("read fleet-tokens: %v", err)
	}
	p, err := tokens.ParsePair(v.Payload)
	if err != nil {
		h.t.Fatalf("parse fleet-tokens v%s: %v", v.ID, err)
	}
	return p, v.ID
}

// storedTokens lists every token value ever stored, for leak checks.
func (h *harness) storedTokens() []string {
	h.t.Helper()
	ctx := context.Background()
	var out []string
	versions, _ := h.store.Versions(ctx, "fleet-tokens")
	for _, v := range versions {
		sv, err := h.store.Get(ctx, "fleet-tokens", v.ID)
		if err != nil {
			continue
		}
		p, _ := tokens.ParsePair(sv.Payload)
		out = append(out, p.AccessToken, p.RefreshToken)
	}
	if lv, err := h.store.Latest(ctx, "tesla-refresh-token"); err == nil {
		out = append(out, strings.TrimSpace(string(lv.Payload)))
	}
	return out
}

// run runs fleetctl to completion.
func (h *harness) run(stdin string, args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code = h.runner.Run(ctx, args, h.env(), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// noLeak fails if any value appears in any of the outputs.
func noLeak(t *testing.T, values []string, outputs ...string) {
	t.Helper()
	for _, v := range values {
		if len(v) < 8 {
			continue
		}
		for _, o := range outputs {
			if strings.Contains(o, v) {
				t.Fatalf("output contains a token or code (%d chars): %q", len(v), o)
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
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

// running is fleetctl running in the background, the way an operator's
// terminal sees it: the test reads the prompts from stderr as they come
// and can type on stdin.
type running struct {
	args    []string
	stdout  *syncBuffer
	stderr  *syncBuffer
	stdin   *io.PipeWriter
	authURL chan string
	done    chan int
}

func (h *harness) start(args ...string) *running {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	h.t.Cleanup(cancel)
	inR, inW := io.Pipe()
	errR, errW := io.Pipe()
	r := &running{args: args, stdout: &syncBuffer{}, stderr: &syncBuffer{}, stdin: inW, authURL: make(chan string, 1), done: make(chan int, 1)}
	prefix := h.url + "/oauth2/v3/authorize?"
	copied := make(chan struct{}) // stderr is all in r.stderr
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(errR)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = r.stderr.Write([]byte(line + "\n"))
			if l := strings.TrimSpace(line); strings.HasPrefix(l, prefix) {
				select {
				case r.authURL <- l:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, errR)
	}()
	go func() {
		code := h.runner.Run(ctx, args, h.env(), inR, r.stdout, errW)
		_ = errW.Close()
		_ = inR.Close()
		<-copied // the exit code only once its last stderr line is readable
		r.done <- code
	}()
	return r
}

// authorizeURL waits for the URL the CLI prints.
func (r *running) authorizeURL(t *testing.T) string {
	t.Helper()
	select {
	case u := <-r.authURL:
		return u
	case code := <-r.done:
		t.Fatalf("fleetctl exited with %d before printing the authorize URL; stderr:\n%s", code, r.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("no authorize URL printed; stderr:\n%s", r.stderr.String())
	}
	return ""
}

// wait returns the exit code.
func (r *running) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		return code
	case <-time.After(25 * time.Second):
		t.Fatalf("fleetctl did not exit; stderr:\n%s", r.stderr.String())
	}
	return -1
}

// noRedirects is a browser that stops at Tesla's 302, so the test can
// look at (or paste) where it points.
var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}
