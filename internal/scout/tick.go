// Package scout is the cheap, frequent half of the system: once per Cloud
// Scheduler tick it reads the tokens read-only, looks at each car without
// waking it, remembers what it saw, and calls the worker only at the moments
// that matter (arrived home and plugged in, unplugged).
package scout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/state"
)

// Fleet is the read-only part of the Fleet API the scout uses. It has no
// wake_up on purpose: the scout cannot wake a car even by mistake.
type Fleet interface {
	Vehicles(ctx context.Context) ([]fleet.Vehicle, error)
	Vehicle(ctx context.Context, vin string) (fleet.Vehicle, error)
	VehicleData(ctx context.Context, vin string, endpoints ...string) (fleet.VehicleData, error)
}

// CycleTrigger asks the worker to run the charging cycle.
type CycleTrigger interface {
	RunCycle(ctx context.Context, req contract.CycleRequest) (contract.CycleResponse, error)
}

// TokenRejecter is told when the Fleet API rejected the access token.
type TokenRejecter interface {
	Rejected(ctx context.Context) error
}

// Settings configure a Scout.
type Settings struct {
	Home       Home
	VINs       []string      // empty: every car on the account
	PendingTTL time.Duration // how long a failed trigger is retried (6 h)
}

// Scout runs ticks.
type Scout struct {
	fleet   Fleet
	tokens  TokenRejecter
	worker  CycleTrigger
	state   state.Store
	clock   Clock
	cfg     Settings
	log     *zap.Logger
	lastRun lastTick
}

// New builds a Scout.
func New(f Fleet, tokens TokenRejecter, worker CycleTrigger, st state.Store, clock Clock, cfg Settings, log *zap.Logger) *Scout {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.PendingTTL <= 0 {
		cfg.PendingTTL = 6 * time.Hour
	}
	return &Scout{fleet: f, tokens: tokens, worker: worker, state: st, clock: clock, cfg: cfg, log: log}
}

// Actions reported per car.
const (
	ActionNone      = "none"
	ActionTriggered = "triggered"
	ActionPending   = "pending"
	ActionAsleep    = "asleep"
	ActionError     = "error"
)

// VehicleReport is one car's line in a tick's answer.
type VehicleReport struct {
	VIN          string `json:"vin"`
	State        string `json:"state"`
	AtHome       bool   `json:"at_home"`
	Ready        bool   `json:"ready"`
	BatteryLevel *int   `json:"battery_level"`
	// LocationMissing: the car sent no position (no vehicle_location
	// scope); AtHome is then the last known answer, not a new one.
	LocationMissing bool   `json:"location_missing,omitempty"`
	Action          string `json:"action"`
	Reason          string `json:"reason,omitempty"`
	Error           string `json:"error,omitempty"`
	observed        bool
}

// Report is a tick's answer.
type Report struct {
	Vehicles []VehicleReport `json:"vehicles"`
}

// ErrNothingObserved: no car could be looked at (tokens, Fleet API or state
// store down). The only case a tick fails as a whole.
var ErrNothingObserved = errors.New("no vehicle could be observed")

const globalBackoffKey = "scout/backoff.json"

type backoffRecord struct {
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

// Tick observes every car once and triggers the worker where a rule says so.
// One car's failure does not fail the others.
func (s *Scout) Tick(ctx context.Context) (Report, error) {
	now := s.clock.Now()
	if b, _, err := state.Load[backoffRecord](ctx, s.state, globalBackoffKey); err == nil && b.Until.After(now) {
		s.log.Warn("Fleet API rate limit: skipping this tick", zap.Time("until", b.Until))
		return Report{Vehicles: []VehicleReport{}}, fmt.Errorf("%w: rate limited by the Fleet API until %s", ErrNothingObserved, b.Until.Format(time.RFC3339))
	}
	cars, err := s.cars(ctx)
	if err != nil {
		s.lastRun.set(now, err)
		return Report{Vehicles: []VehicleReport{}}, fmt.Errorf("%w: %w", ErrNothingObserved, err)
	}
	rep := Report{Vehicles: make([]VehicleReport, 0, len(cars))}
	observed := 0
	for _, car := range cars {
		vr := s.tickVehicle(ctx, car)
		if vr.observed {
			observed++
		}
		rep.Vehicles = append(rep.Vehicles, vr)
	}
	if observed == 0 && len(cars) > 0 {
		err = fmt.Errorf("%w: every car failed (first: %s)", ErrNothingObserved, rep.Vehicles[0].Error)
	}
	s.lastRun.set(now, err)
	return rep, err
}

// carRef is a car to look at; listed carries the state from the account's
// vehicle list, which saves a per-car state call.
type carRef struct {
	vin    string
	listed *fleet.Vehicle
}

func (s *Scout) cars(ctx context.Context) ([]carRef, error) {
	if len(s.cfg.VINs) > 0 {
		out := make([]carRef, len(s.cfg.VINs))
		for i, v := range s.cfg.VINs {
			out[i] = carRef{vin: v}
		}
		return out, nil
	}
	var list []fleet.Vehicle
	err := s.withAuthRetry(ctx, func() error {
		var err error
		list, err = s.fleet.Vehicles(ctx)
		return err
	})
	if err != nil {
		s.rememberRateLimit(ctx, err)
		return nil, fmt.Errorf("list vehicles: %w", describeFleetErr(err))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].VIN < list[j].VIN })
	out := make([]carRef, len(list))
	for i := range list {
		out[i] = carRef{vin: list[i].VIN, listed: &list[i]}
	}
	return out, nil
}

func vehicleKey(vin string) string { return "vehicles/" + vin + ".json" }

func (s *Scout) tickVehicle(ctx context.Context, car carRef) VehicleReport {
	log := s.log.With(zap.String("vin", car.vin))
	rep := VehicleReport{VIN: car.vin, Action: ActionNone}
	prev, _, err := state.Load[Record](ctx, s.state, vehicleKey(car.vin))
	var prevPtr *Record
	switch {
	case err == nil:
		prevPtr = &prev
	case errors.Is(err, state.ErrNotFound):
	case errors.Is(err, state.ErrCorrupt):
		log.Warn("state record unreadable; treating the car as never seen", zap.Error(err))
	default:
		return s.failed(rep, fmt.Errorf("read state: %w", err))
	}
	now := s.clock.Now()
	if prevPtr != nil && prev.BackoffUntil.After(now) {
		rep.State = prev.State
		return s.failed(rep, fmt.Errorf("rate limited by the Fleet API until %s", prev.BackoffUntil.Format(time.RFC3339)))
	}

	// 1. The free state check: never wakes the car.
	vstate := ""
	if car.listed != nil {
		vstate = car.listed.State
	} else {
		err := s.withAuthRetry(ctx, func() error {
			v, err := s.fleet.Vehicle(ctx, car.vin)
			vstate = v.State
			return err
		})
		if err != nil {
			return s.fleetFailed(ctx, rep, err, log)
		}
	}
	rep.State = vstate
	if vstate != fleet.StateOnline {
		return s.sawAsleep(ctx, rep, vstate, log)
	}

	// 2. One billed data call with everything the rules need.
	var data fleet.VehicleData
	err = s.withAuthRetry(ctx, func() error {
		var err error
		data, err = s.fleet.VehicleData(ctx, car.vin, fleet.EndpointChargeState, fleet.EndpointDriveState, fleet.EndpointLocationData)
		return err
	})
	if errors.Is(err, fleet.ErrAsleep) {
		return s.sawAsleep(ctx, rep, fleet.StateAsleep, log)
	}
	if err != nil {
		return s.fleetFailed(ctx, rep, err, log)
	}
	obs := Classify(data, s.cfg.Home)
	obs.State = fleet.StateOnline
	if !obs.HasLocation {
		// Unknown is not away: keep the last answer, so a missing position
		// neither fakes a departure nor, when it returns, an arrival.
		log.Warn("the car reported no position; is the vehicle_location scope granted?",
			zap.String("fix", "run fleetctl login and approve every scope"))
		rep.LocationMissing = true
		obs.AtHome = prevPtr != nil && prev.AtHome
	}
	rep.observed = true
	rep.AtHome, rep.Ready = obs.AtHome, obs.Ready
	rep.BatteryLevel = &obs.BatteryLevel

	// 3. Decide and claim in one conditional write: of two overlapping ticks
	// only one records the transition (and so only one triggers).
	var dec Decision
	_, err = state.Update(ctx, s.state, vehicleKey(car.vin), func(cur *Record, exists bool) (*Record, error) {
		var prevRec *Record
		if exists {
			prevRec = cur
		}
		now := s.clock.Now()
		dec = Decide(prevRec, obs, now, s.cfg.PendingTTL)
		next := Record{VIN: car.vin}
		if exists {
			next = *cur
		}
		next.LastSeen, next.ObservedAt, next.State, next.HasData = now, now, obs.State, true
		next.AtHome, next.Ready, next.BatteryLevel, next.ChargingState = obs.AtHome, obs.Ready, obs.BatteryLevel, obs.ChargingState
		switch dec.Kind {
		case DecideTrigger:
			next.Pending = &Pending{Reason: dec.Reason, Since: now, AttemptAt: now, Attempts: 1}
		case DecideRetry:
			p := *next.Pending
			p.AttemptAt, p.Attempts = now, p.Attempts+1
			next.Pending = &p
		case DecideDrop:
			next.Pending = nil
		}
		return &next, nil
	})
	if err != nil {
		return s.failed(rep, fmt.Errorf("write state: %w", err))
	}
	switch dec.Kind {
	case DecideNothing:
		return rep
	case DecideWait:
		rep.Action, rep.Reason = ActionPending, dec.Reason
		return rep
	case DecideDrop:
		log.Warn("dropping a trigger the worker never confirmed", zap.String("reason", dec.Reason), zap.Duration("after", s.cfg.PendingTTL))
		return rep
	}
	rep.Reason = dec.Reason
	return s.trigger(ctx, rep, obs, log)
}

// trigger calls the worker and records the outcome; a failure stays pending.
func (s *Scout) trigger(ctx context.Context, rep VehicleReport, obs Observation, log *zap.Logger) VehicleReport {
	log.Info("triggering the charging cycle", zap.String("reason", rep.Reason),
		zap.Bool("at_home", obs.AtHome), zap.Bool("ready", obs.Ready), zap.Int("battery_level", obs.BatteryLevel))
	// The worker reads the car itself: nothing of this tick's reading is sent.
	ans, err := s.worker.RunCycle(ctx, contract.CycleRequest{VIN: rep.VIN, Reason: rep.Reason})
	if err == nil && ans.Asleep {
		err = errors.New("the car fell asleep before the cycle could read it")
	}
	now := s.clock.Now()
	_, uerr := state.Update(ctx, s.state, vehicleKey(rep.VIN), func(cur *Record, exists bool) (*Record, error) {
		if !exists || cur.Pending == nil {
			return nil, nil
		}
		next := *cur
		if err == nil {
			next.Pending = nil
			next.LastTrigger = &Trigger{Reason: rep.Reason, At: now}
			return &next, nil
		}
		p := *cur.Pending
		p.AttemptAt, p.LastTry, p.LastError = time.Time{}, now, err.Error()
		if errors.Is(err, ErrNeedsOperator) {
			p.OperatorFailures++
			if p.OperatorFailures >= MaxOperatorFailures {
				// Every tick would only repeat the same refusal (and
				// bill a handshake): the next arrival triggers anew.
				next.Pending = nil
				return &next, nil
			}
		}
		next.Pending = &p
		return &next, nil
	})
	if uerr != nil {
		log.Error("could not record the trigger's outcome", zap.Error(uerr))
	}
	if errors.Is(err, ErrNeedsOperator) {
		log.Error("the worker cannot change the car until the operator acts", zap.Error(err))
		rep.Action, rep.Error = ActionPending, err.Error()
		return rep
	}
	if err != nil {
		log.Warn("trigger failed; kept pending for a later tick", zap.Error(err))
		rep.Action, rep.Error = ActionPending, err.Error()
		return rep
	}
	log.Info("worker ran the charging cycle", zap.Bool("changed", ans.Changed),
		zap.Int("added", ans.Commands.Added), zap.Int("removed", ans.Commands.Removed))
	rep.Action = ActionTriggered
	return rep
}

// sawAsleep records that the car was asleep or offline, keeping what was
// known about it (and any pending trigger) for when it wakes.
func (s *Scout) sawAsleep(ctx context.Context, rep VehicleReport, vstate string, log *zap.Logger) VehicleReport {
	rep.State, rep.Action, rep.observed = vstate, ActionAsleep, true
	_, err := state.Update(ctx, s.state, vehicleKey(rep.VIN), func(cur *Record, exists bool) (*Record, error) {
		next := Record{VIN: rep.VIN}
		if exists {
			next = *cur
		}
		now := s.clock.Now()
		// A pending trigger can only be retried while the car is awake (the
		// scout never wakes it), so time asleep does not count against
		// PENDING_TRIGGER_TTL: an arrival whose trigger failed just before the
		// car fell asleep still runs its cycle when the car wakes hours later.
		if p := next.Pending; p != nil && !next.LastSeen.IsZero() && now.After(next.LastSeen) {
			paused := *p
			paused.Since = p.Since.Add(now.Sub(next.LastSeen))
			next.Pending = &paused
		}
		next.LastSeen, next.State = now, vstate
		return &next, nil
	})
	if err != nil {
		log.Warn("could not record the car's sleep", zap.Error(err))
	}
	return rep
}

func (s *Scout) fleetFailed(ctx context.Context, rep VehicleReport, err error, log *zap.Logger) VehicleReport {
	if d, ok := fleet.RetryAfter(err); ok && errors.Is(err, fleet.ErrRateLimited) {
		until := s.clock.Now().Add(d)
		_, uerr := state.Update(ctx, s.state, vehicleKey(rep.VIN), func(cur *Record, exists bool) (*Record, error) {
			next := Record{VIN: rep.VIN}
			if exists {
				next = *cur
			}
			next.BackoffUntil = until
			return &next, nil
		})
		if uerr != nil {
			log.Warn("could not record the rate limit", zap.Error(uerr))
		}
	}
	return s.failed(rep, describeFleetErr(err))
}

func (s *Scout) failed(rep VehicleReport, err error) VehicleReport {
	s.log.Warn("vehicle not observed", zap.String("vin", rep.VIN), zap.Error(err))
	rep.Action, rep.Error = ActionError, err.Error()
	return rep
}

// rememberRateLimit stores an account-level 429 so the next ticks skip the
// Fleet API until Retry-After has passed.
func (s *Scout) rememberRateLimit(ctx context.Context, err error) {
	d, ok := fleet.RetryAfter(err)
	if !ok || !errors.Is(err, fleet.ErrRateLimited) {
		return
	}
	rec := backoffRecord{Until: s.clock.Now().Add(d), Reason: "429 on GET /api/1/vehicles"}
	_, _ = state.Update(ctx, s.state, globalBackoffKey, func(*backoffRecord, bool) (*backoffRecord, error) { return &rec, nil })
}

// withAuthRetry runs call; on a 401 it has the token re-read (and refreshed
// through the worker if it is the same one) and runs call once more.
func (s *Scout) withAuthRetry(ctx context.Context, call func() error) error {
	err := call()
	if !errors.Is(err, fleet.ErrUnauthorized) {
		return err
	}
	s.log.Warn("Fleet API rejected the access token; re-reading it")
	if rerr := s.tokens.Rejected(ctx); rerr != nil {
		return fmt.Errorf("%w (after a 401: %w)", rerr, err)
	}
	return call()
}

// describeFleetErr adds what to do for the errors an operator must act on.
func describeFleetErr(err error) error {
	if errors.Is(err, fleet.ErrWrongRegion) {
		return fmt.Errorf("%w (set TESLA_FLEET_API_URL to the account's region; `fleetctl doctor` tells which)", err)
	}
	return err
}
