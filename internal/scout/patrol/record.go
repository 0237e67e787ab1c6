package patrol

import (
	"errors"
	"time"
)

// Record is what the scout remembers about one car between ticks (one small
// JSON object per VIN in the state store; the field names are that
// object's, so they stay as they are).
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
	// NeedSteps are the charge-need steps already asked of the worker
	// ("<need id>/window", "<need id>/due"), each once (NeedReason).
	NeedSteps map[string]time.Time `json:"need_steps,omitempty"`
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

// Backoff is the account's Fleet API rate limit (a 429 on the vehicle list).
type Backoff struct {
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

// The changes each step of a tick writes to a car's record. Each runs
// inside Store.UpdateCar, possibly more than once, so each only computes.

// claim records a fresh observation of an online car together with the
// decision the rules make on what was there before: a new transition
// becomes a pending trigger marked as being sent now, a pending one is
// retried or dropped. The write of this record is the claim: of two
// overlapping ticks only the one whose conditional write lands records
// the transition, and so only it calls the worker.
func claim(rec *Record, obs Observation, now time.Time, pendingTTL time.Duration) Decision {
	dec := Decide(rec, obs, now, pendingTTL)
	rec.LastSeen, rec.ObservedAt, rec.State, rec.HasData = now, now, StateOnline, true
	rec.AtHome, rec.Ready, rec.BatteryLevel, rec.ChargingState = obs.AtHome, obs.Ready, obs.BatteryLevel, obs.ChargingState
	switch dec.Kind {
	case DecideTrigger:
		rec.Pending = &Pending{Reason: dec.Reason, Since: now, AttemptAt: now, Attempts: 1}
	case DecideRetry:
		p := *rec.Pending
		p.AttemptAt, p.Attempts = now, p.Attempts+1
		rec.Pending = &p
	case DecideDrop:
		rec.Pending = nil
	}
	return dec
}

// settle records the worker's answer (err) to the pending trigger: once
// confirmed it becomes the last trigger; a failure stays pending for a
// later tick, unless only the operator can fix it and the worker has said
// so MaxOperatorFailures times (every tick would only repeat the same
// refusal, and bill a handshake: the next arrival triggers anew). False:
// nothing is pending (another tick settled it), nothing to write.
func settle(rec *Record, reason string, now time.Time, err error) bool {
	if rec.Pending == nil {
		return false
	}
	if err == nil {
		rec.Pending = nil
		rec.LastTrigger = &Trigger{Reason: reason, At: now}
		return true
	}
	p := *rec.Pending
	p.AttemptAt, p.LastTry, p.LastError = time.Time{}, now, err.Error()
	rec.Pending = &p
	if errors.Is(err, ErrNeedsOperator) {
		p.OperatorFailures++
		if p.OperatorFailures >= MaxOperatorFailures {
			rec.Pending = nil
		}
	}
	return true
}

// markAsleep records that the car was asleep or offline, keeping what was known
// about it, and any pending trigger, for when it wakes. A pending trigger
// can only be retried while the car is awake (the scout never wakes it),
// so time asleep does not count against PENDING_TRIGGER_TTL: an arrival
// whose trigger failed just before the car fell asleep still runs its
// cycle when the car wakes hours later.
func markAsleep(rec *Record, vstate string, now time.Time) {
	if p := rec.Pending; p != nil && !rec.LastSeen.IsZero() && now.After(rec.LastSeen) {
		paused := *p
		paused.Since = p.Since.Add(now.Sub(rec.LastSeen))
		rec.Pending = &paused
	}
	rec.LastSeen, rec.State = now, vstate
}
