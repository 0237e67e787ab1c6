package scout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// SecretReader is the read-only part of a secret store the scout needs.
type SecretReader interface {
	Latest(ctx context.Context, secret string) (secrets.Version, error)
}

// TokenRefresher asks the worker, the only writer, to refresh.
type TokenRefresher interface {
	RefreshTokens(ctx context.Context, reason string, force bool) error
}

// Clock tells the time.
type Clock interface{ Now() time.Time }

// TokenCache hands the Fleet client an access token. It reads fleet-tokens
// read-only, keeps the pair in memory while it is valid (a warm instance
// makes no Secret Manager call per tick), and when the pair is expiring asks
// the worker to refresh and reads again. It never calls Tesla's token
// endpoint and never writes a secret: the scout once refreshed on its own and
// threw the new token away, cycling the whole chain out.
type TokenCache struct {
	store  SecretReader
	secret string
	worker TokenRefresher
	clock  Clock
	margin time.Duration
	log    *zap.Logger

	mu     sync.Mutex
	cached *tokens.Pair

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
	if c.cached != nil && c.cached.FreshAt(now, c.margin) {
		return c.cached.AccessToken, nil
	}
	p, err := c.read(ctx)
	if err == nil && p.FreshAt(now, c.margin) {
		c.cached = &p
		return p.AccessToken, nil
	}
	reason := "token expiring"
	if err != nil {
		reason = "stored token unreadable"
	}
	if werr := c.askWorker(ctx, reason, false); werr != nil {
		// The margin is an early warning: a token that has not expired yet
		// still works for this tick.
		if err == nil && p.FreshAt(now, 0) {
			c.log.Warn("worker refresh failed; using the stored token until it expires", zap.Error(werr))
			c.cached = &p
			return p.AccessToken, nil
		}
		return "", fmt.Errorf("%w: %w", ErrNoToken, werr)
	}
	return c.reread(ctx)
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
	if p, err := c.read(ctx); err == nil && p.AccessToken != failed && p.FreshAt(c.clock.Now(), 0) {
		c.cached = &p
		return nil
	}
	if err := c.askWorker(ctx, "fleet api answered 401", true); err != nil {
		return fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	_, err := c.reread(ctx)
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

func (c *TokenCache) askWorker(ctx context.Context, reason string, force bool) error {
	c.refreshes.Add(1)
	c.log.Info("asking the worker to refresh the tokens", zap.String("reason", reason), zap.Bool("force", force))
	return c.worker.RefreshTokens(ctx, reason, force)
}

func (c *TokenCache) reread(ctx context.Context) (string, error) {
	p, err := c.read(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: after the worker's refresh: %w", ErrNoToken, err)
	}
	if !p.FreshAt(c.clock.Now(), 0) {
		return "", fmt.Errorf("%w: the stored token is still expired after the worker's refresh", ErrNoToken)
	}
	c.cached = &p
	return p.AccessToken, nil
}

func (c *TokenCache) read(ctx context.Context) (tokens.Pair, error) {
	c.reads.Add(1)
	v, err := c.store.Latest(ctx, c.secret)
	if err != nil {
		return tokens.Pair{}, fmt.Errorf("read %s: %w", c.secret, err)
	}
	return tokens.ParsePair(v.Payload)
}
