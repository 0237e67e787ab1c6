package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/svcauth/svcauthtest"
	"github.com/offpeak-charging/offpeak/internal/tokens"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

const bearerToken = "worker-test-shared-token-000001"

var t0 = time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC)

type env struct {
	t      *testing.T
	clock  *clock.Manual
	sim    *fleetsim.Sim
	store  *secrets.Memory
	key    *carcmd.PrivateKey // the owner's command key, in tesla-private-key (nil if none or invalid)
	keyPEM []byte
	cfg    worker.Config
	state  state.Store
	app    *worker.App
	url    string
	logBuf *syncBuffer
	// httpClient and version, when set, go to Build (a restart takes them).
	httpClient *http.Client
	version    string
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
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newEnv(t *testing.T, vars map[string]string, simOpts fleetsim.Options) *env {
	t.Helper()
	return newEnvKey(t, vars, simOpts, nil)
}

// newEnvKey is newEnv with the command key's secret given: nil generates
// one (paired with every car addCar adds), empty stores none.
func newEnvKey(t *testing.T, vars map[string]string, simOpts fleetsim.Options, keyPEM []byte) *env {
	t.Helper()
	e := &env{t: t, clock: clock.NewManual(t0), logBuf: &syncBuffer{}}
	simOpts.Clock = e.clock
	e.sim = fleetsim.New(simOpts)
	simURL, err := e.sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.sim.Close() })
	e.store = secrets.NewMemory(e.clock)
	ctx := context.Background()
	if keyPEM == nil {
		if e.key, keyPEM, err = carcmd.GenerateKey(); err != nil {
			t.Fatal(err)
		}
	} else if k, err := carcmd.ParsePrivateKey(keyPEM); err == nil {
		e.key = k
	}
	e.keyPEM = keyPEM
	for name, v := range map[string]string{"tesla-client-id": fleetsim.DefaultClientID, "tesla-client-secret": fleetsim.DefaultClientSecret,
		"tesla-private-key": string(keyPEM)} {
		if v == "" {
			continue
		}
		if _, err := e.store.Add(ctx, name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	m := map[string]string{
		"TESLA_AUTH_URL": simURL + "/oauth2/v3/token", "TESLA_FLEET_API_URL": simURL,
		"WORKER_AUTH": "token", "WORKER_AUTH_TOKEN": bearerToken,
		"HOME_LAT": "52.231838", "HOME_LON": "21.005995", "STATE_BACKEND": "file", "STATE_DIR": t.TempDir(),
		"COMMAND_SPACING": "0s",
	}
	for k, v := range vars {
		m[k] = v
	}
	e.cfg, err = worker.LoadConfig(ctx, envconfig.MapLookuper(m))
	if err != nil {
		t.Fatal(err)
	}
	e.state = state.NewMemory()
	e.start()
	return e
}

// start builds and serves a worker on the env's stores: a second call is a
// restart (a new instance with nothing in memory).
func (e *env) start() {
	t := e.t
	t.Helper()
	var err error
	logger := logging.New(logging.Options{Output: e.logBuf, Level: zap.DebugLevel})
	e.app, err = worker.Build(context.Background(), e.cfg, worker.Options{Clock: e.clock, Secrets: e.store, Logger: logger, State: e.state,
		HTTPClient: e.httpClient, Version: e.version,
		ManagerConfig: func(c *tokens.Config) {
			c.RetryBase = time.Millisecond
			c.PersistBudget = 200 * time.Millisecond
			c.LeaseWait = 5 * time.Second
		},
		SignerConfig: func(c *carcmd.SignerConfig) { c.RetryInterval = 25 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.app.Handler)
	t.Cleanup(srv.Close)
	e.url = srv.URL
}

// seed stores a pair from a fresh simulated login, expiring after ttl.
func (e *env) seed(ttl time.Duration) fleetsim.TokenPair {
	e.t.Helper()
	p := e.sim.Login()
	payload, err := tokens.Pair{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, ExpiresAt: e.clock.Now().Add(ttl)}.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.Add(context.Background(), "fleet-tokens", payload); err != nil {
		e.t.Fatal(err)
	}
	return p
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) do(method, path, body string, headers map[string]string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearerToken)
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func errCode(a answer) string {
	if a.body["status"] != "error" {
		return ""
	}
	m, _ := a.body["error"].(map[string]any)
	code, _ := m["code"].(string)
	if msg, _ := m["message"].(string); msg == "" {
		return "(no message)"
	}
	return code
}

func TestRefreshTokensActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)

	a := e.do("POST", "/refresh-tokens", "", nil)
	if a.status != 200 || a.body["action"] != "none" || a.body["status"] != "ok" || a.body["expires_at"] == nil {
		t.Fatalf("valid pair: %d %s", a.status, a.raw)
	}
	e.clock.Advance(7*time.Hour + 40*time.Minute)
	a = e.do("POST", "/refresh-tokens", `{"reason":"scout: token expiring","requested_by":"scout"}`, nil)
	if a.status != 200 || a.body["action"] != "refreshed" {
		t.Fatalf("expiring pair: %d %s", a.status, a.raw)
	}
	a = e.do("POST", "/refresh-tokens", `{"force":true}`, nil)
	if a.status != 200 || a.body["action"] != "refreshed" {
		t.Fatalf("forced: %d %s", a.status, a.raw)
	}
	if n := e.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 2 {
		t.Errorf("exchanges = %d, want 2", n)
	}
	if exp, err := time.Parse(time.RFC3339, a.body["expires_at"].(string)); err != nil || !exp.After(e.clock.Now().Add(7*time.Hour)) {
		t.Errorf("expires_at %v (%v)", a.body["expires_at"], err)
	}
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(time.Minute)
	big := `{"reason":"` + strings.Repeat("x", 70<<10) + `"}`
	cases := []struct {
		name, method, path, body string
		headers                  map[string]string
		status                   int
		code                     string
	}{
		{"unknown path", "GET", "/nope", "", nil, 404, "not_found"},
		{"wrong method", "GET", "/refresh-tokens", "", nil, 405, "method_not_allowed"},
		{"malformed JSON", "POST", "/refresh-tokens", `{"force":`, nil, 400, "bad_request"},
		{"unknown field", "POST", "/refresh-tokens", `{"forse":true}`, nil, 400, "bad_request"},
		{"oversized body", "POST", "/refresh-tokens", big, nil, 413, "payload_too_large"},
		{"missing credential", "POST", "/refresh-tokens", "", map[string]string{"Authorization": ""}, 401, "unauthorized"},
		{"wrong credential", "POST", "/refresh-tokens", "", map[string]string{"Authorization": "Bearer nope-nope-nope-nope"}, 401, "unauthorized"},
		{"bad vin", "POST", "/run-cycle", `{"vin":"short"}`, nil, 400, "bad_request"},
		{"run-cycle without body", "POST", "/run-cycle", ``, nil, 400, "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(tc.method, tc.path, tc.body, tc.headers)
			if a.status != tc.status || errCode(a) != tc.code {
				t.Errorf("got %d %s, want %d %s", a.status, a.raw, tc.status, tc.code)
			}
		})
	}
	if n := e.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 0 {
		t.Errorf("rejected requests caused %d token exchanges", n)
	}
}

func TestTransientAndTerminalFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(time.Minute)

	e.sim.InjectFault(fleetsim.EndpointToken, fleetsim.Fault{Status: 500, Times: 1})
	a := e.do("POST", "/refresh-tokens", "", nil)
	if a.status != 503 || errCode(a) != "upstream_unavailable" || a.header.Get("Retry-After") == "" {
		t.Errorf("token endpoint 500: %d %s (Retry-After %q)", a.status, a.raw, a.header.Get("Retry-After"))
	}
	e.store.FailNext("latest", secrets.ErrUnavailable, 1)
	a = e.do("POST", "/refresh-tokens", "", nil)
	if a.status != 503 || errCode(a) != "store_unavailable" || a.header.Get("Retry-After") == "" {
		t.Errorf("store unavailable: %d %s", a.status, a.raw)
	}
	// A new login elsewhere cycles every stored token out: terminal.
	e.sim.Login()
	a = e.do("POST", "/refresh-tokens", "", nil)
	if a.status != 409 || errCode(a) != "reauth_required" || !strings.Contains(a.raw, "fleetctl login") {
		t.Errorf("dead chain: %d %s", a.status, a.raw)
	}
	h := e.do("GET", "/health", "", map[string]string{"Authorization": ""})
	if tk, _ := h.body["tokens"].(map[string]any); tk["state"] != "reauth_required" {
		t.Errorf("health after a dead chain: %s", h.raw)
	}
}

func TestSyncTokensMigratesFromTheLegacySecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	p := e.sim.Login()
	if _, err := e.store.Add(context.Background(), "tesla-refresh-token", []byte(p.RefreshToken+"\n")); err != nil {
		t.Fatal(err)
	}
	a := e.do("POST", "/sync-tokens", "", nil)
	if a.status != 200 || a.body["action"] != "migrated" {
		t.Fatalf("sync: %d %s", a.status, a.raw)
	}
	a = e.do("POST", "/sync-tokens", "", nil)
	if a.status != 200 || a.body["action"] != "none" || a.body["legacy"] != "known" {
		t.Fatalf("second sync: %d %s", a.status, a.raw)
	}
}

// Issue 14 (8): without a legacy secret /sync-tokens says so, with the
// stored chain's state — not 503 upstream_unavailable for an empty token.
func TestSyncTokensWithoutALegacySecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	a := e.do("POST", "/sync-tokens", "", nil)
	if a.status != 200 || a.body["action"] != "none" || a.body["legacy"] != "absent" {
		t.Fatalf("sync without a legacy secret: %d %s", a.status, a.raw)
	}
	if n := len(e.sim.Counters().TokenExchanges); n != 0 {
		t.Errorf("token requests: %v, want none", e.sim.Counters().TokenExchanges)
	}
}

func TestHealthMakesNoStoreCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	e.do("POST", "/refresh-tokens", "", nil)
	before := e.store.Calls("latest") + e.store.Calls("get") + e.store.Calls("versions")
	for i := 0; i < 20; i++ {
		a := e.do("GET", "/health", "", map[string]string{"Authorization": ""})
		tk, _ := a.body["tokens"].(map[string]any)
		if a.status != 200 || a.body["service"] != "worker" || tk["state"] != "valid" || tk["expires_at"] == nil {
			t.Fatalf("health: %d %s", a.status, a.raw)
		}
	}
	if after := e.store.Calls("latest") + e.store.Calls("get") + e.store.Calls("versions"); after != before {
		t.Errorf("20 health probes made %d store calls", after-before)
	}
	a := e.do("GET", "/health?check=store", "", map[string]string{"Authorization": ""})
	if a.status != 200 || e.store.Calls("latest") == before {
		t.Errorf("?check=store should read the store: %d %s", a.status, a.raw)
	}
}

func TestConcurrentRefreshesMakeOneExchange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(-time.Minute)
	e.sim.SetLatency(fleetsim.EndpointToken, 50*time.Millisecond)
	versionsBefore := e.store.Calls("add")
	var wg sync.WaitGroup
	statuses := make([]int, 500)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 500}}
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.url+"/refresh-tokens", nil)
			req.Header.Set("Authorization", "Bearer "+bearerToken)
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("request %d: status %d", i, s)
		}
	}
	c := e.sim.Counters().TokenExchanges
	if c[fleetsim.OutcomeRefreshOK] != 1 || c[fleetsim.OutcomeGraceReuse] != 0 {
		t.Errorf("exchanges = %v, want exactly one refresh_ok", c)
	}
	if n := e.store.Calls("add") - versionsBefore; n != 1 {
		t.Errorf("versions written = %d, want 1", n)
	}
}

const workerAudience = "https://offpeak-worker-123.europe-central2.run.app"

// TestIAMModeVerifiesTheCaller runs the real worker in iam mode against a
// fake Google (its keys on loopback): a signed token from the scout's
// account passes, forged or stripped ones do not; on Cloud Run (K_SERVICE)
// a stripped token with good claims passes.
func TestIAMModeVerifiesTheCaller(t *testing.T) {
	t.Parallel()
	const scout = "scout@p.iam.gserviceaccount.com"
	g := svcauthtest.NewGoogle(t, 3600)
	vars := map[string]string{"WORKER_AUTH": "iam", "ALLOWED_INVOKERS": scout, "SERVICE_URL": workerAudience, "GOOGLE_CERTS_URL": g.CertsURL}
	e := newEnv(t, vars, fleetsim.Options{})
	e.seed(8 * time.Hour)
	good := svcauthtest.Claims(scout, workerAudience, t0)
	with := func(k string, v any) map[string]any {
		c := svcauthtest.Claims(scout, workerAudience, t0)
		c[k] = v
		return c
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	cases := []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"signed by Google", g.Sign(t, good), 200, ""},
		{"other email", g.Sign(t, with("email", "mallory@evil.example")), 403, "forbidden"},
		{"forged alg none, exp 1970", svcauthtest.Unsigned(t, map[string]any{"alg": "none"}, map[string]any{"email": scout, "exp": 0}, ""), 401, "unauthorized"},
		{"expired", g.Sign(t, with("exp", t0.Add(-time.Hour).Unix())), 401, "unauthorized"},
		{"wrong audience", g.Sign(t, with("aud", e.url)), 401, "unauthorized"},
		{"wrong issuer", g.Sign(t, with("iss", "https://evil.example")), 401, "unauthorized"},
		{"stripped, off Cloud Run", g.Stripped(t, good), 401, "unauthorized"},
	}
	for _, tc := range cases {
		if a := e.do("POST", "/refresh-tokens", "", bearer(tc.token)); a.status != tc.status || (tc.code != "" && errCode(a) != tc.code) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, a.status, a.raw, tc.status, tc.code)
		}
	}
	if a := e.do("POST", "/refresh-tokens", "", map[string]string{"Authorization": ""}); a.status != 401 {
		t.Errorf("no token: %d %s", a.status, a.raw)
	}

	vars["K_SERVICE"] = "offpeak-worker"
	cr := newEnv(t, vars, fleetsim.Options{})
	cr.seed(8 * time.Hour)
	if a := cr.do("POST", "/refresh-tokens", "", bearer(g.Stripped(t, good))); a.status != 200 {
		t.Errorf("on Cloud Run, stripped with good claims: %d %s", a.status, a.raw)
	}
	for name, c := range map[string]map[string]any{"expired": with("exp", t0.Add(-time.Hour).Unix()),
		"wrong audience": with("aud", "https://elsewhere.example"), "wrong issuer": with("iss", "https://evil.example")} {
		if a := cr.do("POST", "/refresh-tokens", "", bearer(g.Stripped(t, c))); a.status != 401 {
			t.Errorf("on Cloud Run, stripped and %s: %d %s", name, a.status, a.raw)
		}
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	base := map[string]string{"WORKER_AUTH": "token", "WORKER_AUTH_TOKEN": bearerToken, "HOME_LAT": "52.2", "HOME_LON": "21.0"}
	cases := map[string]map[string]string{
		"WORKER_AUTH_TOKEN":     {"WORKER_AUTH_TOKEN": ""},
		"ALLOWED_INVOKERS":      {"WORKER_AUTH": "iam"},
		"SERVICE_URL":           {"WORKER_AUTH": "iam", "ALLOWED_INVOKERS": "a@b.c"},
		"GOOGLE_CERTS_URL":      {"GOOGLE_CERTS_URL": "http://www.googleapis.com/oauth2/v3/certs"},
		"TESLA_FLEET_API_URL":   {"TESLA_FLEET_API_URL": "http://fleet-api.prd.eu.vn.cloud.tesla.com"},
		"PLANNER_URL":           {"PLANNER_URL": "http://planner.example/api"},
		"WORKER_AUTH":           {"WORKER_AUTH": "open"},
		"GOOGLE_CLOUD_PROJECT":  {"SECRETS_BACKEND": "gcp"},
		"SECRETS_BACKEND":       {"SECRETS_BACKEND": "vault"},
		"TESLA_AUTH_URL":        {"TESLA_AUTH_URL": "fleet-auth"},
		"TOKEN_REFRESH_BEFORE":  {"TOKEN_REFRESH_BEFORE": "banana"},
		"STATE_BUCKET":          {"STATE_BACKEND": "gcs"},
		"TIMEZONE":              {"TIMEZONE": "Mars/Olympus"},
		"CHARGE_TARGET_PERCENT": {"CHARGE_TARGET_PERCENT": "150"},
		"TARIFF_PRICE_PEAK":     {"TARIFF_PRICE_PEAK": "0"},
		"TARIFF_PRICE_OFFPEAK":  {"TARIFF_PRICE_OFFPEAK": "-0.5"},
		"LOG_FORMAT":            {"LOG_FORMAT": "xml"},
		"HOME_LAT":              {"HOME_LAT": "north"},
		"TESLA_COMMAND_MODE":    {"TESLA_COMMAND_MODE": "signed"},
		"TESLA_COMMAND_URL":     {"TESLA_COMMAND_MODE": "proxy"},
	}
	for want, override := range cases {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range override {
			m[k] = v
		}
		_, err := worker.LoadConfig(context.Background(), envconfig.MapLookuper(m))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: err = %v, want it to name %s", override, err, want)
		}
	}
	cfg, err := worker.LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{"ALLOWED_INVOKERS": "a@b.c", "SERVICE_URL": workerAudience, "HOME_LAT": "52.2", "HOME_LON": "21.0"}))
	if err != nil || cfg.WorkerAuth != "iam" {
		t.Errorf("default auth must be iam, never none: %v %v", cfg.WorkerAuth, err)
	}
	// An ordinary evening must not charge at peak: the floor is for a car
	// left nearly empty. G12 prices by default.
	if c := cfg.Charging; c.ChargeFloorPercent != 20 || c.TariffPricePeak != 1.05 || c.TariffPriceOffpeak != 0.55 {
		t.Errorf("floor %d, prices %v/%v; want 20, 1.05/0.55", c.ChargeFloorPercent, c.TariffPricePeak, c.TariffPriceOffpeak)
	}
	// The Python system's deploy set TESLA_COMMAND_URL to the Fleet API when
	// it had no proxy: that must not turn signing off.
	m := map[string]string{"ALLOWED_INVOKERS": "a@b.c", "SERVICE_URL": workerAudience, "HOME_LAT": "52.2", "HOME_LON": "21.0",
		"TESLA_COMMAND_URL": "https://fleet-api.prd.eu.vn.cloud.tesla.com/"}
	cfg, err = worker.LoadConfig(context.Background(), envconfig.MapLookuper(m))
	if mode, _ := cfg.CommandMode(); err != nil || mode != "sign" || cfg.PrivateKeySecret != "tesla-private-key" || cfg.SignerURL() != "" {
		t.Errorf("command mode %q, key secret %q, signer %q, err %v; want sign, tesla-private-key and none", mode, cfg.PrivateKeySecret, cfg.SignerURL(), err)
	}

	// Every problem at once, not the first only.
	m = map[string]string{"ALLOWED_INVOKERS": "a@b.c", "SERVICE_URL": workerAudience, "HOME_LAT": "91", "HOME_LON": "21.0",
		"TOKEN_KEEP_VERSIONS": "0", "TESLA_AUTH_URL": "http://fleet-auth.example", "CHARGE_EFFICIENCY": "2", "TIMEZONE": "Mars/Olympus",
		"COMMAND_SPACING": "soon"}
	_, err = worker.LoadConfig(context.Background(), envconfig.MapLookuper(m))
	for _, want := range []string{"COMMAND_SPACING", "HOME_LAT", "TOKEN_KEEP_VERSIONS", "TESLA_AUTH_URL", "CHARGE_EFFICIENCY", "TIMEZONE"} {
		if err == nil || !strings.Contains(err.Error(), want+": ") {
			t.Errorf("err = %v, want it to name %s too", err, want)
		}
	}
}

// Every log line and every response is checked for the token strings.
func TestNoTokenValueLeaks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	first := e.seed(time.Minute)
	var bodies []string
	bodies = append(bodies, e.do("POST", "/refresh-tokens", "", nil).raw)
	bodies = append(bodies, e.do("POST", "/refresh-tokens", `{"force":true}`, nil).raw)
	bodies = append(bodies, e.do("GET", "/health?check=store", "", nil).raw)
	e.sim.InjectFault(fleetsim.EndpointToken, fleetsim.Fault{Status: 500, Times: 1})
	bodies = append(bodies, e.do("POST", "/refresh-tokens", `{"force":true}`, nil).raw)
	e.sim.Login()
	bodies = append(bodies, e.do("POST", "/refresh-tokens", `{"force":true}`, nil).raw)
	bodies = append(bodies, e.do("GET", "/health", "", nil).raw)

	secretsSeen := []string{first.AccessToken, first.RefreshToken, bearerToken, fleetsim.DefaultClientSecret}
	versions, _ := e.store.Versions(context.Background(), "fleet-tokens")
	for _, v := range versions {
		sv, err := e.store.Get(context.Background(), "fleet-tokens", v.ID)
		if err != nil {
			continue
		}
		if p, err := tokens.ParsePair(sv.Payload); err == nil {
			secretsSeen = append(secretsSeen, p.AccessToken, p.RefreshToken)
		}
	}
	if len(secretsSeen) < 8 {
		t.Fatalf("expected several stored pairs to check, got %d values", len(secretsSeen))
	}
	out := e.logBuf.String() + strings.Join(bodies, "\n")
	for _, s := range secretsSeen {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("a secret value (%d chars, starts %q) appears in logs or responses", len(s), s[:min(4, len(s))])
		}
	}
	if !strings.Contains(e.logBuf.String(), "fingerprint") {
		t.Error("expected token fingerprints in the log, proving tokens were logged safely")
	}
}
