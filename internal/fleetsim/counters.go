package fleetsim

import "sync"

// Fleet request categories, the inner keys of Counters.Fleet.
const (
	CategoryData    = "data"
	CategoryCommand = "command"
	CategoryWake    = "wake"
	CategoryOther   = "other"
)

// Counters is a snapshot of what the simulator has been asked.
type Counters struct {
	// TokenExchanges counts token-endpoint requests by outcome (Outcome… constants).
	TokenExchanges map[string]int `json:"token_exchanges"`
	// Fleet counts Fleet API requests that passed authentication (or were
	// answered by a fault) by VIN ("" for account-level calls) and category.
	Fleet map[string]map[string]int `json:"fleet"`
	// Billed counts the subset of Fleet that Tesla bills: answered with a
	// status below 500.
	Billed map[string]map[string]int `json:"billed"`
	// Unauthorized counts Fleet API 401s (unknown, expired or revoked access tokens).
	Unauthorized int `json:"unauthorized"`
}

type counterSet struct {
	mu sync.Mutex
	c  Counters
}

func (cs *counterSet) reset() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.c = Counters{
		TokenExchanges: map[string]int{},
		Fleet:          map[string]map[string]int{},
		Billed:         map[string]map[string]int{},
	}
}

func (cs *counterSet) tokenExchange(outcome string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.c.TokenExchanges[outcome]++
}

func (cs *counterSet) fleet(vin, category string, status int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	bump(cs.c.Fleet, vin, category)
	if status > 0 && status < 500 {
		bump(cs.c.Billed, vin, category)
	}
}

func (cs *counterSet) unauthorized() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.c.Unauthorized++
}

func bump(m map[string]map[string]int, vin, category string) {
	inner := m[vin]
	if inner == nil {
		inner = map[string]int{}
		m[vin] = inner
	}
	inner[category]++
}

func (cs *counterSet) snapshot() Counters {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := Counters{
		TokenExchanges: make(map[string]int, len(cs.c.TokenExchanges)),
		Fleet:          make(map[string]map[string]int, len(cs.c.Fleet)),
		Billed:         make(map[string]map[string]int, len(cs.c.Billed)),
		Unauthorized:   cs.c.Unauthorized,
	}
	for k, v := range cs.c.TokenExchanges {
		out.TokenExchanges[k] = v
	}
	for _, pair := range []struct{ dst, src map[string]map[string]int }{{out.Fleet, cs.c.Fleet}, {out.Billed, cs.c.Billed}} {
		for vin, inner := range pair.src {
			cp := make(map[string]int, len(inner))
			for k, v := range inner {
				cp[k] = v
			}
			pair.dst[vin] = cp
		}
	}
	return out
}

// Counters returns a deep copy of the counters.
func (s *Sim) Counters() Counters { return s.counters.snapshot() }

// FleetRequests is how many Fleet requests of category were made for vin ("" = account level).
func (s *Sim) FleetRequests(vin, category string) int {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	return s.counters.c.Fleet[vin][category]
}

// BilledRequests is how many of FleetRequests(vin, category) Tesla would bill (status below 500).
func (s *Sim) BilledRequests(vin, category string) int {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	return s.counters.c.Billed[vin][category]
}

// TokenExchanges is how many token requests ended with outcome.
func (s *Sim) TokenExchanges(outcome string) int {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	return s.counters.c.TokenExchanges[outcome]
}

// ResetCounters zeroes every counter.
func (s *Sim) ResetCounters() { s.counters.reset() }
