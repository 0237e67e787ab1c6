package patrol

import "time"

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
	if reason := transition(*prev, obs); reason != "" {
		return Decision{Kind: DecideTrigger, Reason: reason}
	}
	if prev.Pending != nil {
		return decidePending(*prev.Pending, now, pendingTTL)
	}
	return Decision{Kind: DecideNothing}
}

// transition names the change from prev to obs that calls for a cycle, or
// returns "".
func transition(prev Record, obs Observation) string {
	wasReady := prev.AtHome && prev.Ready
	isReady := obs.AtHome && obs.Ready
	switch {
	case !wasReady && isReady:
		return ReasonArrivedHomeReady
	case wasReady && obs.AtHome && !obs.Ready:
		return ReasonUnpluggedAtHome
	}
	return ""
}

// decidePending: retry a pending trigger, leave it to the tick sending it,
// or drop it once older than pendingTTL.
func decidePending(p Pending, now time.Time, pendingTTL time.Duration) Decision {
	sinceAttempt := now.Sub(p.AttemptAt)
	switch {
	case now.Sub(p.Since) > pendingTTL:
		return Decision{Kind: DecideDrop, Reason: p.Reason}
	case !p.AttemptAt.IsZero() && sinceAttempt >= 0 && sinceAttempt < inFlight:
		return Decision{Kind: DecideWait, Reason: p.Reason}
	default:
		return Decision{Kind: DecideRetry, Reason: p.Reason}
	}
}
