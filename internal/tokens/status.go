package tokens

import (
	"context"
	"errors"
	"time"
)

// State is the health of the token pair as last seen.
type State string

// States reported by Status.
const (
	StateValid          State = "valid"
	StateExpiring       State = "expiring" // inside the refresh margin
	StateExpired        State = "expired"
	StateMissing        State = "missing" // absent, corrupt or without both tokens
	StateReauthRequired State = "reauth_required"
	StateUnknown        State = "unknown" // not looked at yet
)

// Status is what the manager last saw; reading it costs no store call, so
// a liveness probe can ask as often as it likes.
type Status struct {
	State         State
	ExpiresAt     time.Time
	Version       string
	LastRefreshAt time.Time
	LastError     string
	CheckedAt     time.Time
	// UnrotatedSince is set when Tesla answered a refresh without a new
	// refresh token: the first use of the one still stored. Tesla's grace
	// for it ends 24 h later.
	UnrotatedSince time.Time
}

// health is what Status reports besides the pair itself.
type health struct {
	checked   time.Time
	missing   bool
	reauth    bool
	lastError string
	lastRefr  time.Time
}

// Status reports from memory.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, cur := m.health, m.seen.pair
	st := Status{LastRefreshAt: h.lastRefr, LastError: h.lastError, CheckedAt: h.checked, Version: m.seen.version}
	now := m.clock.Now()
	switch {
	case h.reauth:
		st.State = StateReauthRequired
	case h.checked.IsZero():
		st.State = StateUnknown
	case h.missing || cur == nil:
		st.State = StateMissing
	default:
		st.ExpiresAt = cur.ExpiresAt
		switch {
		case !cur.ExpiresAt.After(now):
			st.State = StateExpired
		case cur.ExpiresAt.Sub(now) <= m.cfg.RefreshBefore:
			st.State = StateExpiring
		default:
			st.State = StateValid
		}
	}
	if cur != nil {
		if st.ExpiresAt.IsZero() {
			st.ExpiresAt = cur.ExpiresAt
		}
		st.UnrotatedSince = cur.RefreshTokenUsedAt
	}
	return st
}

// Check reads the store now and reports the status (for `?check=store` and
// the CLI). It changes nothing in the store.
func (m *Manager) Check(ctx context.Context) (Status, error) {
	_, _, err := m.read(ctx, false)
	if errors.Is(err, ErrStoreUnavailable) {
		m.noteOutcome(err)
		return m.Status(), err
	}
	return m.Status(), nil
}

// Current returns the pair last seen, for in-process callers that show
// metadata (the CLI's status); ok is false if none was seen.
func (m *Manager) Current() (Pair, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen.pair == nil {
		return Pair{}, false
	}
	return *m.seen.pair, true
}

// currentVersion is Current with its version.
func (m *Manager) currentVersion() (Pair, string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen.pair == nil {
		return Pair{}, "", false
	}
	return *m.seen.pair, m.seen.version, true
}

func (m *Manager) noteOutcome(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.health.lastError = ""
		return
	}
	// Our errors never carry token values (see exchange.go's classify), so
	// the text is safe to show on /health.
	m.health.lastError = err.Error()
}
