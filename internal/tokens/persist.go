package tokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sethvargo/go-retry"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// persist stores a pair Tesla issued, retrying transient failures. Until it
// succeeds nobody sees the new access token; if it fails for good the pair is
// kept in memory as pending and the error is reported — never success.
//
// Before every attempt it proves the lease is still ours (a renewal) and
// that no version was added after base, the version the flight started
// from: if either fails, another writer took over while this flight
// stalled and may have spent the same refresh token again, which cycles
// this pair out — it is kept only as a last-resort candidate. An attempt
// that failed ambiguously (a deadline after the store committed) is looked
// up by number before the next one, so no retry adds a duplicate.
func (m *Manager) persist(ctx context.Context, lease *heldLease, pair Pair, base string, prev Pair) (Result, error) {
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
	next := versionNumber(base) + 1
	if next < 1 {
		next = 1
	}
	id, err := m.write(pctx, lease, next, payload)
	if err != nil {
		m.mu.Lock()
		m.pending = &pair
		m.mu.Unlock()
		m.log.Error("could not store the new token pair; the stored refresh token stays usable inside Tesla's 24 h grace, and the unstored one is kept as a last resort",
			zap.Error(err))
		if errors.Is(err, ErrStoreUnavailable) {
			return Result{}, err
		}
		return Result{}, storeErr("add version", m.cfg.FleetSecret, err)
	}
	m.mu.Lock()
	m.pending = nil
	m.health.lastRefr = m.clock.Now()
	m.mu.Unlock()
	m.observe(pair, id)
	m.log.Info("stored the new token pair", zap.String("version", id), zap.Time("expires_at", pair.ExpiresAt))
	if _, err := m.prune(pctx, id); err != nil {
		m.log.Warn("pruning old token versions failed", zap.Error(err))
	}
	return Result{Action: ActionRefreshed, ExpiresAt: pair.ExpiresAt, Version: id}, nil
}

// write stores payload as version next (or finds that an earlier attempt
// did), retrying transient store failures with a doubling pause from
// RetryBase, at most 5 s, until ctx (the persist budget) ends; then it
// looks once more and reports the last attempt's error.
func (m *Manager) write(ctx context.Context, lease *heldLease, next int64, payload []byte) (string, error) {
	var (
		id      string
		attempt int
		last    error
		backoff = retry.WithCappedDuration(5*time.Second, retry.NewExponential(m.cfg.RetryBase))
	)
	err := retry.Do(ctx, backoff, func(ctx context.Context) error {
		attempt++
		id, last = m.writeOnce(ctx, lease, next, payload)
		if last == nil || !isTransientStore(last) {
			return last
		}
		m.log.Warn("storing the new token pair failed; retrying", zap.Int("attempt", attempt), zap.Error(last))
		return retry.RetryableError(last)
	})
	if err != nil && last != nil && isTransientStore(last) {
		// The budget ran out in a pause. One last look: the final attempt
		// may have landed. If not, report what the store said, not the
		// deadline.
		if found, _ := m.findWritten(context.WithoutCancel(ctx), next, payload); found != "" {
			return found, nil
		}
		return "", last
	}
	return id, err
}

// writeOnce is one attempt: the checks before a write (beforeWrite), then
// the write. It returns the id of the version that holds payload.
func (m *Manager) writeOnce(ctx context.Context, lease *heldLease, next int64, payload []byte) (string, error) {
	found, err := m.beforeWrite(ctx, lease, next, payload)
	if found != "" {
		return found, nil // an earlier attempt did land
	}
	if err != nil {
		return "", err
	}
	return m.store.Add(ctx, m.cfg.FleetSecret, payload)
}

// errSuperseded: a version was added after the one the flight started from.
var errSuperseded = errors.New("another writer stored a version while this refresh ran")

// beforeWrite is the check before each write attempt: the lease is still
// ours, and version next does not exist — unless it holds exactly payload
// (an earlier attempt landed), whose id it returns.
func (m *Manager) beforeWrite(ctx context.Context, lease *heldLease, next int64, payload []byte) (string, error) {
	found, err := m.findWritten(ctx, next, payload)
	if found != "" || err != nil {
		return found, err
	}
	return "", lease.check(ctx)
}

// findWritten looks for payload in the versions from next on, by number
// (the strongly consistent read): "" with nil error when version next does
// not exist; errSuperseded when it exists with another payload.
func (m *Manager) findWritten(ctx context.Context, next int64, payload []byte) (string, error) {
	for n := next; n < next+8; n++ {
		id := strconv.FormatInt(n, 10)
		v, err := m.store.Get(ctx, m.cfg.FleetSecret, id)
		switch {
		case errors.Is(err, secrets.ErrNotFound):
			if n == next {
				return "", nil
			}
			return "", fmt.Errorf("%w: %w (version %d)", ErrBusy, errSuperseded, next)
		case err != nil && isTransientStore(err):
			return "", err
		case err == nil && bytes.Equal(v.Payload, payload):
			m.log.Info("an earlier attempt to store the pair had landed", zap.String("version", id))
			return id, nil
		}
	}
	return "", fmt.Errorf("%w: %w (version %d)", ErrBusy, errSuperseded, next)
}

// versionNumber orders version ids numerically; non-numbers sort first.
func versionNumber(id string) int64 {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return -1
	}
	return n
}
