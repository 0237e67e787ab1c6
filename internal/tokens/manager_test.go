package tokens_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

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

type fixture struct {
	t     *testing.T
	clock *clock.Manual
	sim   *fleetsim.Sim
	url   string
	store secrets.Store
	logs  *syncBuffer
}

func newFixture(t *testing.T, store func(clk clock.Clock) secrets.Store) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: clock.NewManual(t0), logs: &syncBuffer{}}
	f.sim = fleetsim.New(fleetsim.Options{Clock: f.clock})
	url, err := f.sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.sim.Close() })
	f.url = url
	if store == nil {
		store = func(clk clock.Clock) secrets.Store { return secrets.NewMemory(clk) }
	}
	f.store = store(f.clock)
	f.add("tesla-client-id", fleetsim.DefaultClientID)
	f.add("tesla-client-secret", fleetsim.DefaultClientSecret)
	return f
}

func (f *fixture) add(secret, payload string) string {
	f.t.Helper()
	id, err := f.store.Add(context.Background(), secret, []byte(payload))
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

// storePair writes a pair as the Python system would, expiring at exp.
func (f *fixture) storePair(p fleetsim.TokenPair, exp time.Time) string {
	f.t.Helper()
	return f.add("fleet-tokens", fmt.Sprintf(`{"access_token": %q, "refresh_token": %q, "expires_at": %q, "refresh_token_created_at": %q}`,
		p.AccessToken, p.RefreshToken, exp.Format("2006-01-02T15:04:05.000000+00:00"), f.clock.Now().Format("2006-01-02T15:04:05.000000+00:00")))
}

func (f *fixture) manager(mod func(*tokens.Config)) *tokens.Manager {
	cfg := tokens.Config{RetryBase: time.Millisecond, PersistBudget: time.Second, LeaseWait: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	logger := logging.New(logging.Options{Output: f.logs, Level: zap.DebugLevel})
	return tokens.New(f.store, &tokens.Exchanger{TokenURL: f.url + "/oauth2/v3/token"}, f.clock, logger, cfg)
}

func (f *fixture) latest() (tokens.Pair, string) {
	f.t.Helper()
	v, err := f.store.Latest(context.Background(), "fleet-tokens")
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := tokens.ParsePair(v.Payload)
	if err != nil {
		f.t.Fatal(err)
	}
	return p, v.ID
}

// chainValid: the newest stored refresh token is one Tesla still accepts.
func (f *fixture) chainValid() bool {
	p, _ := f.latest()
	return f.sim.RefreshTokenAccepted(p.RefreshToken)
}

func TestEnsurePaths(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("none", func(t *testing.T) {
		f := newFixture(t, nil)
		f.storePair(f.sim.Login(), t0.Add(8*time.Hour))
		res, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{})
		if err != nil || res.Action != tokens.ActionNone || res.Version != "1" {
			t.Fatalf("Ensure = %+v, %v", res, err)
		}
		if n := f.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 0 {
			t.Errorf("exchanges = %d", n)
		}
	})
	t.Run("refreshed inside the margin", func(t *testing.T) {
		f := newFixture(t, nil)
		f.storePair(f.sim.Login(), t0.Add(20*time.Minute))
		res, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{})
		if err != nil || res.Action != tokens.ActionRefreshed || res.Version != "2" || !res.ExpiresAt.Equal(t0.Add(8*time.Hour)) {
			t.Fatalf("Ensure = %+v, %v", res, err)
		}
		p, _ := f.latest()
		if p.Source != "refresh" || p.SpentRefreshHash == "" || !f.chainValid() {
			t.Errorf("stored %v, chain valid %v", p, f.chainValid())
		}
	})
	t.Run("force refreshes a valid pair", func(t *testing.T) {
		f := newFixture(t, nil)
		f.storePair(f.sim.Login(), t0.Add(8*time.Hour))
		res, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{Force: true})
		if err != nil || res.Action != tokens.ActionRefreshed {
			t.Fatalf("Ensure = %+v, %v", res, err)
		}
	})
	t.Run("no expiry means expired", func(t *testing.T) {
		f := newFixture(t, nil)
		p := f.sim.Login()
		f.add("fleet-tokens", fmt.Sprintf(`{"access_token":%q,"refresh_token":%q}`, p.AccessToken, p.RefreshToken))
		if res, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{}); err != nil || res.Action != tokens.ActionRefreshed {
			t.Fatalf("Ensure = %+v, %v", res, err)
		}
	})
	t.Run("migrated from the legacy secret when fleet-tokens is missing", func(t *testing.T) {
		f := newFixture(t, nil)
		f.add("tesla-refresh-token", f.sim.Login().RefreshToken+"\n")
		res, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{})
		if err != nil || res.Action != tokens.ActionMigrated || !f.chainValid() {
			t.Fatalf("Ensure = %+v, %v", res, err)
		}
	})
	t.Run("stored token cycled out, legacy current", func(t *testing.T) {
		f := newFixture(t, nil)
		old := f.sim.Login()
		f.storePair(old, t0.Add(-time.Minute))
		f.add("tesla-refresh-token", f.sim.Login().RefreshToken) // a newer login by the old system's script
		res, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{})
		if err != nil || res.Action != tokens.ActionMigrated {
			t.Fatalf("Ensure = %+v, %v", res, err)
		}
		if c := f.sim.Counters().TokenExchanges; c[fleetsim.OutcomeLoginRequired] != 1 || c[fleetsim.OutcomeRefreshOK] != 1 {
			t.Errorf("exchanges = %v: the stored token must be tried first, then the legacy one", c)
		}
	})
	t.Run("reauth required when nothing works", func(t *testing.T) {
		f := newFixture(t, nil)
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		f.add("tesla-refresh-token", "EU_long_dead_legacy_token")
		f.sim.Login() // cycles every earlier token out
		m := f.manager(nil)
		_, err := m.Ensure(ctx, tokens.EnsureOptions{})
		if !errors.Is(err, tokens.ErrReauthRequired) || errors.Is(err, tokens.ErrUpstreamUnavailable) || errors.Is(err, tokens.ErrStoreUnavailable) {
			t.Fatalf("err = %v, want only ErrReauthRequired", err)
		}
		if st := m.Status(); st.State != tokens.StateReauthRequired {
			t.Errorf("status = %v", st.State)
		}
	})
}

func TestTransientErrorsAreNotReauth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name  string
		fault fleetsim.Fault
		want  error
	}{
		{"token endpoint 500", fleetsim.Fault{Status: 500}, tokens.ErrUpstreamUnavailable},
		{"token endpoint malformed JSON", fleetsim.Fault{Malformed: true}, tokens.ErrUpstreamUnavailable},
		{"connection dropped", fleetsim.Fault{Drop: true, Times: 2}, tokens.ErrUpstreamUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.storePair(f.sim.Login(), t0.Add(-time.Minute))
			f.sim.InjectFault(fleetsim.EndpointToken, tc.fault)
			m := f.manager(nil)
			_, err := m.Ensure(ctx, tokens.EnsureOptions{})
			if !errors.Is(err, tc.want) || errors.Is(err, tokens.ErrReauthRequired) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// Once the endpoint is back, the same stored token works (inside
			// the grace even if Tesla did rotate before failing to answer).
			f.sim.ClearFaults()
			if res, err := m.Ensure(ctx, tokens.EnsureOptions{}); err != nil || res.Action != tokens.ActionRefreshed || !f.chainValid() {
				t.Fatalf("after recovery: %+v, %v", res, err)
			}
		})
	}
	t.Run("store unavailable", func(t *testing.T) {
		f := newFixture(t, nil)
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		f.store.(*secrets.Memory).FailNext("latest", secrets.ErrUnavailable, 1)
		_, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{})
		if !errors.Is(err, tokens.ErrStoreUnavailable) || !errors.Is(err, secrets.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if n := f.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 0 {
			t.Errorf("no exchange may happen without reading the stored token (got %d)", n)
		}
	})
	t.Run("permission denied", func(t *testing.T) {
		f := newFixture(t, nil)
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		f.store.(*secrets.Memory).FailNext("latest", secrets.ErrPermissionDenied, 1)
		_, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{})
		if !errors.Is(err, tokens.ErrStoreUnavailable) || !errors.Is(err, secrets.ErrPermissionDenied) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestConcurrentEnsureMakesOneExchange(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.storePair(f.sim.Login(), t0.Add(-time.Minute))
	f.sim.SetLatency(fleetsim.EndpointToken, 20*time.Millisecond)
	m := f.manager(nil)
	var wg sync.WaitGroup
	errs := make([]error, 1000)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.Ensure(context.Background(), tokens.EnsureOptions{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Ensure %d: %v", i, err)
		}
	}
	c := f.sim.Counters().TokenExchanges
	if c[fleetsim.OutcomeRefreshOK] != 1 || len(c) != 1 {
		t.Errorf("exchanges = %v, want exactly one refresh_ok", c)
	}
	if n := f.store.(*secrets.Memory).Calls("add"); n != 4 { // client id, client secret and fleet-tokens v1 were seeded with Add
		t.Errorf("adds = %d, want 3 seeds + 1 refresh", n)
	}
	if _, id := f.latest(); id != "2" {
		t.Errorf("latest version = %s, want 2 (exactly one written)", id)
	}
}

// A store write that fails after Tesla rotated: the error is reported, the
// new access token goes to no one, and the next attempt heals the chain.
func TestWriteFailureAfterRotationIsHealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("same process: the stored token is spent again inside the grace", func(t *testing.T) {
		f := newFixture(t, nil)
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		mem := f.store.(*secrets.Memory)
		m := f.manager(nil)
		mem.FailNext("add", secrets.ErrUnavailable, 100)
		_, err := m.Ensure(ctx, tokens.EnsureOptions{})
		if !errors.Is(err, tokens.ErrStoreUnavailable) {
			t.Fatalf("err = %v, want ErrStoreUnavailable (never success)", err)
		}
		if _, err := m.AccessToken(ctx); err == nil {
			t.Fatal("an access token was handed out although its pair was never stored")
		}
		mem.FailNext("add", nil, 0) // the store is back
		res, err := m.Ensure(ctx, tokens.EnsureOptions{})
		if err != nil || res.Action != tokens.ActionRefreshed {
			t.Fatalf("retry = %+v, %v", res, err)
		}
		// The unstored pair is never stored blindly (another instance may have
		// cycled it out meanwhile): the stored token is spent again instead.
		if c := f.sim.Counters().TokenExchanges; c[fleetsim.OutcomeRefreshOK] != 1 || c[fleetsim.OutcomeGraceReuse] < 1 || c[fleetsim.OutcomeLoginRequired] != 0 {
			t.Errorf("exchanges = %v, want one rotation then grace reuses of the stored token", c)
		}
		if p, _ := f.latest(); !f.chainValid() || p.RefreshToken != f.sim.NewestRefreshToken() {
			t.Error("the stored pair is not the newest Tesla issued")
		}
	})
	t.Run("after a restart: the old token is reused inside the grace", func(t *testing.T) {
		f := newFixture(t, nil)
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		mem := f.store.(*secrets.Memory)
		mem.FailNext("add", secrets.ErrUnavailable, 1000)
		if _, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{}); !errors.Is(err, tokens.ErrStoreUnavailable) {
			t.Fatalf("err = %v", err)
		}
		mem.FailNext("add", nil, 0)
		f.clock.Advance(23 * time.Hour)                                // a long outage, still inside Tesla's 24 h grace
		res, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{}) // a new process: nothing in memory
		if err != nil || res.Action != tokens.ActionRefreshed {
			t.Fatalf("after restart = %+v, %v", res, err)
		}
		if n := f.sim.TokenExchanges(fleetsim.OutcomeGraceReuse); n != 1 {
			t.Errorf("grace reuses = %d, want 1", n)
		}
		if !f.chainValid() {
			t.Error("chain broken")
		}
	})
}

func TestCorruptLatestIsRecovered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, payload := range []string{`{"access_token": "eyJ`, ``, `{"access_token":"","refresh_token":""}`, `{"access_token":"a","refresh_token":"b","expires_at":"tomorrow"}`} {
		t.Run(fmt.Sprintf("%.12q", payload), func(t *testing.T) {
			f := newFixture(t, nil)
			f.storePair(f.sim.Login(), t0.Add(-time.Minute)) // v1: good
			f.add("fleet-tokens", payload)                   // v2: half-written or broken
			m := f.manager(nil)
			res, err := m.Ensure(ctx, tokens.EnsureOptions{})
			if err != nil || res.Action != tokens.ActionMigrated || res.Version != "3" {
				t.Fatalf("Ensure = %+v, %v", res, err)
			}
			if !f.chainValid() {
				t.Error("chain broken")
			}
			// The corrupt version is left as it was: nothing is overwritten silently.
			v, _ := f.store.Get(ctx, "fleet-tokens", "2")
			if string(v.Payload) != payload {
				t.Error("the corrupt version was altered")
			}
		})
	}
	t.Run("destroyed latest falls back to the legacy secret", func(t *testing.T) {
		f := newFixture(t, nil)
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		if err := f.store.Destroy(ctx, "fleet-tokens", "1"); err != nil {
			t.Fatal(err)
		}
		f.add("tesla-refresh-token", f.sim.Login().RefreshToken)
		if res, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{}); err != nil || res.Action != tokens.ActionMigrated {
			t.Fatalf("Ensure = %+v, %v", res, err)
		}
	})
}

func TestPruneKeepsWhatTheGraceNeeds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	f.storePair(f.sim.Login(), t0.Add(-time.Minute))
	m := f.manager(func(c *tokens.Config) { c.KeepVersions = 2 })
	// A refresh every 8 h for four days.
	for i := 0; i < 12; i++ {
		f.clock.Advance(8 * time.Hour)
		if _, err := m.Ensure(ctx, tokens.EnsureOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	versions, err := f.store.Versions(ctx, "fleet-tokens")
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	for i, v := range versions {
		// A version's refresh token was spent when the next one was written.
		if i >= 2 && now.Sub(versions[i-1].Created) > 25*time.Hour {
			t.Errorf("version %s (token spent %s ago) should have been destroyed", v.ID, now.Sub(versions[i-1].Created))
		}
	}
	// Every version whose token was spent in the last 25 h is still there:
	// the newest and the four before it (spent 0, 8, 16 and 24 h ago).
	if len(versions) < 5 {
		t.Errorf("only %d versions kept; the last 25 h spent the tokens of 4 older ones", len(versions))
	}
	if len(versions) > 6 {
		t.Errorf("%d versions kept; pruning is not working", len(versions))
	}
	if mem := f.store.(*secrets.Memory); mem.ActiveVersions("fleet-tokens") != len(versions) {
		t.Error("listing and billing disagree")
	}
	if !f.chainValid() {
		t.Error("chain broken")
	}
}

func TestMigrateDoesNotRespendTheLegacyToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	f.add("tesla-refresh-token", f.sim.Login().RefreshToken)
	m := f.manager(nil)
	if res, err := m.Migrate(ctx); err != nil || res.Action != tokens.ActionMigrated {
		t.Fatalf("first migrate = %+v, %v", res, err)
	}
	for i := 0; i < 3; i++ {
		if res, err := m.Migrate(ctx); err != nil || res.Action != tokens.ActionNone {
			t.Fatalf("migrate %d = %+v, %v", i, res, err)
		}
	}
	if c := f.sim.Counters().TokenExchanges; c[fleetsim.OutcomeRefreshOK] != 1 || c[fleetsim.OutcomeGraceReuse] != 0 {
		t.Errorf("exchanges = %v, want one", c)
	}
}

func TestNoTokenInLogsOrErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	first := f.sim.Login()
	f.storePair(first, t0.Add(-time.Minute))
	m := f.manager(nil)
	var errs []string
	note := func(_ tokens.Result, err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	note(m.Ensure(ctx, tokens.EnsureOptions{}))
	f.sim.InjectFault(fleetsim.EndpointToken, fleetsim.Fault{Malformed: true})
	note(m.Ensure(ctx, tokens.EnsureOptions{Force: true}))
	f.store.(*secrets.Memory).FailNext("add", secrets.ErrUnavailable, 50)
	note(m.Ensure(ctx, tokens.EnsureOptions{Force: true}))
	f.store.(*secrets.Memory).FailNext("add", nil, 0)
	f.add("fleet-tokens", `{"access_token":"eyJ.half`)
	f.sim.Login()
	note(m.Ensure(ctx, tokens.EnsureOptions{Force: true}))
	note(m.Migrate(ctx))
	if len(errs) < 3 {
		t.Fatalf("expected several errors to inspect, got %v", errs)
	}
	values := []string{first.AccessToken, first.RefreshToken, fleetsim.DefaultClientSecret, f.sim.NewestRefreshToken()}
	versions, _ := f.store.Versions(ctx, "fleet-tokens")
	for _, v := range versions {
		if sv, err := f.store.Get(ctx, "fleet-tokens", v.ID); err == nil {
			if p, err := tokens.ParsePair(sv.Payload); err == nil {
				values = append(values, p.AccessToken, p.RefreshToken)
			}
		}
	}
	haystack := f.logs.String() + strings.Join(errs, "\n") + fmt.Sprint(m.Status())
	for _, v := range values {
		if len(v) > 8 && strings.Contains(haystack, v) {
			t.Errorf("token value (len %d) found in logs or errors", len(v))
		}
	}
	if !strings.Contains(f.logs.String(), "fingerprint") {
		t.Error("the log should show token fingerprints")
	}
}

// Two managers in separate OS processes on one file store race on an
// expired token: exactly one exchange, and the chain stays valid.
func TestTwoProcessesOnOneFileStore(t *testing.T) {
	if os.Getenv("TOKENS_HELPER_DIR") != "" {
		return // the helper process is TestHelperProcess
	}
	t.Parallel()
	dir := t.TempDir()
	// The helper processes run on the real clock: seed a pair that expired.
	sim := fleetsim.New(fleetsim.Options{})
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	sim.SetLatency(fleetsim.EndpointToken, 100*time.Millisecond)
	store, err := secrets.NewFile(dir, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := sim.Login()
	for name, v := range map[string]string{"tesla-client-id": fleetsim.DefaultClientID, "tesla-client-secret": fleetsim.DefaultClientSecret,
		"fleet-tokens": fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"expires_at":"2020-01-01T00:00:00Z"}`, p.AccessToken, p.RefreshToken)} {
		if _, err := store.Add(ctx, name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	outs := make([][]byte, 3)
	errs := make([]error, 3)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
			cmd.Env = append(os.Environ(), "TOKENS_HELPER_DIR="+dir, "TOKENS_HELPER_URL="+url)
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	actions := map[string]int{}
	for i := range outs {
		if errs[i] != nil {
			t.Fatalf("process %d: %v\n%s", i, errs[i], outs[i])
		}
		for _, a := range []string{"action=none", "action=refreshed"} {
			if strings.Contains(string(outs[i]), a) {
				actions[a]++
			}
		}
	}
	if c := sim.Counters().TokenExchanges; c[fleetsim.OutcomeRefreshOK] != 1 || c[fleetsim.OutcomeGraceReuse] != 0 {
		t.Errorf("exchanges across 3 processes = %v, want exactly one", c)
	}
	if actions["action=refreshed"] != 1 || actions["action=none"] != 2 {
		t.Errorf("actions = %v, want one refresh and two none", actions)
	}
	v, _ := store.Latest(ctx, "fleet-tokens")
	stored, err := tokens.ParsePair(v.Payload)
	if err != nil || v.ID != "2" || !sim.RefreshTokenAccepted(stored.RefreshToken) {
		t.Errorf("latest v%s, chain valid %v (%v)", v.ID, sim.RefreshTokenAccepted(stored.RefreshToken), err)
	}
}

// TestHelperProcess is one worker process of TestTwoProcessesOnOneFileStore.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("TOKENS_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	store, err := secrets.NewFile(dir, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	m := tokens.New(store, &tokens.Exchanger{TokenURL: os.Getenv("TOKENS_HELPER_URL") + "/oauth2/v3/token"}, clock.Real{}, nil, tokens.Config{})
	res, err := m.Ensure(context.Background(), tokens.EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("action=%s version=%s\n", res.Action, res.Version)
}

// When the stored token is dead (its grace ran out during a long store
// outage), the refresh token of the pair that could not be stored is tried.
func TestUnstoredPairIsALastResortCandidate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	f.storePair(f.sim.Login(), t0.Add(-time.Minute))
	mem := f.store.(*secrets.Memory)
	m := f.manager(nil)
	mem.FailNext("add", secrets.ErrUnavailable, 1000)
	if _, err := m.Ensure(ctx, tokens.EnsureOptions{}); !errors.Is(err, tokens.ErrStoreUnavailable) {
		t.Fatalf("err = %v", err)
	}
	mem.FailNext("add", nil, 0)
	f.clock.Advance(25 * time.Hour) // the stored token's grace is over
	res, err := m.Ensure(ctx, tokens.EnsureOptions{})
	if err != nil || res.Action != tokens.ActionMigrated || !f.chainValid() {
		t.Fatalf("Ensure = %+v, %v", res, err)
	}
	if p, _ := f.latest(); p.Source != "migrate:unstored" {
		t.Errorf("recovered from %q, want the unstored pair", p.Source)
	}
}
