package scout

import "time"

// Record is what the scout remembers about one car between ticks (one small
// JSON object per VIN in the state store).
type Record struct {
	VIN           string    `json:"vin"`
	LastSeen      time.Time `json:"last_seen"`
	State         string    `json:"state"`
	HasData       bool      `json:"has_data"` // observed online with data at least once
	ObservedAt    time.Time `json:"observed_at,omitempty"`
	AtHome        bool      `json:"at_home"`
	Ready         bool      `json:"ready"`
	BatteryLevel  int       `json:"battery_level"`
	ChargingState string    `json:"charging_state,omitempty"`
	Pending       *Pending  `json:"pending,omitempty"`
	LastTrigger   *Trigger  `json:"last_trigger,omitempty"`
	BackoffUntil  time.Time `json:"backoff_until,omitempty"` // Fleet API 429: no calls for this car until then
}

// Pending is a trigger the worker has not yet confirmed. It is written
// before the worker is called, so a crash or an overlapping tick never loses
// it or sends it twice.
type Pending struct {
	Reason    string    `json:"reason"`
	Since     time.Time `json:"since"`
	AttemptAt time.Time `json:"attempt_at,omitempty"` // set while a tick is calling the worker
	LastTry   time.Time `json:"last_try,omitempty"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	// OperatorFailures counts answers only a person can fix (an unpaired
	// key, say); at MaxOperatorFailures the trigger is dropped instead of
	// being retried every tick for PENDING_TRIGGER_TTL.
	OperatorFailures int `json:"operator_failures,omitempty"`
}

// MaxOperatorFailures bounds the retries of a trigger the worker refused
// for a reason only the operator can fix.
const MaxOperatorFailures = 3

// Trigger is the last trigger the worker confirmed.
type Trigger struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Trigger reasons.
const (
	ReasonFirstSeen        = "first_seen"
	ReasonArrivedHomeReady = "arrived_home_ready"
	ReasonUnpluggedAtHome  = "unplugged_at_home"
)

// DecisionKind is what to do after an observation.
type DecisionKind int

// Decisions.
const (
	DecideNothing DecisionKind = iota
	DecideTrigger              // a new transition: call the worker
	DecideRetry                // retry a pending trigger
	DecideDrop                 // a pending trigger is too old: drop it
	DecideWait                 // a pending trigger is being sent by another tick
)

// Decision is the outcome of Decide.
type Decision struct {
	Kind   DecisionKind
	Reason string
}

// inFlight is how long a trigger attempt is considered in progress; another
// tick that sees it within this window leaves it alone.
const inFlight = 3 * time.Minute

// Decide applies the scout's rules to the previous record (nil: never seen)
// and a fresh observation of an online car:
//   - first sight of a car (no earlier observation with data) → trigger;
//   - arrived home and ready (was not both, now is) → trigger;
//   - unplugged at home (was at home and ready, is at home and not ready) → trigger;
//   - otherwise a pending trigger is retried until pendingTTL, then dropped.
func Decide(prev *Record, obs Observation, now time.Time, pendingTTL time.Duration) Decision {
	if prev == nil || !prev.HasData {
		return Decision{Kind: DecideTrigger, Reason: ReasonFirstSeen}
	}
	wasReady := prev.AtHome && prev.Ready
	isReady := obs.AtHome && obs.Ready
	switch {
	case !wasReady && isReady:
		return Decision{Kind: DecideTrigger, Reason: ReasonArrivedHomeReady}
	case wasReady && obs.AtHome && !obs.Ready:
		return Decision{Kind: DecideTrigger, Reason: ReasonUnpluggedAtHome}
	}
	if p := prev.Pending; p != nil {
		switch {
		case now.Sub(p.Since) > pendingTTL:
			return Decision{Kind: DecideDrop, Reason: p.Reason}
		case !p.AttemptAt.IsZero() && now.Sub(p.AttemptAt) >= 0 && now.Sub(p.AttemptAt) < inFlight:
			return Decision{Kind: DecideWait, Reason: p.Reason}
		default:
			return Decision{Kind: DecideRetry, Reason: p.Reason}
		}
	}
	return Decision{Kind: DecideNothing}
}
