// Package tokens owns the Tesla OAuth token pair: it reads the stored pair,
// refreshes it before it expires, recovers from Tesla's single-use refresh
// token rotation going wrong (crashes, lost writes, corrupt payloads), and
// persists the result — the single writer of the fleet-tokens secret. It
// knows nothing about HTTP: the worker's handlers, the CLI and the tests all
// call the same Manager.
//
// The files follow the concerns: this one holds the public surface and the
// flights; ensure.go decides and recovers (which refresh token to spend),
// persist.go writes what Tesla issued and prunes, lease.go is the writer
// lease across processes, store.go reads the store (never stepping back
// below a version already seen), status.go is the health seen from memory.
package tokens

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// Store is what the manager needs of a secret store (secrets.Store fits).
type Store interface {
	Latest(ctx context.Context, secret string) (secrets.Version, error)
	Get(ctx context.Context, secret, id string) (secrets.Version, error)
	Add(ctx context.Context, secret string, payload []byte) (string, error)
	Versions(ctx context.Context, secret string) ([]secrets.VersionInfo, error)
	Destroy(ctx context.Context, secret, id string) error
	TryLease(ctx context.Context, secret, holder string, ttl time.Duration) (secrets.Lease, error)
}

// TokenEndpoint spends a refresh token (the Exchanger fits).
type TokenEndpoint interface {
	Refresh(ctx context.Context, c Client, refreshToken string) (Issued, error)
}

// Config names the secrets and sets the policy. Zero values take defaults.
type Config struct {
	FleetSecret        string        // default "fleet-tokens"
	ClientIDSecret     string        // default "tesla-client-id"
	ClientSecretSecret string        // default "tesla-client-secret"
	LegacySecret       string        // default "tesla-refresh-token"
	RefreshBefore      time.Duration // refresh when less than this is left; default 30 min
	KeepVersions       int           // versions kept whatever their age; default 3
	// GraceKeep: a version whose refresh token was spent less than this ago
	// (its successor is younger) is never destroyed; default 25 h (Tesla's
	// grace is 24 h).
	GraceKeep time.Duration
	// RotateWithin: a refresh token Tesla answered without replacing it is
	// spent again once this long has passed since its first use, to get a
	// real rotation while Tesla's 24 h grace still holds; default 20 h.
	RotateWithin time.Duration
	// LeaseTTL is how long a holder that stopped renewing (crashed, starved)
	// blocks others. It is always more than FlightTimeout + PersistBudget,
	// the longest a flight can take, so a lease outlives its flight even
	// when no renewal gets through; default that sum plus 30 s.
	LeaseTTL time.Duration
	// LeaseRenewEvery: how often a running flight renews its lease; default LeaseTTL/3.
	LeaseRenewEvery  time.Duration
	LeaseWait        time.Duration // how long Ensure waits for another writer; default 60 s
	PersistBudget    time.Duration // how long a store write after a rotation is retried; default 30 s
	RetryBase        time.Duration // first backoff of a store retry; default 200 ms
	FlightTimeout    time.Duration // bound on one refresh flight; default 2 min
	MaxRecoveryTries int           // distinct older refresh tokens tried during recovery; default 10
	Holder           string        // lease holder id; default hostname-pid
}

func (c Config) withDefaults() Config {
	str := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	dur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	str(&c.FleetSecret, "fleet-tokens")
	str(&c.ClientIDSecret, "tesla-client-id")
	str(&c.ClientSecretSecret, "tesla-client-secret")
	str(&c.LegacySecret, "tesla-refresh-token")
	dur(&c.RefreshBefore, 30*time.Minute)
	dur(&c.GraceKeep, 25*time.Hour)
	dur(&c.RotateWithin, DefaultRotateWithin)
	dur(&c.LeaseWait, 60*time.Second)
	dur(&c.PersistBudget, 30*time.Second)
	dur(&c.RetryBase, 200*time.Millisecond)
	dur(&c.FlightTimeout, 2*time.Minute)
	if longest := c.FlightTimeout + c.PersistBudget; c.LeaseTTL <= longest {
		c.LeaseTTL = longest + 30*time.Second
	}
	dur(&c.LeaseRenewEvery, c.LeaseTTL/3)
	if c.KeepVersions <= 0 {
		c.KeepVersions = 3
	}
	if c.MaxRecoveryTries <= 0 {
		c.MaxRecoveryTries = 10
	}
	if c.Holder == "" {
		host, _ := os.Hostname()
		c.Holder = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return c
}

// DefaultRotateWithin is Config.RotateWithin's default.
const DefaultRotateWithin = 20 * time.Hour

// Action says what Ensure or Migrate did.
type Action string

// Actions.
const (
	ActionNone      Action = "none"
	ActionRefreshed Action = "refreshed"
	ActionMigrated  Action = "migrated"
)

// Legacy says what Migrate found in the legacy secret.
type Legacy string

// Legacy outcomes ("" when Migrate did not look).
const (
	LegacyAbsent   Legacy = "absent"   // no legacy secret, or it is empty
	LegacyAdopted  Legacy = "adopted"  // its token was spent now and the pair stored
	LegacyKnown    Legacy = "known"    // adopted before (or stored): not spent again
	LegacyRejected Legacy = "rejected" // Tesla no longer accepts it
)

// Result is the outcome of Ensure or Migrate. It carries no token.
type Result struct {
	Action    Action
	ExpiresAt time.Time
	Version   string
	// Rotated is false when Tesla answered a refresh without a new refresh
	// token (the one sent stays in use; see Config.RotateWithin).
	Rotated bool
	Legacy  Legacy
}

// EnsureOptions modify Ensure.
type EnsureOptions struct {
	Force bool // refresh even a valid pair
	// RejectedVersion names the version whose access token the Fleet API
	// refused (a reader's 401): refresh only if the store holds nothing
	// newer than it; a newer version is taken as it is (Force then does not
	// apply).
	RejectedVersion string
}

// Manager is the single writer of the fleet-tokens secret.
type Manager struct {
	store    Store
	endpoint TokenEndpoint
	clock    clock.Clock
	log      *zap.Logger
	cfg      Config
	flight   singleflight.Group
	writer   chan struct{} // one lease holder per process: see acquire

	mu      sync.Mutex
	client  *Client // cached client registration
	seen    seen    // the newest pair read or written (store.go)
	pending *Pair   // issued by Tesla, not yet stored
	health  health  // what Status reports (status.go)
	// rejectRefresh is when a refused access token last made us refresh.
	rejectRefresh time.Time
}

// A pair Tesla issued whose store write failed is kept as pending. It is not
// stored later as it is: while it waited, another instance may have spent the
// same stored refresh token again inside Tesla's grace, which cycles the
// pending pair out, and nothing in the store would tell. The next attempt
// spends the stored token again instead (safe inside the 24 h grace); the
// pending refresh token is only a recovery candidate, tried with a real
// exchange, for when the stored one is dead.

// New builds a Manager.
func New(store Store, endpoint TokenEndpoint, clk clock.Clock, logger *zap.Logger, cfg Config) *Manager {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Manager{store: store, endpoint: endpoint, clock: clk, log: logger, cfg: cfg.withDefaults(), writer: make(chan struct{}, 1)}
}

// Config returns the effective configuration.
func (m *Manager) Config() Config { return m.cfg }

// Ensure makes sure the stored pair is valid for at least RefreshBefore:
// (1) read it, (2) refresh it if needed, (3) recover from older versions or
// the legacy secret if Tesla rejects it, (4) persist. Concurrent calls in one
// process share one flight; across processes the store's lease serialises.
// The caller's cancellation does not cut a flight short: once Tesla may have
// rotated the token, the result must be stored.
func (m *Manager) Ensure(ctx context.Context, opts EnsureOptions) (Result, error) {
	key := "ensure"
	switch {
	case opts.RejectedVersion != "":
		key = "rejected-version:" + opts.RejectedVersion
	case opts.Force:
		key = "force"
	}
	w := want{force: opts.Force, rejectedVersion: opts.RejectedVersion}
	return m.fly(ctx, key, func(fctx context.Context) (Result, error) { return m.ensure(fctx, w) })
}

// TokenRejected is told that the Fleet API refused accessToken (HTTP 401).
// If the store holds another pair by now (another instance, a revision
// overlapping a deploy or `fleetctl refresh --force` rotated it), that one
// is used from now on; if it still holds the refused one, the pair is
// refreshed. It returns once AccessToken hands out another token, or with
// the reason none can be had. Concurrent calls for one token share one
// flight (fleet.TokenRenewer).
func (m *Manager) TokenRejected(ctx context.Context, accessToken string) error {
	if cur, ok := m.Current(); ok && cur.AccessToken != accessToken && cur.FreshAt(m.clock.Now(), 0) {
		return nil // another caller's rejection already moved us on
	}
	m.log.Warn("the Fleet API refused the access token; re-reading the store")
	key := "rejected:" + HashToken(accessToken)
	_, err := m.fly(ctx, key, func(fctx context.Context) (Result, error) {
		// A Fleet API that refuses every token would otherwise cost a
		// rotation per call: one refresh for refused tokens a minute.
		m.mu.Lock()
		recent := !m.rejectRefresh.IsZero() && m.clock.Now().Sub(m.rejectRefresh) < time.Minute
		m.mu.Unlock()
		if recent {
			cur, ver, err := m.read(fctx, false)
			if err == nil && cur.AccessToken != accessToken && cur.FreshAt(m.clock.Now(), 0) {
				return none(cur, ver), nil
			}
			return Result{}, fmt.Errorf("%w: the Fleet API refuses a token issued moments ago; not refreshing again so soon", ErrUpstreamUnavailable)
		}
		res, err := m.ensure(fctx, want{rejected: accessToken})
		if err == nil && res.Action != ActionNone {
			m.mu.Lock()
			m.rejectRefresh = m.clock.Now()
			m.mu.Unlock()
		}
		return res, err
	})
	if err != nil {
		return err
	}
	if cur, ok := m.Current(); !ok || cur.AccessToken == accessToken {
		return fmt.Errorf("%w: the store still holds the refused access token", ErrUpstreamUnavailable)
	}
	return nil
}

// Migrate runs the recovery step on demand: adopt the legacy secret's
// refresh token when it is one we have not adopted or stored yet, else make
// sure the stored chain works, falling back to older versions and the
// legacy token. Result.Legacy says what it found in the legacy secret.
func (m *Manager) Migrate(ctx context.Context) (Result, error) {
	return m.fly(ctx, "migrate", m.migrate)
}

// AccessToken returns a valid access token, refreshing first if needed. It
// is for in-process consumers (the charging cycle); it is never sent to a
// client of the worker.
func (m *Manager) AccessToken(ctx context.Context) (string, error) {
	// A pair this process read or wrote and that is still fresh serves
	// without a store read: a charging cycle asks once per Fleet call.
	if cur, ver, ok := m.currentVersion(); ok && m.satisfied(cur, ver, want{}, m.clock.Now()) {
		return cur.AccessToken, nil
	}
	if _, err := m.Ensure(ctx, EnsureOptions{}); err != nil {
		return "", err
	}
	cur, ok := m.Current()
	if !ok || !cur.Usable() {
		return "", fmt.Errorf("%w: no usable pair after ensure", ErrStoreUnavailable)
	}
	return cur.AccessToken, nil
}

func (m *Manager) fly(ctx context.Context, key string, fn func(context.Context) (Result, error)) (Result, error) {
	ch := m.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.FlightTimeout)
		defer cancel()
		res, err := fn(fctx)
		m.noteOutcome(err)
		return res, err
	})
	select {
	case r := <-ch:
		res, _ := r.Val.(Result)
		return res, r.Err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("waiting for the token refresh: %w", ctx.Err())
	}
}

// Login stores the first pair of a new chain, from an authorization-code
// exchange (fleetctl login). A login cycles out the refresh token a worker
// may be spending right now, so it runs under the same lease as a refresh,
// and its result is persisted the same way: retried, and never reported as
// stored unless it was. exchange runs only once the lease is held.
func (m *Manager) Login(ctx context.Context, exchange func(context.Context) (Issued, error)) (Result, error) {
	return m.fly(ctx, "login", func(fctx context.Context) (Result, error) {
		lease, _, err := m.acquire(fctx, want{force: true})
		if err != nil {
			return Result{}, err
		}
		defer m.release(lease)
		cur, ver, rerr := m.read(fctx, true)
		if errors.Is(rerr, ErrStoreUnavailable) {
			return Result{}, rerr
		}
		if err := lease.checkRecent(fctx, recentProof); err != nil {
			return Result{}, err
		}
		iss, err := exchange(fctx)
		if err != nil {
			return Result{}, err
		}
		now := m.clock.Now()
		pair := Pair{
			AccessToken: iss.AccessToken, RefreshToken: iss.RefreshToken, ExpiresAt: m.expiry(iss, now),
			RefreshTokenCreatedAt: now, TokenType: iss.TokenType, Scope: iss.Scope, UpdatedAt: now, Source: "login",
			// A new chain does not make an adopted legacy token new again.
			AdoptedLegacy: m.adoptions(cur),
		}
		m.mu.Lock()
		m.health.reauth = false
		m.mu.Unlock()
		res, err := m.persist(fctx, lease, pair, ver, Pair{})
		res.Rotated = true
		return res, err
	})
}

func (m *Manager) clientRegistration(ctx context.Context) (Client, error) {
	m.mu.Lock()
	c := m.client
	m.mu.Unlock()
	if c != nil {
		return *c, nil
	}
	id, err := m.store.Latest(ctx, m.cfg.ClientIDSecret)
	if err != nil {
		return Client{}, clientErr(m.cfg.ClientIDSecret, err)
	}
	secret, err := m.store.Latest(ctx, m.cfg.ClientSecretSecret)
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return Client{}, clientErr(m.cfg.ClientSecretSecret, err)
	}
	out := Client{ID: trimToken(id.Payload), Secret: trimToken(secret.Payload)}
	if out.ID == "" {
		return Client{}, fmt.Errorf("%w: secret %s is empty", ErrMisconfigured, m.cfg.ClientIDSecret)
	}
	m.mu.Lock()
	m.client = &out
	m.mu.Unlock()
	return out, nil
}

func (m *Manager) forgetClient() {
	m.mu.Lock()
	m.client = nil
	m.mu.Unlock()
}

func clientErr(name string, err error) error {
	if errors.Is(err, secrets.ErrNotFound) {
		return fmt.Errorf("%w: secret %s does not exist (create it with the app's client id/secret)", ErrMisconfigured, name)
	}
	return storeErr("read", name, err)
}

// trimToken reads a raw secret value: operators paste them with newlines.
func trimToken(b []byte) string { return strings.TrimSpace(string(b)) }

func isTransientStore(err error) bool { return errors.Is(err, secrets.ErrUnavailable) }

func storeErr(op, secret string, err error) error {
	return fmt.Errorf("%w: %s %s: %w", ErrStoreUnavailable, op, secret, err)
}

func deref(r *Result) Result {
	if r == nil {
		return Result{}
	}
	return *r
}
