// Package patrol is the scout's domain, one tick at a time: it looks at each
// car without waking it (observe), turns what the car said into "at home"
// and "ready" (classify), applies the trigger rules to what the last ticks
// remembered (decide), records the outcome in one conditional write so that
// of two overlapping ticks only one acts on a transition (claim), and then
// asks the worker for a charging cycle.
//
// It knows nothing of HTTP, the Fleet API's client or the store's backends:
// they come in through the small interfaces below, which internal/scout
// adapts. The rules themselves (Classify, Decide, and the record changes
// each step writes) are pure functions.
package patrol

import (
	"context"
	"errors"
	"fmt"
	"github.com/offpeak-charging/offpeak/internal/needs"
	"sort"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/geo"
)

// Fleet is the read-only view of the Fleet API a patrol needs. It has no
// wake_up on purpose: a patrol cannot wake a car even by mistake. The
// adapter deals with the access token (a 401's re-read and one retry).
type Fleet interface {
	// Cars lists the account's cars with their state (free, never wakes).
	Cars(ctx context.Context) ([]Car, error)
	// State is one car's state (free, never wakes).
	State(ctx context.Context, vin string) (string, error)
	// Read is the one billed data call per car and tick: charge state and
	// position. A car asleep after all gives an error wrapping ErrAsleep.
	Read(ctx context.Context, vin string) (Reading, error)
}

// Car is a car to look at. Listed cars come from the account's vehicle
// list, whose State saves a per-car call; the others (Settings.VINs) are
// asked for their state.
type Car struct {
	VIN    string
	State  string
	Listed bool
}

// The Fleet API's vehicle states a patrol tells apart.
const (
	StateOnline = "online"
	StateAsleep = "asleep"
)

// ErrAsleep: Read found the car asleep or offline after all.
var ErrAsleep = errors.New("vehicle asleep or offline")

// RateLimitError is a Fleet API refusal that says how long to stay away
// (429 with Retry-After). Fleet adapters return it around the client's
// error, whose text it keeps.
type RateLimitError struct {
	RetryAfter time.Duration
	Err        error
}

func (e *RateLimitError) Error() string { return e.Err.Error() }

// Unwrap returns the client's error, so its kinds stay testable.
func (e *RateLimitError) Unwrap() error { return e.Err }

func retryAfter(err error) (time.Duration, bool) {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl.RetryAfter, true
	}
	return 0, false
}

// CycleTrigger asks the worker to run the charging cycle for one car. An
// error wrapping ErrNeedsOperator means only a person can fix what stopped
// it; any other error is worth retrying on a later tick.
type CycleTrigger interface {
	RunCycle(ctx context.Context, req contract.CycleRequest) (contract.CycleResponse, error)
}

// ErrNeedsOperator: the worker says a person must act before a cycle can
// change the car (key not paired, no key, bad key, app not registered…);
// the message names the fix. Retried a few times, in case the owner just
// fixed it, never for hours.
var ErrNeedsOperator = errors.New("worker reports a problem only the operator can fix")

// Store keeps what a patrol remembers between ticks: one Record per car
// and the account's Backoff.
type Store interface {
	// Car returns the car's record; found is false when there is none, and
	// the error wraps ErrCorrupt when the stored one does not decode.
	Car(ctx context.Context, vin string) (rec Record, found bool, err error)
	// UpdateCar is a conditional write (compare and swap): it reads the
	// record (Record{VIN: vin} when there is none), lets change modify it,
	// and writes it only if no one wrote in between, else reads again and
	// repeats. change may therefore run several times and must only
	// compute; returning false writes nothing.
	UpdateCar(ctx context.Context, vin string, change func(rec *Record) bool) error
	// Backoff returns the account's rate limit; an error (none stored,
	// unreadable) means there is none.
	Backoff(ctx context.Context) (Backoff, error)
	SetBackoff(ctx context.Context, b Backoff) error
	// Needs returns the car's charge needs (read-only: the worker keeps
	// them); none when there are none.
	Needs(ctx context.Context, vin string) ([]needs.Need, error)
}

// ErrCorrupt: a stored record is unreadable; the car is then treated as
// never seen.
var ErrCorrupt = errors.New("unreadable record")

// Logger is the part of a structured logger a patrol writes to, with
// key-value pairs after the message: *slog.Logger fits, and internal/scout
// adapts zap (whose package would bring net/http into the domain).
type Logger interface {
	Info(msg string, keysAndValues ...any)
	Warn(msg string, keysAndValues ...any)
	Error(msg string, keysAndValues ...any)
}

type nopLogger struct{}

func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// Settings configure a Patrol.
type Settings struct {
	Home       geo.Home
	VINs       []string      // empty: every car on the account
	PendingTTL time.Duration // how long a failed trigger is retried (6 h)
}

// Patrol runs ticks; overlapping ticks are safe (the store's conditional
// writes decide which acts).
type Patrol struct {
	fleet   Fleet
	worker  CycleTrigger
	store   Store
	clock   clock.Clock
	cfg     Settings
	log     Logger
	lastRun lastTick
}

// New builds a Patrol; a nil log logs nothing.
func New(f Fleet, worker CycleTrigger, st Store, clk clock.Clock, cfg Settings, log Logger) *Patrol {
	if log == nil {
		log = nopLogger{}
	}
	if cfg.PendingTTL <= 0 {
		cfg.PendingTTL = 6 * time.Hour
	}
	return &Patrol{fleet: f, worker: worker, store: st, clock: clk, cfg: cfg, log: log}
}

// ErrNothingObserved: no car could be looked at (tokens, Fleet API or state
// store down). The only case a tick fails as a whole.
var ErrNothingObserved = errors.New("no vehicle could be observed")

// Tick observes every car once and triggers the worker where a rule says so.
// One car's failure does not fail the others.
func (p *Patrol) Tick(ctx context.Context) (Report, error) {
	now := p.clock.Now()
	if err := p.accountBackoff(ctx, now); err != nil {
		return Report{Vehicles: []VehicleReport{}}, err
	}
	cars, err := p.cars(ctx)
	if err != nil {
		p.lastRun.set(now, err)
		return Report{Vehicles: []VehicleReport{}}, fmt.Errorf("%w: %w", ErrNothingObserved, err)
	}
	rep := Report{Vehicles: make([]VehicleReport, 0, len(cars))}
	observed := 0
	for _, car := range cars {
		vr := p.tickVehicle(ctx, car)
		if vr.observed {
			observed++
		}
		rep.Vehicles = append(rep.Vehicles, vr)
	}
	if observed == 0 && len(cars) > 0 {
		err = fmt.Errorf("%w: every car failed (first: %s)", ErrNothingObserved, rep.Vehicles[0].Error)
	}
	p.lastRun.set(now, err)
	return rep, err
}

// accountBackoff fails the tick while an account-wide rate limit lasts, so
// no call reaches the Fleet API before its Retry-After.
func (p *Patrol) accountBackoff(ctx context.Context, now time.Time) error {
	b, err := p.store.Backoff(ctx)
	if err != nil || !b.Until.After(now) {
		return nil
	}
	p.log.Warn("Fleet API rate limit: skipping this tick", "until", b.Until)
	return fmt.Errorf("%w: rate limited by the Fleet API until %s", ErrNothingObserved, b.Until.Format(time.RFC3339))
}

// cars are the configured VINs, else the account's cars in VIN order.
func (p *Patrol) cars(ctx context.Context) ([]Car, error) {
	if len(p.cfg.VINs) > 0 {
		out := make([]Car, len(p.cfg.VINs))
		for i, v := range p.cfg.VINs {
			out[i] = Car{VIN: v}
		}
		return out, nil
	}
	list, err := p.fleet.Cars(ctx)
	if err != nil {
		p.rememberRateLimit(ctx, err)
		return nil, fmt.Errorf("list vehicles: %w", err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].VIN < list[j].VIN })
	return list, nil
}

// rememberRateLimit stores an account-level 429 so the next ticks skip the
// Fleet API until Retry-After has passed.
func (p *Patrol) rememberRateLimit(ctx context.Context, err error) {
	d, ok := retryAfter(err)
	if !ok {
		return
	}
	_ = p.store.SetBackoff(ctx, Backoff{Until: p.clock.Now().Add(d), Reason: "429 on GET /api/1/vehicles"})
}

// LastTick returns when the last tick ran and its error text ("" if none).
func (p *Patrol) LastTick() (time.Time, string) { return p.lastRun.get() }
