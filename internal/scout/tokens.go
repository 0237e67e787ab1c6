package scout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// SecretReader is the read-only part of a secret store the scout needs.
type SecretReader interface {
	Latest(ctx context.Context, secret string) (secrets.Version, error)
	Get(ctx context.Context, secret, id string) (secrets.Version, error)
}

// TokenRefresher asks the worker, the only writer, to refresh. It returns
// the version the worker's answer names (the one now stored).
type TokenRefresher interface {
	RefreshTokens(ctx context.Context, req contract.RefreshRequest) (version string, err error)
}

// Clock tells the time.
type Clock = clock.Clock

// TokenCache hands the Fleet client an access token. It reads fleet-tokens
// read-only, keeps the pair in memory while it is valid (a warm instance
// makes no Secret Manager call per tick), and when the pair is expiring asks
// the worker to refresh and reads the version the worker's answer names, by
// number: Secret Manager's latest is eventually consistent and may still
// show the version before. It never steps back below a version it has
// seen. It never calls Tesla's token endpoint and never writes a secret: the
// scout once refreshed on its own and threw the new token away, cycling the
// whole chain out.
type TokenCache struct {
	store  SecretReader
	secret string
	worker TokenRefresher
	clock  Clock
	margin time.Duration
	log    *zap.Logger

	mu      sync.Mutex
	cached  *tokens.Pair
	version string // the newest version seen: reads never step back below it

	reads, refreshes atomic.Int64
}

// NewTokenCache builds a TokenCache; margin is TOKEN_REFRESH_BEFORE.
func NewTokenCache(store SecretReader, secret string, worker TokenRefresher, clock Clock, margin time.Duration, log *zap.Logger) *TokenCache {
	if log == nil {
		log = zap.NewNop()
	}
	return &TokenCache{store: store, secret: secret, worker: worker, clock: clock, margin: margin, log: log}
}

// ErrNoToken: no usable access token could be had (store unreadable and the
// worker unreachable, or the chain needs a new login).
var ErrNoToken = errors.New("no usable Tesla access token")

// AccessToken implements fleet.TokenSource.
func (c *TokenCache) AccessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if c.cached != nil && c.fresh(*c.cached, now) {
		return c.cached.AccessToken, nil
	}
	p, err := c.read(ctx, "")
	if err == nil && c.fresh(p, now) {
		c.cached = &p
		return p.AccessToken, nil
	}
	reason := "token expiring"
	if err != nil {
		reason = "stored token unreadable"
	}
	version, werr := c.askWorker(ctx, contract.RefreshRequest{Reason: reason})
	if werr != nil {
		// The margin is an early warning: a token that has not expired yet
		// still works for this tick.
		if err == nil && p.FreshAt(now, 0) {
			c.log.Warn("worker refresh failed; using the stored token until it expires", zap.Error(werr))
			c.cached = &p
			return p.AccessToken, nil
		}
		return "", fmt.Errorf("%w: %w", ErrNoToken, werr)
	}
	return c.reread(ctx, version)
}

// fresh: valid for the margin, and not a refresh token Tesla left
// unrotated for so long that the worker should spend it again.
func (c *TokenCache) fresh(p tokens.Pair, now time.Time) bool {
	return p.FreshAt(now, c.margin) && !p.RotationDue(now, tokens.DefaultRotateWithin)
}

// Rejected is called when the Fleet API answered 401 with the current token:
// re-read (another refresh may have revoked it); if the store holds the same
// token, ask the worker for a forced refresh, then re-read.
func (c *TokenCache) Rejected(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var failed string
	if c.cached != nil {
		failed = c.cached.AccessToken
	}
	c.cached = nil
	if p, err := c.read(ctx, ""); err == nil && p.AccessToken != failed && p.FreshAt(c.clock.Now(), 0) {
		c.cached = &p
		return nil
	}
	version, err := c.askWorker(ctx, contract.RefreshRequest{Reason: "fleet api answered 401", Force: true, RejectedVersion: c.version})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	_, err = c.reread(ctx, version)
	return err
}

// Peek reports the cached pair's expiry without any I/O (for /health).
func (c *TokenCache) Peek() (expiresAt time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached == nil {
		return time.Time{}, false
	}
	return c.cached.ExpiresAt, true
}

// Counts returns how many secret reads and worker refresh calls were made.
func (c *TokenCache) Counts() (reads, refreshes int64) { return c.reads.Load(), c.refreshes.Load() }

func (c *TokenCache) askWorker(ctx context.Context, req contract.RefreshRequest) (string, error) {
	c.refreshes.Add(1)
	c.log.Info("asking the worker to refresh the tokens", zap.String("reason", req.Reason), zap.Bool("force", req.Force))
	return c.worker.RefreshTokens(ctx, req)
}

// reread reads the version the worker's answer named (or the newest, when
// it named none).
func (c *TokenCache) reread(ctx context.Context, version string) (string, error) {
	p, err := c.read(ctx, version)
	if err != nil {
		return "", fmt.Errorf("%w: after the worker's refresh: %w", ErrNoToken, err)
	}
	if !p.FreshAt(c.clock.Now(), 0) {
		return "", fmt.Errorf("%w: the stored token is still expired after the worker's refresh", ErrNoToken)
	}
	c.cached = &p
	return p.AccessToken, nil
}

// read reads version want by number when it is newer than any seen (one
// access), else the newest version never below one seen
// (tokens.ReadNewest). Callers hold c.mu.
func (c *TokenCache) read(ctx context.Context, want string) (tokens.Pair, error) {
	c.reads.Add(1)
	if newer(want, c.version) {
		v, err := c.store.Get(ctx, c.secret, want)
		if err == nil {
			return c.parse(v)
		}
		if !errors.Is(err, secrets.ErrNotFound) {
			return tokens.Pair{}, fmt.Errorf("read %s version %s: %w", c.secret, want, err)
		}
	}
	got, err := tokens.ReadNewest(ctx, c.store, c.secret, c.version, false)
	if err != nil {
		return tokens.Pair{}, fmt.Errorf("read %s: %w", c.secret, err)
	}
	if got.Restarted {
		c.log.Warn("fleet-tokens was recreated: its version numbers restarted", zap.String("was", c.version))
		c.version = ""
	}
	if got.Problem != nil {
		return tokens.Pair{}, fmt.Errorf("read %s: %w", c.secret, got.Problem)
	}
	return c.parse(got.Version)
}

func (c *TokenCache) parse(v secrets.Version) (tokens.Pair, error) {
	p, err := tokens.ParsePair(v.Payload)
	if err == nil && newer(v.ID, c.version) {
		c.version = v.ID
	}
	return p, err
}

// newer reports whether version a is a higher number than b.
func newer(a, b string) bool {
	na, erra := strconv.ParseInt(a, 10, 64)
	if erra != nil {
		return false
	}
	nb, errb := strconv.ParseInt(b, 10, 64)
	return errb != nil || na > nb
}
