// Package tokens owns the Tesla OAuth token pair: it reads the stored pair,
// refreshes it before it expires, recovers from Tesla's single-use refresh
// token rotation going wrong (crashes, lost writes, corrupt payloads), and
// persists the result — the single writer of the fleet-tokens secret. It
// knows nothing about HTTP: the worker's handlers, the CLI and the tests all
// call the same Manager.
package tokens

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/offpeak-charging/offpeak/internal/logging"
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

// Clock tells the time; tests and the simulated year move it by hand.
type Clock interface{ Now() time.Time }

// Config names the secrets and sets the policy. Zero values take defaults.
type Config struct {
	FleetSecret        string        // default "fleet-tokens"
	ClientIDSecret     string        // default "tesla-client-id"
	ClientSecretSecret string        // default "tesla-client-secret"
	LegacySecret       string        // default "tesla-refresh-token"
	RefreshBefore      time.Duration // refresh when less than this is left; default 30 min
	KeepVersions       int           // versions kept whatever their age; default 3
	GraceKeep          time.Duration // versions younger than this are never destroyed; default 25 h (Tesla's grace is 24 h)
	LeaseTTL           time.Duration // how long a crashed holder can block others; default 90 s
	LeaseWait          time.Duration // how long Ensure waits for another writer; default 60 s
	PersistBudget      time.Duration // how long a store write after a rotation is retried; default 30 s
	RetryBase          time.Duration // first backoff of a store retry; default 200 ms
	FlightTimeout      time.Duration // bound on one refresh flight; default 2 min
	MaxRecoveryTries   int           // older versions tried during recovery; default 10
	Holder             string        // lease holder id; default hostname-pid
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
	dur(&c.LeaseTTL, 90*time.Second)
	dur(&c.LeaseWait, 60*time.Second)
	dur(&c.PersistBudget, 30*time.Second)
	dur(&c.RetryBase, 200*time.Millisecond)
	dur(&c.FlightTimeout, 2*time.Minute)
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

// Action says what Ensure or Migrate did.
type Action string

// Actions.
const (
	ActionNone      Action = "none"
	ActionRefreshed Action = "refreshed"
	ActionMigrated  Action = "migrated"
)

// Result is the outcome of Ensure or Migrate. It carries no token.
type Result struct {
	Action    Action
	ExpiresAt time.Time
	Version   string
}

// EnsureOptions modify Ensure.
type EnsureOptions struct {
	Force bool // refresh even a valid pair
}

// Manager is the single writer of the fleet-tokens secret.
type Manager struct {
	store    Store
	endpoint TokenEndpoint
	clock    Clock
	log      *zap.Logger
	cfg      Config
	flight   singleflight.Group

	mu        sync.Mutex
	client    *Client       // cached client registration
	current   *Pair         // last pair seen in or written to the store
	curVer    string        // its version
	pending   *Pair         // issued by Tesla, not yet stored
	writer    chan struct{} // one lease holder per process: see acquire
	checked   time.Time
	missing   bool
	reauth    bool
	lastError string
	lastRefr  time.Time
}

// A pair Tesla issued whose store write failed is kept as pending. It is not
// stored later as it is: while it waited, another instance may have spent the
// same stored refresh token again inside Tesla's grace, which cycles the
// pending pair out, and nothing in the store would tell. The next attempt
// spends the stored token again instead (safe inside the 24 h grace); the
// pending refresh token is only a recovery candidate, tried with a real
// exchange, for when the stored one is dead.

// New builds a Manager.
func New(store Store, endpoint TokenEndpoint, clock Clock, logger *zap.Logger, cfg Config) *Manager {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Manager{store: store, endpoint: endpoint, clock: clock, log: logger, cfg: cfg.withDefaults(), writer: make(chan struct{}, 1)}
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
	if opts.Force {
		key = "force"
	}
	return m.fly(ctx, key, func(fctx context.Context) (Result, error) { return m.ensure(fctx, opts.Force) })
}

// Migrate runs the recovery step on demand: adopt the legacy secret's
// refresh token when it is one we have not stored yet, else make sure the
// stored chain works, falling back to older versions and the legacy token.
func (m *Manager) Migrate(ctx context.Context) (Result, error) {
	return m.fly(ctx, "migrate", m.migrate)
}

// AccessToken returns a valid access token, refreshing first if needed. It
// is for in-process consumers (the charging cycle); it is never sent to a
// client of the worker.
func (m *Manager) AccessToken(ctx context.Context) (string, error) {
	// A pair this process read or wrote and that is still fresh serves
	// without a store read: a charging cycle asks once per Fleet call.
	m.mu.Lock()
	if m.current != nil && m.current.FreshAt(m.clock.Now(), m.cfg.RefreshBefore) {
		tok := m.current.AccessToken
		m.mu.Unlock()
		return tok, nil
	}
	m.mu.Unlock()
	if _, err := m.Ensure(ctx, EnsureOptions{}); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current == nil || !m.current.Usable() {
		return "", fmt.Errorf("%w: no usable pair after ensure", ErrStoreUnavailable)
	}
	return m.current.AccessToken, nil
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

func (m *Manager) ensure(ctx context.Context, force bool) (Result, error) {
	now := m.clock.Now()
	cur, ver, err := m.readLatest(ctx)
	if errors.Is(err, ErrStoreUnavailable) {
		return Result{}, err
	}
	if err == nil && !force && cur.FreshAt(now, m.cfg.RefreshBefore) {
		return Result{Action: ActionNone, ExpiresAt: cur.ExpiresAt, Version: ver}, nil
	}

	lease, done, err := m.acquire(ctx, force)
	if err != nil || done != nil {
		return deref(done), err
	}
	defer m.release(lease)

	// Re-read under the lease: another instance may just have refreshed.
	cur, ver, err = m.readLatest(ctx)
	if errors.Is(err, ErrStoreUnavailable) {
		return Result{}, err
	}
	if err == nil && !force && cur.FreshAt(m.clock.Now(), m.cfg.RefreshBefore) {
		return Result{Action: ActionNone, ExpiresAt: cur.ExpiresAt, Version: ver}, nil
	}
	tried := map[string]bool{}
	if err == nil {
		res, rerr := m.refreshWith(ctx, cur.RefreshToken, ver, cur, "refresh")
		if rerr == nil || !errors.Is(rerr, errLoginRequired) {
			return res, rerr
		}
		tried[cur.RefreshToken] = true
		m.log.Warn("stored refresh token rejected; trying older versions and the legacy secret",
			logging.Token("refresh_token", cur.RefreshToken), zap.String("version", ver))
	} else {
		m.log.Warn("stored token pair unusable; trying older versions and the legacy secret",
			zap.String("version", ver), zap.Error(err))
	}
	return m.recover(ctx, ver, cur, tried)
}

func (m *Manager) migrate(ctx context.Context) (Result, error) {
	lease, _, err := m.acquire(ctx, true)
	if err != nil {
		return Result{}, err
	}
	defer m.release(lease)

	cur, ver, rerr := m.readLatest(ctx)
	if errors.Is(rerr, ErrStoreUnavailable) {
		return Result{}, rerr
	}
	cands, err := m.candidates(ctx)
	if err != nil {
		return Result{}, err
	}
	tried := map[string]bool{}
	// A legacy token we have never stored is news (a login made with the old
	// system's script): adopt it first.
	if legacy := cands[len(cands)-1]; legacy.source == sourceLegacy && !legacy.known {
		res, err := m.refreshWith(ctx, legacy.token, ver, cur, sourceLegacy)
		if err == nil {
			res.Action = ActionMigrated
			return res, nil
		}
		if !errors.Is(err, errLoginRequired) {
			return Result{}, err
		}
		tried[legacy.token] = true
	}
	if rerr == nil && cur.FreshAt(m.clock.Now(), m.cfg.RefreshBefore) {
		return Result{Action: ActionNone, ExpiresAt: cur.ExpiresAt, Version: ver}, nil
	}
	return m.tryCandidates(ctx, cands, ver, cur, tried)
}

const sourceLegacy = "migrate:legacy"

type candidate struct {
	token  string
	source string
	known  bool // the legacy token is stored in a version, or was spent for one
}

// candidates lists refresh tokens worth trying, newest first: those of the
// stored versions (one of them may still be inside Tesla's 24 h grace), then
// the legacy secret's. The legacy entry is always last (empty if absent).
func (m *Manager) candidates(ctx context.Context) ([]candidate, error) {
	var out []candidate
	m.mu.Lock()
	if m.pending != nil {
		out = append(out, candidate{token: m.pending.RefreshToken, source: "migrate:unstored"})
	}
	m.mu.Unlock()
	seen := map[string]bool{}  // refresh tokens stored in a version
	spent := map[string]bool{} // hashes of refresh tokens already exchanged
	versions, err := m.store.Versions(ctx, m.cfg.FleetSecret)
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return nil, storeErr("list versions", m.cfg.FleetSecret, err)
	}
	for i, v := range versions {
		if i >= m.cfg.MaxRecoveryTries {
			break
		}
		sv, err := m.store.Get(ctx, m.cfg.FleetSecret, v.ID)
		if err != nil {
			if isTransientStore(err) {
				return nil, storeErr("read version "+v.ID, m.cfg.FleetSecret, err)
			}
			continue
		}
		p, err := ParsePair(sv.Payload)
		if p.SpentRefreshHash != "" {
			spent[p.SpentRefreshHash] = true
		}
		if p.RefreshToken == "" || seen[p.RefreshToken] {
			if err != nil {
				m.log.Warn("skipping unreadable token version", zap.String("version", v.ID), zap.Error(err))
			}
			continue
		}
		seen[p.RefreshToken] = true
		out = append(out, candidate{token: p.RefreshToken, source: "migrate:version-" + v.ID})
	}
	legacy := candidate{source: sourceLegacy}
	lv, err := m.store.Latest(ctx, m.cfg.LegacySecret)
	switch {
	case err == nil:
		legacy.token = trimToken(lv.Payload)
		legacy.known = seen[legacy.token] || spent[HashToken(legacy.token)]
	case isTransientStore(err):
		return nil, storeErr("read", m.cfg.LegacySecret, err)
	}
	return append(out, legacy), nil
}

// recover is step 3 of Ensure.
func (m *Manager) recover(ctx context.Context, base string, prev Pair, tried map[string]bool) (Result, error) {
	cands, err := m.candidates(ctx)
	if err != nil {
		return Result{}, err
	}
	return m.tryCandidates(ctx, cands, base, prev, tried)
}

func (m *Manager) tryCandidates(ctx context.Context, cands []candidate, base string, prev Pair, tried map[string]bool) (Result, error) {
	for _, c := range cands {
		if c.token == "" || tried[c.token] {
			continue
		}
		tried[c.token] = true
		res, err := m.refreshWith(ctx, c.token, base, prev, c.source)
		if err == nil {
			res.Action = ActionMigrated
			m.log.Info("recovered the token chain", zap.String("from", c.source), zap.String("version", res.Version))
			return res, nil
		}
		if !errors.Is(err, errLoginRequired) {
			return Result{}, err
		}
		m.log.Info("candidate refresh token rejected", zap.String("from", c.source), logging.Token("refresh_token", c.token))
	}
	m.mu.Lock()
	m.reauth = true
	m.mu.Unlock()
	return Result{}, ErrReauthRequired
}

// refreshWith spends one refresh token and persists what Tesla answers.
func (m *Manager) refreshWith(ctx context.Context, refreshToken, base string, prev Pair, source string) (Result, error) {
	client, err := m.clientRegistration(ctx)
	if err != nil {
		return Result{}, err
	}
	iss, err := m.endpoint.Refresh(ctx, client, refreshToken)
	if err != nil {
		if errors.Is(err, ErrMisconfigured) {
			m.forgetClient()
		}
		return Result{}, err
	}
	now := m.clock.Now()
	pair := Pair{
		AccessToken:           iss.AccessToken,
		RefreshToken:          iss.RefreshToken,
		ExpiresAt:             m.expiry(iss, now),
		RefreshTokenCreatedAt: now,
		TokenType:             iss.TokenType,
		Scope:                 iss.Scope,
		UpdatedAt:             now,
		Source:                source,
		SpentRefreshHash:      HashToken(refreshToken),
	}
	if iss.RefreshToken == prev.RefreshToken && !prev.RefreshTokenCreatedAt.IsZero() {
		pair.RefreshTokenCreatedAt = prev.RefreshTokenCreatedAt
	}
	m.log.Info("Tesla issued a new token pair",
		zap.String("source", source), logging.Token("spent_refresh_token", refreshToken),
		logging.Token("refresh_token", pair.RefreshToken), zap.Time("expires_at", pair.ExpiresAt))
	return m.persist(ctx, pair, base, prev)
}

// expiry prefers expires_in (on our clock), then the JWT's exp.
func (m *Manager) expiry(iss Issued, now time.Time) time.Time {
	if iss.ExpiresIn > 0 {
		return now.Add(iss.ExpiresIn).UTC()
	}
	if c, err := ParseClaims(iss.AccessToken); err == nil && !c.ExpiresAt.IsZero() {
		return c.ExpiresAt
	}
	return now.Add(8 * time.Hour).UTC()
}

// persist stores a pair Tesla issued, retrying transient failures. Until it
// succeeds nobody sees the new access token; if it fails for good the pair is
// kept in memory as pending and the error is reported — never success.
func (m *Manager) persist(ctx context.Context, pair Pair, base string, prev Pair) (Result, error) {
	if prev.SameTokens(pair) && base != "" {
		m.observe(prev, base)
		return Result{Action: ActionRefreshed, ExpiresAt: prev.ExpiresAt, Version: base}, nil
	}
	payload, err := pair.Marshal()
	if err != nil {
		return Result{}, fmt.Errorf("encode tokens: %w", err)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.PersistBudget)
	defer cancel()
	var id string
	wait := m.cfg.RetryBase
	for attempt := 1; ; attempt++ {
		id, err = m.store.Add(pctx, m.cfg.FleetSecret, payload)
		if err == nil || !isTransientStore(err) {
			break
		}
		m.log.Warn("storing the new token pair failed; retrying", zap.Int("attempt", attempt), zap.Error(err))
		if !sleep(pctx, wait) {
			break
		}
		wait = min(wait*2, 5*time.Second)
	}
	if err != nil {
		m.mu.Lock()
		m.pending = &pair
		m.mu.Unlock()
		m.log.Error("could not store the new token pair; the stored refresh token stays usable inside Tesla's 24 h grace, and the unstored one is kept as a last resort",
			zap.Error(err))
		return Result{}, storeErr("add version", m.cfg.FleetSecret, err)
	}
	m.mu.Lock()
	m.pending = nil
	m.lastRefr = m.clock.Now()
	m.mu.Unlock()
	m.observe(pair, id)
	m.log.Info("stored the new token pair", zap.String("version", id), zap.Time("expires_at", pair.ExpiresAt))
	if _, err := m.prune(pctx, id); err != nil {
		m.log.Warn("pruning old token versions failed", zap.Error(err))
	}
	return Result{Action: ActionRefreshed, ExpiresAt: pair.ExpiresAt, Version: id}, nil
}

// acquire takes the writer lease, waiting while another writer holds it.
// Inside the process, flights of different kinds (ensure, force, migrate,
// login) take turns on a one-slot semaphore first: the store's lease may be
// re-entrant for one holder, and two of our own flights must no more spend a
// refresh token together than two instances may. While waiting it re-reads:
// when the other writer has stored a fresh pair (and this is not a forced
// refresh), there is nothing left to do.
func (m *Manager) acquire(ctx context.Context, force bool) (secrets.Lease, *Result, error) {
	wctx, cancel := context.WithTimeout(ctx, m.cfg.LeaseWait)
	defer cancel()
	wait := 25 * time.Millisecond
	for {
		err := secrets.ErrLeaseHeld
		select {
		case m.writer <- struct{}{}:
			var lease secrets.Lease
			if lease, err = m.store.TryLease(wctx, m.cfg.FleetSecret, m.cfg.Holder, m.cfg.LeaseTTL); err == nil {
				return processLease{lease: lease, slot: m.writer}, nil, nil
			}
			<-m.writer
		default:
		}
		if !errors.Is(err, secrets.ErrLeaseHeld) {
			return nil, nil, storeErr("take lease on", m.cfg.FleetSecret, err)
		}
		if !force {
			if cur, ver, rerr := m.readLatest(wctx); rerr == nil && cur.FreshAt(m.clock.Now(), m.cfg.RefreshBefore) {
				return nil, &Result{Action: ActionNone, ExpiresAt: cur.ExpiresAt, Version: ver}, nil
			}
		}
		if !sleep(wctx, wait) {
			return nil, nil, fmt.Errorf("%w (waited %s)", ErrBusy, m.cfg.LeaseWait)
		}
		wait = min(wait*2, time.Second)
	}
}

// processLease is the store's lease plus this process's writer slot.
type processLease struct {
	lease secrets.Lease
	slot  chan struct{}
}

func (l processLease) Release(ctx context.Context) error {
	defer func() { <-l.slot }()
	return l.lease.Release(ctx)
}

func (m *Manager) release(lease secrets.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := lease.Release(ctx); err != nil {
		m.log.Warn("releasing the token lease failed; it expires by itself", zap.Error(err))
	}
}

// readLatest reads and parses the newest version. Store trouble is
// ErrStoreUnavailable (retry later); a missing, destroyed, corrupt or
// unusable latest is reported with its own error so Ensure can recover.
func (m *Manager) readLatest(ctx context.Context) (Pair, string, error) {
	v, err := m.store.Latest(ctx, m.cfg.FleetSecret)
	if err != nil {
		if errors.Is(err, secrets.ErrNotFound) || errors.Is(err, secrets.ErrVersionUnavailable) || errors.Is(err, secrets.ErrCorrupt) {
			m.noteMissing()
			return Pair{}, v.ID, fmt.Errorf("read %s: %w", m.cfg.FleetSecret, err)
		}
		return Pair{}, "", storeErr("read", m.cfg.FleetSecret, err)
	}
	p, err := ParsePair(v.Payload)
	if err != nil {
		m.noteMissing()
		return p, v.ID, fmt.Errorf("%s version %s: %w", m.cfg.FleetSecret, v.ID, err)
	}
	m.observe(p, v.ID)
	return p, v.ID, nil
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

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func deref(r *Result) Result {
	if r == nil {
		return Result{}
	}
	return *r
}

// versionNumber orders version ids numerically; non-numbers sort first.
func versionNumber(id string) int64 {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Login stores the first pair of a new chain, from an authorization-code
// exchange (fleetctl login). A login cycles out the refresh token a worker
// may be spending right now, so it runs under the same lease as a refresh,
// and its result is persisted the same way: retried, and never reported as
// stored unless it was. exchange runs only once the lease is held.
func (m *Manager) Login(ctx context.Context, exchange func(context.Context) (Issued, error)) (Result, error) {
	return m.fly(ctx, "login", func(fctx context.Context) (Result, error) {
		lease, _, err := m.acquire(fctx, true)
		if err != nil {
			return Result{}, err
		}
		defer m.release(lease)
		_, ver, rerr := m.readLatest(fctx)
		if errors.Is(rerr, ErrStoreUnavailable) {
			return Result{}, rerr
		}
		iss, err := exchange(fctx)
		if err != nil {
			return Result{}, err
		}
		now := m.clock.Now()
		pair := Pair{
			AccessToken: iss.AccessToken, RefreshToken: iss.RefreshToken, ExpiresAt: m.expiry(iss, now),
			RefreshTokenCreatedAt: now, TokenType: iss.TokenType, Scope: iss.Scope, UpdatedAt: now, Source: "login",
		}
		m.mu.Lock()
		m.reauth = false
		m.mu.Unlock()
		return m.persist(fctx, pair, ver, Pair{})
	})
}
