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
}

// Status reports from memory.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{LastRefreshAt: m.lastRefr, LastError: m.lastError, CheckedAt: m.checked, Version: m.curVer}
	now := m.clock.Now()
	switch {
	case m.reauth:
		st.State = StateReauthRequired
	case m.checked.IsZero():
		st.State = StateUnknown
	case m.missing || m.current == nil:
		st.State = StateMissing
	default:
		st.ExpiresAt = m.current.ExpiresAt
		switch {
		case !m.current.ExpiresAt.After(now):
			st.State = StateExpired
		case m.current.ExpiresAt.Sub(now) <= m.cfg.RefreshBefore:
			st.State = StateExpiring
		default:
			st.State = StateValid
		}
	}
	if m.current != nil && st.ExpiresAt.IsZero() {
		st.ExpiresAt = m.current.ExpiresAt
	}
	return st
}

// Check reads the store now and reports the status (for `?check=store` and
// the CLI). It changes nothing in the store.
func (m *Manager) Check(ctx context.Context) (Status, error) {
	_, _, err := m.readLatest(ctx)
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
	if m.current == nil {
		return Pair{}, false
	}
	return *m.current, true
}

func (m *Manager) observe(p Pair, version string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Never step back to an older version than one already seen.
	if m.current != nil && versionNumber(version) < versionNumber(m.curVer) {
		return
	}
	cp := p
	m.current = &cp
	m.curVer = version
	m.checked = m.clock.Now()
	m.missing = false
	if p.FreshAt(m.checked, 0) {
		m.reauth = false
	}
}

func (m *Manager) noteMissing() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checked = m.clock.Now()
	m.missing = true
	m.current = nil
	m.curVer = ""
}

func (m *Manager) noteOutcome(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.lastError = ""
		return
	}
	// Our errors never carry token values (see exchange.go's classify), so
	// the text is safe to show on /health.
	m.lastError = err.Error()
}
