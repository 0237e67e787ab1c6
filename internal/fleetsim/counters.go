package fleetsim

import (
	"maps"
	"sync"
)

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
	// Signed counts the signed_command messages cars answered (HTTP 200),
	// in total and per VIN. Requests refused before reaching the car (400,
	// 404, 408, 422, injected HTTP faults) are only in Fleet/Billed.
	Signed SignedStats `json:"signed"`
	// Energy is what each car's charging drew and its driving used, by VIN
	// (per clock hour: Sim.Energy or GET /sim/cars/{vin}/energy).
	Energy map[string]EnergyCounters `json:"energy"`
}

// EnergyCounters is one car's part of Counters.Energy (see EnergyStats).
type EnergyCounters struct {
	GridKWh     float64     `json:"grid_kwh"`
	BatteryKWh  float64     `json:"battery_kwh"`
	ByHourOfDay [24]float64 `json:"grid_kwh_by_hour_of_day"`
	DrivenKm    float64     `json:"driven_km"`
	DrivenKWh   float64     `json:"driven_kwh"`
}

// SignedStats is Counters.Signed.
type SignedStats struct {
	Total SignedCounters            `json:"total"`
	ByVIN map[string]SignedCounters `json:"by_vin"`
}

// SignedCounters counts signed_command messages a car answered.
//
// Outcome keys: OutcomeVerified ("verified": a handshake answered with
// session info, or a command that passed every check and ran), or the
// fault's MessageFault_E name without its MESSAGEFAULT_ERROR_ prefix:
// "KEY_NOT_ON_WHITELIST" (a handshake from an unpaired key), "UNKNOWN_KEY_ID"
// (a command from an unpaired key), "INVALID_SIGNATURE",
// "INVALID_TOKEN_OR_COUNTER", "INCORRECT_EPOCH", "TIME_EXPIRED",
// "TIME_TO_LIVE_TOO_LONG", "BAD_PARAMETER", "DECODING", "INVALID_DOMAINS",
// "INVALID_COMMAND" (AES-GCM encrypted commands), or an injected
// Fault.CarFault such as "BUSY".
type SignedCounters struct {
	Handshakes int `json:"handshakes"` // session_info_request messages
	Commands   int `json:"commands"`   // every other message
	// Outcomes counts handshakes and commands together by outcome.
	Outcomes map[string]int `json:"outcomes"`
	// HandshakeOutcomes and CommandOutcomes split Outcomes by kind.
	HandshakeOutcomes map[string]int `json:"handshake_outcomes"`
	CommandOutcomes   map[string]int `json:"command_outcomes"`
}

func newSignedCounters() SignedCounters {
	return SignedCounters{Outcomes: map[string]int{}, HandshakeOutcomes: map[string]int{}, CommandOutcomes: map[string]int{}}
}

func (sc *SignedCounters) add(kind, outcome string) {
	sc.Outcomes[outcome]++
	if kind == signedHandshake {
		sc.Handshakes++
		sc.HandshakeOutcomes[outcome]++
	} else {
		sc.Commands++
		sc.CommandOutcomes[outcome]++
	}
}

func (sc SignedCounters) clone() SignedCounters {
	out := sc
	out.Outcomes = maps.Clone(sc.Outcomes)
	out.HandshakeOutcomes = maps.Clone(sc.HandshakeOutcomes)
	out.CommandOutcomes = maps.Clone(sc.CommandOutcomes)
	if out.Outcomes == nil {
		out = newSignedCounters()
	}
	return out
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
		Signed:         SignedStats{Total: newSignedCounters(), ByVIN: map[string]SignedCounters{}},
	}
}

func (cs *counterSet) signed(vin, kind, outcome string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.c.Signed.Total.add(kind, outcome)
	per, ok := cs.c.Signed.ByVIN[vin]
	if !ok {
		per = newSignedCounters()
	}
	per.add(kind, outcome)
	cs.c.Signed.ByVIN[vin] = per
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
		Signed:         SignedStats{Total: cs.c.Signed.Total.clone(), ByVIN: make(map[string]SignedCounters, len(cs.c.Signed.ByVIN))},
	}
	for vin, sc := range cs.c.Signed.ByVIN {
		out.Signed.ByVIN[vin] = sc.clone()
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
func (s *Sim) Counters() Counters {
	out := s.counters.snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(s.now())
	out.Energy = s.energyCountersLocked()
	return out
}

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

// SignedRequests counts the signed_command messages vin's car answered
// ("" = all cars); see SignedCounters. The maps are copies, never nil.
func (s *Sim) SignedRequests(vin string) SignedCounters {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	if vin == "" {
		return s.counters.c.Signed.Total.clone()
	}
	return s.counters.c.Signed.ByVIN[vin].clone()
}

// ResetCounters zeroes every counter, the cars' energy ledgers included
// (not their batteries).
func (s *Sim) ResetCounters() {
	s.counters.reset()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(s.now())
	for _, c := range s.cars {
		c.resetLedger()
	}
}
