package scout

import (
	"sync"
	"time"
)

// lastTick remembers the last tick's outcome for /health.
type lastTick struct {
	mu  sync.Mutex
	at  time.Time
	err string
}

func (l *lastTick) set(at time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at = at
	l.err = ""
	if err != nil {
		l.err = err.Error()
	}
}

// LastTick returns when the last tick ran and its error text ("" if none).
func (s *Scout) LastTick() (time.Time, string) {
	s.lastRun.mu.Lock()
	defer s.lastRun.mu.Unlock()
	return s.lastRun.at, s.lastRun.err
}
