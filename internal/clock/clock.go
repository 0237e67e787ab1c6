// Package clock provides the time source shared by the services and the
// simulator. Production code uses Real; tests and the simulated year use a
// Manual clock that they move by hand, so hours of token lifetime pass in
// microseconds and nothing ever sleeps to wait for an expiry.
package clock

import (
	"sync"
	"time"
)

// Clock tells the current time. It is declared here once and used by every
// package that takes a clock: seven identical one-method copies said nothing
// more, and this package has no dependencies, so importing it costs nothing.
type Clock interface {
	Now() time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Manual is a clock that only moves when told to. It is safe for concurrent use.
type Manual struct {
	mu  sync.RWMutex
	now time.Time
}

// NewManual returns a Manual clock set to start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

// Now returns the clock's current time.
func (m *Manual) Now() time.Time {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.now
}

// Advance moves the clock forward by d (a negative d is ignored: time never runs backwards).
func (m *Manual) Advance(d time.Duration) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d > 0 {
		m.now = m.now.Add(d)
	}
	return m.now
}

// Set moves the clock to t if t is later than the current time.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.After(m.now) {
		m.now = t
	}
}
