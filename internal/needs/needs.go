// Package needs keeps charge needs: "this car at 90 % by Saturday 08:00".
// It is the Python system's "special charging" without the spreadsheet and
// without a Cloud Scheduler job per session: a need is a small record in the
// state store (file or GCS), written with the store's compare-and-swap, and
// the charging cycle reads it on its ordinary runs.
//
// The package knows nothing of HTTP: the worker's endpoints and `fleetctl
// need` both call a Book, so the rules (target 50–100 %, a known car, a time
// in the next 14 days, adding the same need twice makes one need) are the
// same whichever way a need comes in.
//
// A need also carries what the cycle must remember about it across worker
// restarts and overlapping cycles: the charge limit it found on the car
// before raising it (so it can put that one back, once), when it put it
// back, and the outcome (met or missed, and the state of charge at `by`).
// The Python system lost exactly these: limits left raised because the
// clean-up job was never created, sessions repeating daily.
package needs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits on what a need may ask for.
const (
	// MinTargetPercent: below it a need is no need (the daily target covers it).
	MinTargetPercent = 50
	// MaxTargetPercent is a full battery.
	MaxTargetPercent = 100
	// MaxAhead bounds how far ahead `by` may lie: a plan two weeks out is
	// already a guess about the car's use, and the bound keeps stale needs
	// from piling up. It is a duration, not 14 calendar days: across a DST
	// change the two differ by an hour, which matters to no one.
	MaxAhead = 14 * 24 * time.Hour
	// MaxNoteLength bounds the note, in characters.
	MaxNoteLength = 200
	// DefaultMaxPerCar bounds a car's pending needs (Config.MaxPerCar).
	DefaultMaxPerCar = 20
	// KeepFinished is how long a need stays after its `by`, for its outcome
	// to be read; a need whose raised limit is not yet restored stays
	// whatever its age, or the restore would be forgotten.
	KeepFinished = 30 * 24 * time.Hour
	// Horizon is how long before a need's `by` its charging may begin: the
	// night before, when a car is usually at home and plugged in. The
	// worker raises the limit and plans the need's windows from then on,
	// and the scout asks for a cycle then if none came by itself. Earlier
	// would keep the battery high for days for nothing: the daily plan
	// covers the days before.
	Horizon = 24 * time.Hour
)

// Errors of the package, for errors.Is. Every validation error wraps
// ErrInvalid as well as its own kind, so a caller that only tells "bad
// input" from "failure" needs one test.
var (
	// ErrInvalid: the request breaks a rule; nothing was stored.
	ErrInvalid = errors.New("invalid charge need")
	// ErrUnknownVIN: no VIN, or one that is not a car of this deployment.
	ErrUnknownVIN = fmt.Errorf("%w: unknown vin", ErrInvalid)
	// ErrTarget: target_percent outside MinTargetPercent..MaxTargetPercent.
	ErrTarget = fmt.Errorf("%w: target_percent out of range", ErrInvalid)
	// ErrTime: `by` is missing, unparsable, or a local time that does not
	// exist (inside a spring-forward gap).
	ErrTime = fmt.Errorf("%w: by is not a usable time", ErrInvalid)
	// ErrPast: `by` is not in the future.
	ErrPast = fmt.Errorf("%w: by is not in the future", ErrInvalid)
	// ErrTooFar: `by` is more than MaxAhead away.
	ErrTooFar = fmt.Errorf("%w: by is too far ahead", ErrInvalid)
	// ErrNote: the note is too long or holds control characters.
	ErrNote = fmt.Errorf("%w: note not accepted", ErrInvalid)

	// ErrTooMany: the car already has the most pending needs allowed.
	ErrTooMany = errors.New("too many pending charge needs for the car")
	// ErrNotFound: no need with that id (or it is already deleted).
	ErrNotFound = errors.New("charge need not found")
	// ErrCars: the list of known cars could not be read (a Fleet API
	// failure, say); the same request may succeed later.
	ErrCars = errors.New("cannot tell which cars are known")
	// ErrStore: the state store failed; the state package's kind
	// (state.ErrUnavailable, state.ErrConflict, state.ErrCorrupt) is
	// wrapped as well.
	ErrStore = errors.New("charge needs store failed")
	// ErrNotRaised: a restore was recorded for a need whose limit was never raised.
	ErrNotRaised = errors.New("charge limit was not raised for this need")
)

// Need is one charge need and what the cycle has done about it.
type Need struct {
	// ID is NewID(VIN, TargetPercent, By): the same need added twice has
	// the same id, which is what makes adding idempotent.
	ID            string    `json:"id"`
	VIN           string    `json:"vin"`
	TargetPercent int       `json:"target_percent"`
	By            time.Time `json:"by"` // minute-aligned
	Note          string    `json:"note,omitempty"`
	Created       time.Time `json:"created"`

	// Cancelled: deleted while the car's limit was still raised for it.
	// The need is kept (and no longer planned for) until the cycle has put
	// the limit back; then it goes. A need without a raised limit is
	// removed at once.
	Cancelled *time.Time `json:"cancelled,omitempty"`
	// Limit: the cycle raised the car's charge limit for this need.
	Limit *LimitChange `json:"limit,omitempty"`
	// Outcome: recorded once, after By.
	Outcome *Outcome `json:"outcome,omitempty"`
}

// LimitChange remembers a raise of the car's charge limit.
type LimitChange struct {
	// PreviousPercent is the limit found on the car before the raise: the
	// one to put back.
	PreviousPercent int       `json:"previous_percent"`
	RaisedPercent   int       `json:"raised_percent"`
	RaisedAt        time.Time `json:"raised_at"`
	// RestoredAt: the cycle put PreviousPercent back (the car confirmed).
	RestoredAt *time.Time `json:"restored_at,omitempty"`
}

// Outcome is how a need ended.
type Outcome struct {
	Met bool `json:"met"`
	// SoCPercent is the battery level at By (the first reading at or after it).
	SoCPercent int       `json:"soc_percent"`
	At         time.Time `json:"at"` // when that level was read
}

// NewOutcome judges a need of target percent by the level soc read at t:
// met when the car reached the target.
func NewOutcome(target, soc int, t time.Time) Outcome {
	return Outcome{Met: soc >= target, SoCPercent: soc, At: t.UTC()}
}

// Status is what a need is waiting for, as people read it.
type Status string

// Statuses, in a need's life order.
const (
	StatusPending   Status = "pending"   // By ahead, limit not raised
	StatusActive    Status = "active"    // By ahead, limit raised for it
	StatusDue       Status = "due"       // By passed, no outcome yet
	StatusMet       Status = "met"       // the car reached the target by By
	StatusMissed    Status = "missed"    // it did not
	StatusCancelled Status = "cancelled" // deleted; waits for the limit to be put back
)

// Status says where n stands at now.
func (n Need) Status(now time.Time) Status {
	switch {
	case n.Cancelled != nil:
		return StatusCancelled
	case n.Outcome != nil && n.Outcome.Met:
		return StatusMet
	case n.Outcome != nil:
		return StatusMissed
	case !n.By.After(now):
		return StatusDue
	case n.Limit != nil:
		return StatusActive
	default:
		return StatusPending
	}
}

// Unmet reports whether n is still to be planned for at t: not cancelled,
// no outcome, By after t.
func (n Need) Unmet(t time.Time) bool {
	return n.Cancelled == nil && n.Outcome == nil && n.By.After(t)
}

// The steps a need asks of the cycle, by time; the worker's cycle and the
// scout's triggers read the same rules here.

// InHorizon reports whether n's charging may begin at now: Horizon or less
// before its By.
func (n Need) InHorizon(now time.Time) bool { return !now.Before(n.By.Add(-Horizon)) }

// RaiseDue reports whether n, unmet, is in its horizon with no limit raised.
func (n Need) RaiseDue(now time.Time) bool { return n.Unmet(now) && n.Limit == nil && n.InHorizon(now) }

// OutcomeDue reports whether n's By has passed with no outcome recorded
// (a cancelled need gets none).
func (n Need) OutcomeDue(now time.Time) bool {
	return n.Outcome == nil && n.Cancelled == nil && !n.By.After(now)
}

// RestoreDue reports whether the limit raised for n is to be put back: its
// By has passed, or it was deleted.
func (n Need) RestoreDue(now time.Time) bool {
	return n.RestorePending() && (n.Cancelled != nil || !n.By.After(now))
}

// RestorePending reports whether the limit was raised for n and not yet
// put back.
func (n Need) RestorePending() bool {
	return n.Limit != nil && n.Limit.RestoredAt == nil
}

// RaiseLimit records that the cycle raised the car's limit from found to
// to at t. A second raise (a cycle after a restart, or an overlapping one)
// keeps the first PreviousPercent: by then the car shows the raised limit,
// and remembering that would leave it raised for good.
func (n *Need) RaiseLimit(found, to int, t time.Time) {
	if n.Limit != nil && n.Limit.RestoredAt == nil {
		n.Limit.RaisedPercent = to
		return
	}
	n.Limit = &LimitChange{PreviousPercent: found, RaisedPercent: to, RaisedAt: t.UTC()}
}

// MarkRestored records that the remembered limit is back on the car. It
// returns false when that was already recorded (so the caller knows a
// concurrent cycle did it), and ErrNotRaised when nothing was raised.
func (n *Need) MarkRestored(t time.Time) (bool, error) {
	if n.Limit == nil {
		return false, fmt.Errorf("need %s: %w", n.ID, ErrNotRaised)
	}
	if n.Limit.RestoredAt != nil {
		return false, nil
	}
	u := t.UTC()
	n.Limit.RestoredAt = &u
	return true, nil
}

// RecordOutcome sets the outcome from the level soc read at t, once: it
// returns false and changes nothing when an outcome is already recorded.
func (n *Need) RecordOutcome(soc int, t time.Time) bool {
	if n.Outcome != nil {
		return false
	}
	o := NewOutcome(n.TargetPercent, soc, t)
	n.Outcome = &o
	return true
}

// idTime is the layout of `by` inside an id: UTC, minute resolution, no
// characters a state key or a URL path would have to escape.
const idTime = "20060102T1504Z"

// NewID is the id of the need (vin, target, by): readable, deterministic
// (the same need always has the same id) and carrying its VIN, so a delete
// by id finds the car's record without a search.
func NewID(vin string, target int, by time.Time) string {
	return vin + "-" + by.UTC().Format(idTime) + "-" + strconv.Itoa(target)
}

// parseID splits an id made by NewID; ok is false for anything NewID
// cannot have made.
func parseID(id string) (vin string, ok bool) {
	parts := strings.Split(id, "-")
	if len(parts) != 3 || parts[0] == "" {
		return "", false
	}
	by, err := time.Parse(idTime, parts[1])
	if err != nil {
		return "", false
	}
	target, err := strconv.Atoi(parts[2])
	if err != nil || NewID(parts[0], target, by) != id {
		return "", false
	}
	return parts[0], true
}
