package tokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

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
	var id string
	wait := m.cfg.RetryBase
	for attempt := 1; ; attempt++ {
		var found string
		found, err = m.beforeWrite(pctx, lease, next, payload)
		if found != "" {
			id = found // an earlier attempt did land
			break
		}
		if err == nil {
			id, err = m.store.Add(pctx, m.cfg.FleetSecret, payload)
			if err == nil {
				break
			}
		}
		if !isTransientStore(err) {
			break
		}
		m.log.Warn("storing the new token pair failed; retrying", zap.Int("attempt", attempt), zap.Error(err))
		if !sleep(pctx, wait) {
			// One last look: the final attempt may have landed.
			if found, _ := m.findWritten(context.WithoutCancel(ctx), next, payload); found != "" {
				id, err = found, nil
			}
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
