package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/devstack"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/tokens"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

// The rig is the system assembled for breaking: the simulator on a manual
// clock, any number of worker instances (each the real worker.App behind its
// own HTTP server) sharing one secret store and one state store, as Cloud
// Run instances share Secret Manager and Cloud Storage, and the real scout
// calling them through a gate that plays the network (and the load balancer
// during a deploy). Every secret-store call goes through flakyStore (outages
// on the simulated clock) and, per instance, instanceStore (a crash).
//
// devstack is the same system with file stores and production timings; the
// rig swaps in memory stores and short real-time waits (lease wait, store
// retry budget) so a fault costs milliseconds, not the 30 s a real instance
// would spend retrying.

const (
	bearer = "faults-suite-shared-token-0000001"
	vin    = devstack.VIN
)

// t0 is a Tuesday, 06:00 in Warsaw.
var t0 = devstack.StoryStart

type rigOptions struct {
	start time.Time
	// upstreamTimeout bounds the worker's calls to Tesla (token endpoint,
	// Fleet API, commands); default 2 s.
	upstreamTimeout time.Duration
	quiet           bool // no logs at all (the simulated year)
	env             map[string]string
	revokeOnRotate  bool // a refresh revokes the access tokens issued before it
	clientLeases    bool // each instance judges the lease on its own clock, as with Secret Manager
}

type rig struct {
	t      testing.TB
	ctx    context.Context
	opts   rigOptions
	clock  *clock.Manual
	sim    *fleetsim.Sim
	simURL string
	mem    *secrets.Memory
	store  *flakyStore
	wstate state.Store // shared by every worker instance (one bucket)
	sstate state.Store // the scout's
	gate   *gate
	scout  *scout.App
	wcfg   worker.Config
	scfg   scout.Config
	logs   *syncBuffer
	logger *zap.Logger

	mu        sync.Mutex
	instances []*instance
	nextID    int
	nextSkew  time.Duration // the next startWorker's clock error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newRig(t testing.TB, opts rigOptions) *rig {
	t.Helper()
	if opts.start.IsZero() {
		opts.start = t0
	}
	if opts.upstreamTimeout <= 0 {
		opts.upstreamTimeout = 2 * time.Second
	}
	r := &rig{t: t, ctx: context.Background(), opts: opts, clock: clock.NewManual(opts.start), logs: &syncBuffer{}}
	r.logger = zap.NewNop()
	if !opts.quiet {
		r.logger = logging.New(logging.Options{Format: logging.FormatJSON, Output: r.logs, Level: zap.InfoLevel})
	}
	r.sim = fleetsim.New(fleetsim.Options{Clock: r.clock, RevokeAccessOnRotate: opts.revokeOnRotate,
		WakeDelay: -1}) // the clock stands still inside a tick: a woken car is online at the next request
	var err error
	if r.simURL, err = r.sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.sim.Close() })
	r.sim.AddCar(fleetsim.CarState{VIN: vin, State: fleetsim.StateOnline, Latitude: devstack.Home.Lat, Longitude: devstack.Home.Lon,
		BatteryLevel: 64, ChargingState: fleetsim.ChargingDisconnected, ConnChargeCable: fleetsim.CableUnplugged, ChargeLimitSOC: 80})

	r.mem = secrets.NewMemory(r.clock)
	// The owner's command key, paired with the car: every command is signed
	// and verified by the simulated car.
	key, keyPEM, err := carcmd.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.mem.Add(r.ctx, "tesla-private-key", keyPEM); err != nil {
		t.Fatal(err)
	}
	if err := r.sim.PairKey(vin, key.Public); err != nil {
		t.Fatal(err)
	}
	r.store = &flakyStore{inner: r.mem, clock: r.clock}
	r.wstate = state.NewMemory()
	r.sstate = state.NewMemory()
	r.gate = newGate(t)

	env := map[string]string{
		"SECRETS_BACKEND": "file", "SECRETS_DIR": t.TempDir(), // unused: the rig passes its stores
		"STATE_BACKEND": "file", "STATE_DIR": t.TempDir(),
		"TESLA_AUTH_URL": r.simURL + "/oauth2/v3/token", "TESLA_FLEET_API_URL": r.simURL,
		"WORKER_AUTH": "token", "WORKER_AUTH_TOKEN": bearer, "SCOUT_AUTH": "token", "SCOUT_AUTH_TOKEN": bearer,
		"HOME_LAT": strconv.FormatFloat(devstack.Home.Lat, 'f', -1, 64), "HOME_LON": strconv.FormatFloat(devstack.Home.Lon, 'f', -1, 64),
		"COMMAND_SPACING": "0s", "TOKEN_REFRESH_BEFORE": "30m", "WORKER_URL": r.gate.srv.URL,
	}
	for k, v := range opts.env {
		env[k] = v
	}
	if r.wcfg, err = worker.LoadConfig(r.ctx, envconfig.MapLookuper(env)); err != nil {
		t.Fatal(err)
	}
	if r.scfg, err = scout.LoadConfig(r.ctx, envconfig.MapLookuper(env)); err != nil {
		t.Fatal(err)
	}
	r.startWorker()
	r.restartScout()
	t.Cleanup(func() {
		r.mu.Lock()
		list := append([]*instance(nil), r.instances...)
		r.mu.Unlock()
		for _, in := range list {
			r.stopWorker(in)
		}
		_ = r.scout.Close()
		if t.Failed() && !opts.quiet {
			t.Logf("service logs:\n%s", tail(r.logs.String(), 60))
		}
	})
	return r
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// seed stores the client registration and a fresh pair from a browser login.
func (r *rig) seed() fleetsim.TokenPair {
	r.t.Helper()
	for name, v := range map[string]string{"tesla-client-id": fleetsim.DefaultClientID, "tesla-client-secret": fleetsim.DefaultClientSecret} {
		if _, err := r.mem.Add(r.ctx, name, []byte(v)); err != nil {
			r.t.Fatal(err)
		}
	}
	p := r.sim.Login()
	now := r.clock.Now()
	payload, err := tokens.Pair{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, ExpiresAt: p.ExpiresAt,
		RefreshTokenCreatedAt: now, UpdatedAt: now, Source: "login"}.Marshal()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.mem.Add(r.ctx, "fleet-tokens", payload); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// --- worker instances ---------------------------------------------------

type instance struct {
	name  string
	app   *worker.App
	srv   *httptest.Server
	store *instanceStore
	once  sync.Once
}

// startWorker starts a new worker instance and puts it behind the gate.
func (r *rig) startWorker() *instance {
	r.t.Helper()
	r.mu.Lock()
	r.nextID++
	name := fmt.Sprintf("worker-%d", r.nextID)
	r.mu.Unlock()
	in := &instance{name: name, store: &instanceStore{inner: r.store}}
	var clk clock.Clock = r.clock
	if r.nextSkew != 0 { // this instance's clock is off (random rounds)
		clk, r.nextSkew = skewedClock{r.clock, r.nextSkew}, 0
	}
	if r.opts.clientLeases {
		r.mem.SetClientClock(name, clk)
	}
	app, err := worker.Build(r.ctx, r.wcfg, worker.Options{
		Clock: clk, Logger: r.logger.With(zap.String("instance", name)), Secrets: in.store, State: r.wstate,
		HTTPClient: &http.Client{Timeout: r.opts.upstreamTimeout}, Version: "faults",
		ManagerConfig: func(c *tokens.Config) {
			c.Holder = name
			c.RetryBase = time.Millisecond
			c.PersistBudget = 40 * time.Millisecond
			c.LeaseWait = time.Second
		},
		SignerConfig: func(c *carcmd.SignerConfig) { c.RetryInterval = 25 * time.Millisecond },
	})
	if err != nil {
		r.t.Fatal(err)
	}
	in.app = app
	in.srv = httptest.NewServer(app.Handler)
	r.mu.Lock()
	r.instances = append(r.instances, in)
	r.mu.Unlock()
	r.gate.add(in.srv.URL)
	return in
}

// stopWorker takes an instance out of the gate and stops it gracefully
// (in-flight requests finish), as Cloud Run does on scale-down.
func (r *rig) stopWorker(in *instance) {
	in.once.Do(func() {
		r.gate.remove(in.srv.URL)
		in.srv.Close()
		_ = in.app.Close()
		r.mu.Lock()
		for i, x := range r.instances {
			if x == in {
				r.instances = append(r.instances[:i], r.instances[i+1:]...)
				break
			}
		}
		r.mu.Unlock()
	})
}

// kill is SIGKILL for an in-process instance: from now on every call it
// makes to the secret store fails and nothing it holds in memory survives
// (the rig drops it), and its lease is never released.
func (r *rig) kill(in *instance) {
	in.store.dead.Store(true)
	in.srv.CloseClientConnections()
	r.stopWorker(in)
}

// crashOnNextWrite makes the instance die at its next fleet-tokens write:
// after Tesla answered a refresh, before the new pair reaches the store.
func (in *instance) crashOnNextWrite() { in.store.crashOnAdd.Store(true) }

// live returns the running instances, oldest first.
func (r *rig) live() []*instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*instance(nil), r.instances...)
}

// reapDead replaces instances that crashed with fresh ones (Cloud Run
// starts a new instance on the next request) and reports how many.
func (r *rig) reapDead() int {
	n := 0
	for _, in := range r.live() {
		if in.store.dead.Load() {
			r.kill(in)
			n++
		}
	}
	if len(r.live()) == 0 {
		r.startWorker()
	}
	return n
}

// restartScout replaces the scout with a cold instance (nothing cached).
func (r *rig) restartScout() {
	r.t.Helper()
	if r.scout != nil {
		_ = r.scout.Close()
	}
	app, err := scout.Build(r.ctx, r.scfg, scout.Options{Clock: r.clock, Logger: r.logger.Named("scout"), Secrets: r.store,
		State: r.sstate, Needs: r.wstate, HTTPClient: &http.Client{Timeout: r.opts.upstreamTimeout}, Version: "faults"})
	if err != nil {
		r.t.Fatal(err)
	}
	r.scout = app
}

// tick runs one scout tick in-process (the scout's own HTTP layer is a
// decode and an encode; the worker stays behind real HTTP).
func (r *rig) tick() (patrol.Report, error) {
	ctx, cancel := context.WithTimeout(r.ctx, time.Minute)
	defer cancel()
	return r.scout.Scout.Tick(ctx)
}

// advance moves the simulated time and lets the simulator apply it.
func (r *rig) advance(d time.Duration) {
	r.clock.Advance(d)
	r.sim.Tick()
}

// answer is a worker's HTTP answer.
type answer struct {
	status int
	body   string
	code   string // error code, if any
	action string // /refresh-tokens action, if any
}

// post calls an instance directly (not through the gate).
func (r *rig) post(in *instance, path string, body any) answer {
	r.t.Helper()
	return postJSON(in.srv.URL+path, body)
}

// postJSON posts body as JSON with the shared bearer; a transport failure
// is an answer with status 0.
func postJSON(u string, body any) answer {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(http.MethodPost, u, rd)
	if err != nil {
		return answer{body: err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{status: 0, body: err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: string(raw)}
	var parsed struct {
		Action string `json:"action"`
		Error  struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &parsed)
	a.code, a.action = parsed.Error.Code, parsed.Action
	return a
}

// refresh is POST /refresh-tokens on an instance.
func (r *rig) refresh(in *instance, force bool) answer {
	r.t.Helper()
	return r.post(in, "/refresh-tokens", map[string]any{"reason": "faults", "force": force})
}

// --- checks ---------------------------------------------------------------

// stored is the pair in fleet-tokens/latest, read around the fault injection.
func (r *rig) stored() (tokens.Pair, string) {
	r.t.Helper()
	v, err := r.mem.Latest(r.ctx, "fleet-tokens")
	if err != nil {
		r.t.Fatalf("read fleet-tokens: %v", err)
	}
	p, err := tokens.ParsePair(v.Payload)
	if err != nil {
		r.t.Fatalf("parse fleet-tokens/%s: %v", v.ID, err)
	}
	return p, v.ID
}

// versionCount is how many fleet-tokens versions were ever added.
func (r *rig) versionCount() int {
	_, id := r.stored()
	n, _ := strconv.Atoi(id)
	return n
}

// lostRotation defines, for the whole suite, what "a rotated refresh token
// was lost" means, and returns "" when none was. Tesla accepts exactly two
// refresh tokens at any moment: the newest it issued and the one spent last
// (for 24 h after its first use). The store holds the chain when the refresh
// token in fleet-tokens/latest is one of those two:
//   - Tesla's newest: every rotation reached the store; or
//   - the one spent last, inside its grace: Tesla rotated but its answer
//     never reached the store (a crash, a timeout, a malformed answer, a
//     store outage outliving the instance) — the next refresh spends the
//     stored token again and Tesla issues a new pair.
//
// Anything else — the stored token cycled out, or nothing usable stored —
// is a lost rotation. headRequired asks for the stricter state after a
// healing refresh with no faults: the stored token must then be exactly
// Tesla's newest.
func (r *rig) lostRotation(headRequired bool) string {
	p, id := r.stored()
	newest := r.sim.NewestRefreshToken()
	switch {
	case !p.Usable():
		return fmt.Sprintf("fleet-tokens/%s holds no usable pair", id)
	case !r.sim.RefreshTokenAccepted(p.RefreshToken):
		return fmt.Sprintf("Tesla no longer accepts the refresh token stored in fleet-tokens/%s: a rotation was lost", id)
	case headRequired && p.RefreshToken != newest:
		return fmt.Sprintf("after a healing refresh fleet-tokens/%s is not Tesla's newest refresh token", id)
	}
	return ""
}

// recoverable reports whether the worker's recovery could still save the
// chain without a login: some refresh token among the newest stored
// versions it would try (tokens.Config.MaxRecoveryTries, 10) is accepted.
// A chain that fails lostRotation but is recoverable costs one
// login_required answer at the next refresh; one that is not recoverable
// needs a person to run `fleetctl login` — a re-login.
func (r *rig) recoverable() bool {
	versions, err := r.mem.Versions(r.ctx, "fleet-tokens")
	if err != nil {
		return false
	}
	for i, v := range versions {
		if i >= 10 {
			break
		}
		sv, err := r.mem.Get(r.ctx, "fleet-tokens", v.ID)
		if err != nil {
			continue
		}
		if p, err := tokens.ParsePair(sv.Payload); err == nil && r.sim.RefreshTokenAccepted(p.RefreshToken) {
			return true
		}
	}
	return false
}

// exchanges sums the simulator's token-endpoint outcomes that issued a pair.
func (r *rig) exchanges() int {
	return r.sim.TokenExchanges(fleetsim.OutcomeRefreshOK) + r.sim.TokenExchanges(fleetsim.OutcomeGraceReuse)
}

func (r *rig) wakes() int { return r.sim.FleetRequests(vin, fleetsim.CategoryWake) }

// --- stores ---------------------------------------------------------------

// flakyStore is the shared secret store with outages on the simulated
// clock: while one is on, every listed operation fails with its error.
type flakyStore struct {
	inner secrets.Store
	clock clock.Clock

	mu    sync.Mutex
	until time.Time
	err   error
	ops   map[string]bool // nil: every operation
}

var _ secrets.Store = (*flakyStore)(nil)

// outage makes ops (all if none given) fail with err until the simulated
// time reaches until.
func (f *flakyStore) outage(err error, until time.Time, ops ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.until, f.ops = err, until, nil
	if len(ops) > 0 {
		f.ops = map[string]bool{}
		for _, op := range ops {
			f.ops[op] = true
		}
	}
}

func (f *flakyStore) check(op, secret string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil || !f.clock.Now().Before(f.until) || (f.ops != nil && !f.ops[op]) {
		return nil
	}
	return fmt.Errorf("flaky %s %s: %w", op, secret, f.err)
}

func (f *flakyStore) Latest(ctx context.Context, s string) (secrets.Version, error) {
	if err := f.check(secrets.OpLatest, s); err != nil {
		return secrets.Version{}, err
	}
	return f.inner.Latest(ctx, s)
}

func (f *flakyStore) Get(ctx context.Context, s, id string) (secrets.Version, error) {
	if err := f.check(secrets.OpGet, s); err != nil {
		return secrets.Version{}, err
	}
	return f.inner.Get(ctx, s, id)
}

func (f *flakyStore) Add(ctx context.Context, s string, p []byte) (string, error) {
	if err := f.check(secrets.OpAdd, s); err != nil {
		return "", err
	}
	return f.inner.Add(ctx, s, p)
}

func (f *flakyStore) Versions(ctx context.Context, s string) ([]secrets.VersionInfo, error) {
	if err := f.check(secrets.OpVersions, s); err != nil {
		return nil, err
	}
	return f.inner.Versions(ctx, s)
}

func (f *flakyStore) Destroy(ctx context.Context, s, id string) error {
	if err := f.check(secrets.OpDestroy, s); err != nil {
		return err
	}
	return f.inner.Destroy(ctx, s, id)
}

func (f *flakyStore) TryLease(ctx context.Context, s, holder string, ttl time.Duration) (secrets.Lease, error) {
	if err := f.check(secrets.OpLease, s); err != nil {
		return nil, err
	}
	return f.inner.TryLease(ctx, s, holder, ttl)
}

// errDead is what a killed instance's store calls return. It wraps
// ErrUnavailable so the instance's last moments look like a network cut
// (the process would not see anything at all).
var errDead = fmt.Errorf("instance killed: %w", secrets.ErrUnavailable)

// instanceStore is one worker instance's view of the store: once the
// instance is dead nothing it does reaches the store, and its lease is
// never released (it runs out on its own).
type instanceStore struct {
	inner      secrets.Store
	dead       atomic.Bool
	crashOnAdd atomic.Bool
}

var _ secrets.Store = (*instanceStore)(nil)

func (s *instanceStore) alive() error {
	if s.dead.Load() {
		return errDead
	}
	return nil
}

func (s *instanceStore) Latest(ctx context.Context, n string) (secrets.Version, error) {
	if err := s.alive(); err != nil {
		return secrets.Version{}, err
	}
	return s.inner.Latest(ctx, n)
}

func (s *instanceStore) Get(ctx context.Context, n, id string) (secrets.Version, error) {
	if err := s.alive(); err != nil {
		return secrets.Version{}, err
	}
	return s.inner.Get(ctx, n, id)
}

func (s *instanceStore) Add(ctx context.Context, n string, p []byte) (string, error) {
	if n == "fleet-tokens" && s.crashOnAdd.CompareAndSwap(true, false) {
		s.dead.Store(true)
	}
	if err := s.alive(); err != nil {
		return "", err
	}
	return s.inner.Add(ctx, n, p)
}

func (s *instanceStore) Versions(ctx context.Context, n string) ([]secrets.VersionInfo, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	return s.inner.Versions(ctx, n)
}

func (s *instanceStore) Destroy(ctx context.Context, n, id string) error {
	if err := s.alive(); err != nil {
		return err
	}
	return s.inner.Destroy(ctx, n, id)
}

func (s *instanceStore) TryLease(ctx context.Context, n, holder string, ttl time.Duration) (secrets.Lease, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	l, err := s.inner.TryLease(ctx, n, holder, ttl)
	if err != nil {
		return nil, err
	}
	return instanceLease{l: l, s: s}, nil
}

type instanceLease struct {
	l secrets.Lease
	s *instanceStore
}

func (l instanceLease) Renew(ctx context.Context) error {
	if err := l.s.alive(); err != nil {
		return err
	}
	return l.l.Renew(ctx)
}

func (l instanceLease) Release(ctx context.Context) error {
	if err := l.s.alive(); err != nil {
		return err
	}
	return l.l.Release(ctx)
}

// --- the gate ---------------------------------------------------------------

// gate stands between the scout and the worker instances: the network and
// Cloud Run's load balancer. It spreads calls over the live instances (two
// of them during a deploy), can be taken down, and counts calls per path.
type gate struct {
	srv  *httptest.Server
	down atomic.Bool

	mu      sync.Mutex
	targets []string
	proxies map[string]*httputil.ReverseProxy
	next    int
	calls   map[string]int
	ok      map[string]int
}

func newGate(t testing.TB) *gate {
	g := &gate{proxies: map[string]*httputil.ReverseProxy{}, calls: map[string]int{}, ok: map[string]int{}}
	g.srv = httptest.NewServer(g)
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gate) add(target string) {
	u, _ := url.Parse(target)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.targets = append(g.targets, target)
	p := httputil.NewSingleHostReverseProxy(u)
	p.ErrorLog = nil
	p.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { hangUp(w) }
	g.proxies[target] = p
}

func (g *gate) remove(target string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, x := range g.targets {
		if x == target {
			g.targets = append(g.targets[:i], g.targets[i+1:]...)
			break
		}
	}
	delete(g.proxies, target)
}

func (g *gate) pick(path string) *httputil.ReverseProxy {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls[path]++
	if len(g.targets) == 0 {
		return nil
	}
	g.next++
	return g.proxies[g.targets[g.next%len(g.targets)]]
}

func (g *gate) count(path string, ok bool) (calls, oks int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ok {
		g.ok[path]++
	}
	return g.calls[path], g.ok[path]
}

// Calls returns how many calls reached the gate on path, and how many of
// them the worker answered 2xx.
func (g *gate) Calls(path string) (int, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[path], g.ok[path]
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := g.pick(r.URL.Path)
	if g.down.Load() || p == nil {
		hangUp(w)
		return
	}
	rec := &statusRecorder{ResponseWriter: w}
	p.ServeHTTP(rec, r)
	g.count(r.URL.Path, rec.status/100 == 2)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// hangUp is what a caller sees of a service that is not there.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	w.WriteHeader(http.StatusBadGateway)
}

// vehicleReport finds the car's line in a tick report.
func vehicleReport(rep patrol.Report) (patrol.VehicleReport, bool) {
	for _, v := range rep.Vehicles {
		if v.VIN == vin {
			return v, true
		}
	}
	return patrol.VehicleReport{}, false
}
