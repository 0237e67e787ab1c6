package tokens_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/secrets/secretmanager"
	"github.com/offpeak-charging/offpeak/internal/secrets/smfake"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// The tests of this file are the holes of issue 14, each against the
// simulator on every store backend where it applies: the memory store, the
// file store, and the real Secret Manager client on smfake.

// backend is one kind of store for a fixture.
type backend struct {
	name string
	open func(t *testing.T, clk clock.Clock) (secrets.Store, *backendHandle)
}

// backendHandle reaches into the store behind a fixture.
type backendHandle struct {
	mem  *secrets.Memory
	dir  string         // file
	fake *smfake.Server // gcp
}

const project = "demo-project"

var allBackends = []backend{
	{"memory", func(t *testing.T, clk clock.Clock) (secrets.Store, *backendHandle) {
		m := secrets.NewMemory(clk)
		return m, &backendHandle{mem: m}
	}},
	{"file", func(t *testing.T, clk clock.Clock) (secrets.Store, *backendHandle) {
		dir := t.TempDir()
		f, err := secrets.NewFile(dir, clk)
		if err != nil {
			t.Fatal(err)
		}
		return f, &backendHandle{dir: dir}
	}},
	{"gcp", func(t *testing.T, clk clock.Clock) (secrets.Store, *backendHandle) {
		fake := smfake.New()
		fake.SetClock(clk)
		if _, err := fake.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fake.Stop)
		for _, id := range []string{"fleet-tokens", "tesla-client-id", "tesla-client-secret", "tesla-refresh-token"} {
			if err := fake.CreateSecret(project, id); err != nil {
				t.Fatal(err)
			}
		}
		g, err := secretmanager.New(context.Background(), project, fake.ClientOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		g.Clock = clk
		t.Cleanup(func() { _ = g.Close() })
		return g, &backendHandle{fake: fake}
	}},
}

// forEachBackend runs test on a fresh fixture per backend, in parallel.
func forEachBackend(t *testing.T, names []string, test func(t *testing.T, f *fixture, h *backendHandle)) {
	t.Helper()
	for _, b := range allBackends {
		if len(names) > 0 && !slices.Contains(names, b.name) {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			var h *backendHandle
			f := newFixture(t, func(clk clock.Clock) secrets.Store {
				s, handle := b.open(t, clk)
				h = handle
				return s
			})
			test(t, f, h)
		})
	}
}

// group is forEachBackend under a named subtest.
func group(t *testing.T, name string, backends []string, test func(t *testing.T, f *fixture, h *backendHandle)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		forEachBackend(t, backends, test)
	})
}

func (f *fixture) exchanges() map[string]int { return f.sim.Counters().TokenExchanges }

// issue spends refreshToken at the simulator directly (another client of
// Tesla's token endpoint), returning the pair as JSON to store.
func (f *fixture) issue(refreshToken string, exp time.Time) (tokens.Issued, string) {
	f.t.Helper()
	ex := &tokens.Exchanger{TokenURL: f.url + "/oauth2/v3/token"}
	iss, err := ex.Refresh(context.Background(), tokens.Client{ID: fleetsim.DefaultClientID, Secret: fleetsim.DefaultClientSecret}, refreshToken)
	if err != nil {
		f.t.Fatal(err)
	}
	payload, err := tokens.Pair{AccessToken: iss.AccessToken, RefreshToken: iss.RefreshToken, ExpiresAt: exp}.Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	return iss, string(payload)
}

// Issue 14 (6): an answer without a new refresh token. Here Tesla rotated
// but the answer lost the new token (the oauth2 library then copies the
// spent one in): the stored token is now only inside Tesla's 24 h grace,
// and the access token claims 48 h. The manager must notice (compare with
// the token sent), say so, and spend the token again before its grace ends
// — not store it as if rotated and find it dead when the access token runs
// out.
func TestAnswerWithoutANewRefreshToken(t *testing.T) {
	t.Parallel()
	forEachBackend(t, nil, func(t *testing.T, f *fixture, _ *backendHandle) {
		ctx := context.Background()
		login := f.sim.Login()
		f.storePair(login, t0.Add(-time.Minute))
		f.sim.InjectFault(fleetsim.EndpointToken, fleetsim.Fault{HoldAfterCommit: time.Millisecond, Status: 200,
			Body: `{"access_token":"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln","token_type":"Bearer","expires_in":172800}`})
		m := f.manager(nil)
		res, err := m.Ensure(ctx, tokens.EnsureOptions{})
		if err != nil || res.Action != tokens.ActionRefreshed {
			t.Fatalf("Ensure = %+v, %v", res, err)
		}
		if res.Rotated {
			t.Error("Result.Rotated = true for an answer without a new refresh token")
		}
		p, _ := f.latest()
		if p.RefreshToken != login.RefreshToken || !p.RefreshTokenUsedAt.Equal(t0) {
			t.Errorf("stored refresh token changed or its first use not recorded: used_at %s", p.RefreshTokenUsedAt)
		}
		if st := m.Status(); !st.UnrotatedSince.Equal(t0) {
			t.Errorf("Status.UnrotatedSince = %s, want %s", st.UnrotatedSince, t0)
		}
		if !strings.Contains(f.logs.String(), "without a new refresh token") {
			t.Error("no log line says the refresh token was not rotated")
		}

		// 21 h later the access token is still good for 27 h, but the
		// refresh token's grace ends in 3 h: it is spent again now.
		f.clock.Advance(21 * time.Hour)
		if _, err := m.AccessToken(ctx); err != nil {
			t.Fatal(err)
		}
		if n := f.exchanges()[fleetsim.OutcomeGraceReuse]; n != 1 {
			t.Errorf("grace reuses = %d, want 1 (the unrotated token spent again inside its grace)", n)
		}
		f.clock.Advance(4 * time.Hour) // past the first use's 24 h
		if !f.chainValid() {
			t.Fatal("the stored refresh token died with its grace")
		}
		if p, _ := f.latest(); !p.RefreshTokenUsedAt.IsZero() {
			t.Error("the rotated pair still carries refresh_token_used_at")
		}
	})
}

// Issue 14 (7): pruning keeps every version whose refresh token was spent
// less than 25 h ago, whatever TOKEN_KEEP_VERSIONS says: after 30 idle
// hours the version before the newest is old, but its token was spent just
// now and is the recovery candidate inside Tesla's grace.
func TestPruneKeepsTokensSpentInsideTheGrace(t *testing.T) {
	t.Parallel()
	forEachBackend(t, nil, func(t *testing.T, f *fixture, _ *backendHandle) {
		ctx := context.Background()
		f.storePair(f.sim.Login(), t0.Add(8*time.Hour)) // v1
		m := f.manager(func(c *tokens.Config) { c.KeepVersions = 1 })
		f.clock.Advance(8 * time.Hour)
		if res, err := m.Ensure(ctx, tokens.EnsureOptions{}); err != nil || res.Version != "2" {
			t.Fatalf("refresh = %+v, %v", res, err)
		}
		v2, _ := f.latest()
		f.clock.Advance(30 * time.Hour) // idle: nobody asked
		if res, err := m.Ensure(ctx, tokens.EnsureOptions{}); err != nil || res.Version != "3" {
			t.Fatalf("refresh = %+v, %v", res, err)
		}
		if _, err := f.store.Get(ctx, "fleet-tokens", "2"); err != nil {
			t.Fatalf("version 2, whose token was spent just now, was pruned: %v", err)
		}
		if !f.sim.RefreshTokenAccepted(v2.RefreshToken) {
			t.Error("version 2's token should be inside Tesla's grace")
		}
		if _, err := f.store.Get(ctx, "fleet-tokens", "1"); !errors.Is(err, secrets.ErrVersionUnavailable) && !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("version 1 (its token spent 30 h ago) kept: %v", err)
		}
		// Once version 3 is 25 h old, version 2 may go.
		f.clock.Advance(25 * time.Hour)
		if destroyed, err := m.Prune(ctx); err != nil || strings.Join(destroyed, ",") != "2" {
			t.Errorf("prune 25 h later destroyed %v (%v), want version 2", destroyed, err)
		}
	})
}

// Issue 14 (8): the record of an adopted legacy token outlives pruning
// (every version carries it), so Migrate never spends it again; and with
// no legacy secret at all Migrate says so instead of trying an empty token.
func TestMigrateRemembersAdoptionPastPruning(t *testing.T) {
	t.Parallel()
	group(t, "adopted once, pruned, not spent again", nil, func(t *testing.T, f *fixture, _ *backendHandle) {
		ctx := context.Background()
		f.add("tesla-refresh-token", f.sim.Login().RefreshToken)
		m := f.manager(func(c *tokens.Config) { c.KeepVersions = 1 })
		res, err := m.Migrate(ctx)
		if err != nil || res.Action != tokens.ActionMigrated || res.Legacy != tokens.LegacyAdopted {
			t.Fatalf("first migrate = %+v, %v", res, err)
		}
		// Three days of refreshes prune the version that came from it.
		for range 9 {
			f.clock.Advance(8 * time.Hour)
			if _, err := m.Ensure(ctx, tokens.EnsureOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.store.Get(ctx, "fleet-tokens", "1"); err == nil {
			t.Fatal("version 1 was not pruned: the test proves nothing")
		}
		before := f.exchanges()
		for _, fresh := range []*tokens.Manager{m, f.manager(nil)} { // warm, and a new process
			res, err := fresh.Migrate(ctx)
			if err != nil || res.Action != tokens.ActionNone || res.Legacy != tokens.LegacyKnown {
				t.Fatalf("migrate after pruning = %+v, %v", res, err)
			}
		}
		if after := f.exchanges(); after[fleetsim.OutcomeLoginRequired] != before[fleetsim.OutcomeLoginRequired] ||
			after[fleetsim.OutcomeGraceReuse] != before[fleetsim.OutcomeGraceReuse] {
			t.Errorf("exchanges %v → %v: the adopted legacy token was spent again", before, after)
		}
	})
	group(t, "no legacy secret", nil, func(t *testing.T, f *fixture, _ *backendHandle) {
		ctx := context.Background()
		f.storePair(f.sim.Login(), t0.Add(8*time.Hour))
		res, err := f.manager(nil).Migrate(ctx)
		if err != nil || res.Action != tokens.ActionNone || res.Legacy != tokens.LegacyAbsent {
			t.Fatalf("migrate without a legacy secret = %+v, %v", res, err)
		}
		if n := len(f.exchanges()); n != 0 {
			t.Errorf("token requests = %v, want none", f.exchanges())
		}
	})
}

// Issue 14 (9): recovery counts distinct tokens. Ten copies of one dead
// pair (ambiguous retried writes) sit above a good token inside Tesla's
// grace; the good one is found.
func TestRecoveryCountsDistinctTokens(t *testing.T) {
	t.Parallel()
	forEachBackend(t, nil, func(t *testing.T, f *fixture, _ *backendHandle) {
		ctx := context.Background()
		login := f.sim.Login()
		f.storePair(login, t0.Add(-time.Minute)) // v1: R0
		_, dead := f.issue(login.RefreshToken, t0.Add(-time.Minute))
		f.issue(login.RefreshToken, t0.Add(-time.Minute)) // R0 again inside the grace: the copied pair is cycled out
		for range 10 {
			f.add("fleet-tokens", dead) // v2…v11
		}
		res, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{})
		if err != nil || res.Action != tokens.ActionMigrated || res.Version != "12" {
			t.Fatalf("Ensure = %+v, %v; want recovery from version 1", res, err)
		}
		if !f.chainValid() {
			t.Error("chain broken")
		}
		if p, _ := f.latest(); p.Source != "migrate:version-1" {
			t.Errorf("recovered from %q, want version 1", p.Source)
		}
	})
}

// Issue 14 (9): a write that failed ambiguously (deadline after the store
// committed) is looked up before it is retried: no duplicate version.
func TestAmbiguousWriteIsLookedUpBeforeRetrying(t *testing.T) {
	t.Parallel()
	forEachBackend(t, []string{"memory", "gcp"}, func(t *testing.T, f *fixture, h *backendHandle) {
		ctx := context.Background()
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		if h.fake != nil {
			h.fake.FailNextAfterCommit("AddSecretVersion", codes.DeadlineExceeded, 1)
		} else {
			h.mem.FailNextAfterCommit(secrets.OpAdd, secrets.ErrUnavailable, 1)
		}
		res, err := f.manager(nil).Ensure(ctx, tokens.EnsureOptions{})
		if err != nil || res.Version != "2" {
			t.Fatalf("Ensure = %+v, %v; want version 2 found after the ambiguous failure", res, err)
		}
		if _, err := f.store.Get(ctx, "fleet-tokens", "3"); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("version 3 exists (%v): the ambiguous write was retried into a duplicate", err)
		}
		if !f.chainValid() {
			t.Error("chain broken")
		}
	})
}

// Issue 14 (5): a recreated secret (deleted to drop billed versions, then a
// new login) restarts its numbers; a warm manager must follow it, not keep
// handing out the pair it saw at a higher number.
func TestRecreatedSecretIsFollowed(t *testing.T) {
	t.Parallel()
	forEachBackend(t, nil, func(t *testing.T, f *fixture, h *backendHandle) {
		ctx := context.Background()
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		m := f.manager(nil)
		for range 3 {
			if _, err := m.Ensure(ctx, tokens.EnsureOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
		}
		if st := m.Status(); st.Version != "4" {
			t.Fatalf("version = %s, want 4", st.Version)
		}
		switch {
		case h.mem != nil:
			h.mem.Delete("fleet-tokens")
		case h.dir != "":
			if err := os.RemoveAll(filepath.Join(h.dir, "fleet-tokens")); err != nil {
				t.Fatal(err)
			}
		default:
			if err := h.fake.DeleteSecret(project, "fleet-tokens"); err != nil {
				t.Fatal(err)
			}
			if err := h.fake.CreateSecret(project, "fleet-tokens"); err != nil {
				t.Fatal(err)
			}
		}
		f.clock.Advance(time.Hour)
		login := f.sim.Login() // `fleetctl login` into the new secret
		f.storePair(login, f.clock.Now().Add(8*time.Hour))
		f.clock.Advance(7*time.Hour + time.Minute) // the old pair has expired, the new one has 59 min left
		at, err := m.AccessToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if at != login.AccessToken {
			t.Error("the warm manager handed out its old pair instead of the recreated secret's")
		}
		if st := m.Status(); st.Version != "1" || st.State != tokens.StateValid {
			t.Errorf("status = %s %s, want version 1 valid", st.Version, st.State)
		}
	})
}

// stallEndpoint lets a test hold one refresh after Tesla answered it: the
// instance that made it stalls (CPU starved on Cloud Run, a GC pause).
type stallEndpoint struct {
	inner   tokens.TokenEndpoint
	stalled chan struct{} // closed once the held refresh got Tesla's answer
	resume  chan struct{}
	once    sync.Once
}

func newStall(inner tokens.TokenEndpoint) *stallEndpoint {
	return &stallEndpoint{inner: inner, stalled: make(chan struct{}), resume: make(chan struct{})}
}

func (s *stallEndpoint) Refresh(ctx context.Context, c tokens.Client, rt string) (tokens.Issued, error) {
	iss, err := s.inner.Refresh(ctx, c, rt)
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.stalled)
		<-s.resume
	}
	return iss, err
}

// renewCounter counts lease renewals.
type renewCounter struct {
	tokens.Store
	renewals atomic.Int64
}

func (r *renewCounter) TryLease(ctx context.Context, secret, holder string, ttl time.Duration) (secrets.Lease, error) {
	l, err := r.Store.TryLease(ctx, secret, holder, ttl)
	if err != nil {
		return nil, err
	}
	return &countedLease{Lease: l, r: r}, nil
}

type countedLease struct {
	secrets.Lease
	r *renewCounter
}

func (l *countedLease) Renew(ctx context.Context) error {
	l.r.renewals.Add(1)
	return l.Lease.Renew(ctx)
}

// Issue 14 (1): a flight that stalls longer than the lease. A spends R1 and
// stalls; the lease runs out; B takes it, spends R1 again inside the grace
// and stores its pair. When A resumes it must not store its pair (Tesla
// cycled it out with B's exchange): it checks that it still holds the
// lease and that no version was added since it started. And while A's
// renewals do get through, B cannot take the lease at all.
func TestStalledFlightDoesNotWriteAfterLosingTheLease(t *testing.T) {
	t.Parallel()
	group(t, "renewals stalled too: the lease is lost", []string{"memory", "gcp"}, func(t *testing.T, f *fixture, _ *backendHandle) {
		ctx := context.Background()
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		stall := newStall(&tokens.Exchanger{TokenURL: f.url + "/oauth2/v3/token"})
		// A's renewals (every LeaseTTL/3 of real time) do not come while
		// the test moves the clock: A is as starved as a throttled instance.
		a := tokens.New(f.store, stall, f.clock, nil, tokens.Config{Holder: "instance-a", RetryBase: time.Millisecond,
			PersistBudget: time.Second, LeaseWait: 10 * time.Second})
		b := f.manager(func(c *tokens.Config) { c.Holder = "instance-b" })

		done := make(chan error, 1)
		go func() { _, err := a.Ensure(ctx, tokens.EnsureOptions{}); done <- err }()
		<-stall.stalled
		// Long enough for any client to judge A's lease over.
		f.clock.Advance(2*a.Config().LeaseTTL + time.Minute)
		res, err := b.Ensure(ctx, tokens.EnsureOptions{})
		if err != nil || res.Action != tokens.ActionRefreshed {
			t.Fatalf("B's refresh while A stalls = %+v, %v", res, err)
		}
		close(stall.resume)
		if err := <-done; !errors.Is(err, tokens.ErrBusy) {
			t.Errorf("A after resuming: %v, want ErrBusy (the lease was lost)", err)
		}
		if _, id := f.latest(); id != "2" {
			t.Errorf("latest = version %s, want B's version 2 only", id)
		}
		if !f.chainValid() {
			t.Fatal("the stalled flight stored a pair Tesla had cycled out")
		}
	})
	group(t, "renewals go on: the lease is kept", []string{"memory", "gcp"}, func(t *testing.T, f *fixture, _ *backendHandle) {
		ctx := context.Background()
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		stall := newStall(&tokens.Exchanger{TokenURL: f.url + "/oauth2/v3/token"})
		counted := &renewCounter{Store: f.store}
		a := tokens.New(counted, stall, f.clock, nil, tokens.Config{Holder: "instance-a", RetryBase: time.Millisecond,
			PersistBudget: time.Second, LeaseRenewEvery: 2 * time.Millisecond})
		b := f.manager(func(c *tokens.Config) { c.Holder = "instance-b"; c.LeaseWait = 30 * time.Second })

		done := make(chan error, 1)
		go func() { _, err := a.Ensure(ctx, tokens.EnsureOptions{}); done <- err }()
		<-stall.stalled
		f.clock.Advance(2*a.Config().LeaseTTL + time.Minute)
		// A's renewer runs while A waits on Tesla: wait for one renewal
		// after the jump (the real time it takes is a few milliseconds).
		deadline := time.Now().Add(5 * time.Second)
		for n := counted.renewals.Load(); counted.renewals.Load() < n+2; {
			if time.Now().After(deadline) {
				close(stall.resume)
				t.Fatal("the lease was not renewed while the flight ran")
			}
			time.Sleep(time.Millisecond)
		}
		bres := make(chan tokens.Result, 1)
		go func() { r, _ := b.Ensure(ctx, tokens.EnsureOptions{}); bres <- r }()
		time.Sleep(20 * time.Millisecond) // B is waiting for the lease
		close(stall.resume)
		if err := <-done; err != nil {
			t.Fatalf("A: %v", err)
		}
		if r := <-bres; r.Action != tokens.ActionNone {
			t.Errorf("B = %+v, want none (A's pair stored while B waited)", r)
		}
		if c := f.exchanges(); c[fleetsim.OutcomeRefreshOK] != 1 || c[fleetsim.OutcomeGraceReuse] != 0 {
			t.Errorf("exchanges = %v, want exactly A's", c)
		}
		if !f.chainValid() {
			t.Error("chain broken")
		}
	})
}

// Issue 14 (3): latest is not read-your-writes. With Secret Manager's
// latest and listing lagging, the instance that just stored a version, and
// another one under the lease, must not step back to the version before and
// spend its refresh token again.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	forEachBackend(t, []string{"memory", "gcp"}, func(t *testing.T, f *fixture, h *backendHandle) {
		ctx := context.Background()
		f.storePair(f.sim.Login(), t0.Add(-time.Minute))
		f.clock.Advance(time.Hour)
		if h.fake != nil {
			h.fake.SetLag(10 * time.Minute)
		} else {
			h.mem.SetLag(10 * time.Minute)
		}
		a := f.manager(func(c *tokens.Config) { c.Holder = "instance-a" })
		if res, err := a.Ensure(ctx, tokens.EnsureOptions{}); err != nil || res.Version != "2" {
			t.Fatalf("first refresh = %+v, %v", res, err)
		}
		if v, err := f.store.Latest(ctx, "fleet-tokens"); err != nil || v.ID != "1" {
			t.Fatalf("latest = %s %v: the store does not lag, the test proves nothing", v.ID, err)
		}
		// The same instance again, and a cold one: each must spend version
		// 2's token, never version 1's again.
		if res, err := a.Ensure(ctx, tokens.EnsureOptions{Force: true}); err != nil || res.Version != "3" {
			t.Fatalf("A's forced refresh = %+v, %v", res, err)
		}
		if h.fake != nil {
			// A cold client cannot take the lease while the secret's
			// metadata lags behind A's release (its etag is stale: safe,
			// and it waits); let that part converge, latest still lags.
			h.fake.SetMetadataLag(0)
		}
		if res, err := f.manager(func(c *tokens.Config) { c.Holder = "instance-b" }).Ensure(ctx, tokens.EnsureOptions{Force: true}); err != nil || res.Version != "4" {
			t.Fatalf("B's forced refresh = %+v, %v", res, err)
		}
		if c := f.exchanges(); c[fleetsim.OutcomeGraceReuse] != 0 || c[fleetsim.OutcomeRefreshOK] != 3 {
			t.Errorf("exchanges = %v: a refresh token was spent again", c)
		}
		v, err := f.store.Get(ctx, "fleet-tokens", "4")
		if err != nil {
			t.Fatal(err)
		}
		p, _ := tokens.ParsePair(v.Payload)
		if !f.sim.RefreshTokenAccepted(p.RefreshToken) || p.RefreshToken != f.sim.NewestRefreshToken() {
			t.Error("version 4 is not Tesla's newest")
		}
	})
}

// Issue 14 (4): the worker's 401 path. A refused access token makes the
// manager re-read the store: another process's newer pair is used as it
// is; the same pair is refreshed; and a Fleet API that refuses every token
// costs one refresh a minute, not one per call.
func TestTokenRejected(t *testing.T) {
	t.Parallel()
	forEachBackend(t, nil, func(t *testing.T, f *fixture, _ *backendHandle) {
		ctx := context.Background()
		f.storePair(f.sim.Login(), t0.Add(8*time.Hour))
		m := f.manager(nil)
		first, err := m.AccessToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Another process rotates (fleetctl refresh --force).
		if _, err := f.manager(func(c *tokens.Config) { c.Holder = "fleetctl" }).Ensure(ctx, tokens.EnsureOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		if err := m.TokenRejected(ctx, first); err != nil {
			t.Fatalf("TokenRejected after another process rotated: %v", err)
		}
		second, _ := m.AccessToken(ctx)
		if second == first || f.exchanges()[fleetsim.OutcomeRefreshOK] != 1 {
			t.Fatalf("the other process's pair was not picked up (exchanges %v)", f.exchanges())
		}
		// The store holds the refused token itself: one refresh.
		if err := m.TokenRejected(ctx, second); err != nil {
			t.Fatalf("TokenRejected of the stored token: %v", err)
		}
		third, _ := m.AccessToken(ctx)
		if third == second || f.exchanges()[fleetsim.OutcomeRefreshOK] != 2 {
			t.Fatalf("the refused stored token was not refreshed (exchanges %v)", f.exchanges())
		}
		// Refused again at once: no second refresh within the minute.
		if err := m.TokenRejected(ctx, third); !errors.Is(err, tokens.ErrUpstreamUnavailable) {
			t.Fatalf("a second refusal at once: %v, want ErrUpstreamUnavailable", err)
		}
		if n := f.exchanges()[fleetsim.OutcomeRefreshOK]; n != 2 {
			t.Errorf("refreshes = %d, want 2", n)
		}
		f.clock.Advance(time.Minute)
		if err := m.TokenRejected(ctx, third); err != nil {
			t.Fatalf("a refusal a minute later: %v", err)
		}
		if !f.chainValid() {
			t.Error("chain broken")
		}
	})
}
