package charging

import (
	"context"
	"errors"
	"fmt"
	"github.com/offpeak-charging/offpeak/internal/geo"
	"github.com/offpeak-charging/offpeak/internal/needs"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

// Errors of a cycle and of the interfaces it consumes. Adapters wrap the
// first two so that errors.Is works across the boundary.
var (
	// ErrAsleep: the car is asleep or offline (the proxy's "vehicle
	// unavailable"). VehicleData and the commands return it, wrapped.
	ErrAsleep = errors.New("vehicle asleep or offline")
	// ErrCommandRejected: the car answered result:false. Adapters should wrap
	// it; any other command error is treated the same way (stop, no hash).
	ErrCommandRejected = errors.New("vehicle rejected the command")
	// ErrCycleBusy: another cycle holds this car's lease; PlanStore returns it.
	ErrCycleBusy = errors.New("another charging cycle is running for this car")
	// ErrVehicleRead: vehicle_data failed for a reason other than sleep; the
	// cycle stopped before any command.
	ErrVehicleRead = errors.New("cannot read the vehicle's charge schedules")
	// ErrCommand: a schedule command failed; the plan hash was not stored.
	ErrCommand = errors.New("charge schedule command failed")
	// ErrPlanStore: the plan store or the lease failed.
	ErrPlanStore = errors.New("plan store failed")
)

// Vehicle is what a cycle needs from the car; implemented by an adapter
// over internal/fleet (and the signing proxy for the commands).
type Vehicle interface {
	// VehicleData makes one call with charge_state;location_data;
	// charge_schedule_data. An asleep car gives ErrAsleep (wrapped).
	VehicleData(ctx context.Context, vin string) (Snapshot, error)
	WakeUp(ctx context.Context, vin string) error
	// WaitOnline polls the cheap vehicle state until online or ctx is done.
	WaitOnline(ctx context.Context, vin string) error
	// AddChargeSchedule sends s with its id; error on result:false
	// (wrapping ErrCommandRejected) and ErrAsleep when the car sleeps.
	AddChargeSchedule(ctx context.Context, vin string, s Schedule) error
	RemoveChargeSchedule(ctx context.Context, vin string, id int64) error
	// SetChargeLimit sets the car's charge limit (a charge need raises it
	// and puts it back).
	SetChargeLimit(ctx context.Context, vin string, percent int) error
}

// Snapshot is the part of vehicle_data a cycle uses.
type Snapshot struct {
	State               string
	BatteryLevel        int
	ChargeLimitSOC      int
	ChargingState       string
	Plugged             bool
	Latitude, Longitude float64
	HasLocation         bool
	Schedules           []Schedule
	MaxSchedules        int // max_num_charge_schedules; 0 = unknown
}

// PlanStore keeps the hash of the plan the car last confirmed, and the
// per-car cycle lease; implemented over internal/state.
type PlanStore interface {
	LoadPlanHash(ctx context.Context, vin string) (string, error)
	SavePlanHash(ctx context.Context, vin, hash string) error
	// AcquireCycle takes the car's lease for ttl; ErrCycleBusy when another
	// cycle holds it. release gives it back.
	AcquireCycle(ctx context.Context, vin string, ttl time.Duration) (release func(), err error)
}

// ChargeSettings are the planning inputs from configuration.
type ChargeSettings struct {
	TargetPercent int       // CHARGE_TARGET_PERCENT
	FloorPercent  int       // CHARGE_FLOOR_PERCENT
	BatteryKWh    float64   // BATTERY_KWH
	ChargerKW     float64   // CHARGER_KW
	Efficiency    float64   // 0 → DefaultEfficiency
	ReadyBy       ClockTime // READY_BY
}

// Defaults of CycleConfig.
const (
	DefaultHomeRadiusM    = 100
	DefaultCommandSpacing = 3 * time.Second
	DefaultWakeTimeout    = 90 * time.Second
	DefaultLeaseTTL       = 5 * time.Minute
)

// CycleConfig configures NewCycle. Zero durations take the defaults; a
// negative CommandSpacing means no pause between commands (tests).
type CycleConfig struct {
	// Home is where the car charges; a zero RadiusM takes DefaultHomeRadiusM.
	// Its Contains is the scout's test too (internal/geo).
	Home           geo.Home
	Location       *time.Location // TIMEZONE: the zone of the schedules' wall-clock minutes
	Charge         ChargeSettings
	CommandSpacing time.Duration
	WakeTimeout    time.Duration
	LeaseTTL       time.Duration
	// Standing, when set, keeps its cheap hours on the car as recurring
	// schedules at home beside the plan's (standing.go): a plug-in before
	// the next cycle waits for cheap hours instead of charging at once.
	// Nil: the plan's one-time schedules only.
	Standing *Tariff
	// Needs, when set, are the charge needs the cycle plans for beside the
	// daily target (needcycle.go), on NeedTariff's cheap hours.
	Needs      NeedBook
	NeedTariff *Tariff
}

// Result is what one cycle did.
type Result struct {
	Plan           []Window
	Added, Removed int
	Woke           bool // a wake_up was sent (at most one per cycle)
	Changed        bool // at least one command succeeded
	Asleep         bool // the car was asleep at the read: nothing was done
	AtHome         bool
	// LocationMissing: the car answered without a position (the token lacks
	// the vehicle_location scope, or the firmware left it out), so whether
	// it is home is unknown and nothing was planned.
	LocationMissing bool
	Shortfall       time.Duration
	PlannerUsed     string
	FallbackReason  string
	PlanHash        string
	// Need is what the cycle did about the car's charge needs.
	Need NeedResult
}

// Cycle runs the charging cycle for one car at a time.
type Cycle struct {
	vehicle Vehicle
	planner Planner
	store   PlanStore
	clock   clock.Clock
	cfg     CycleConfig
}

// NewCycle checks cfg and fills its defaults.
func NewCycle(v Vehicle, p Planner, store PlanStore, clk clock.Clock, cfg CycleConfig) (*Cycle, error) {
	if v == nil || p == nil || store == nil || clk == nil {
		return nil, fmt.Errorf("%w: cycle needs a vehicle, a planner, a plan store and a clock", ErrInvalidConfig)
	}
	if cfg.Location == nil {
		return nil, &ConfigError{Var: "TIMEZONE", Reason: "no time zone"}
	}
	if cfg.Home.RadiusM == 0 {
		cfg.Home.RadiusM = DefaultHomeRadiusM
	}
	if err := cfg.Home.Validate(); err != nil {
		return nil, &ConfigError{Var: "HOME_LAT/HOME_LON/HOME_RADIUS_M", Token: fmt.Sprint(cfg.Home), Reason: err.Error()}
	}
	if cfg.CommandSpacing == 0 {
		cfg.CommandSpacing = DefaultCommandSpacing
	}
	if cfg.WakeTimeout <= 0 {
		cfg.WakeTimeout = DefaultWakeTimeout
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Needs != nil && cfg.NeedTariff == nil {
		return nil, fmt.Errorf("%w: charge needs need a tariff", ErrInvalidConfig)
	}
	probe := PlanInput{
		SoC: 0, TargetPercent: cfg.Charge.TargetPercent, FloorPercent: cfg.Charge.FloorPercent,
		BatteryKWh: cfg.Charge.BatteryKWh, ChargerKW: cfg.Charge.ChargerKW, Efficiency: cfg.Charge.Efficiency,
		ReadyBy: cfg.Charge.ReadyBy,
	}
	if err := probe.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &Cycle{vehicle: v, planner: p, store: store, clock: clk, cfg: cfg}, nil
}

// Run is one cycle for vin:
//
//  1. take the car's lease (ErrCycleBusy if another cycle has it);
//  2. one vehicle_data read: asleep → Result{Asleep}, nothing else; any other
//     error → ErrVehicleRead, no command; not at home → nothing to do;
//  3. plan, convert, reconcile against the schedules just read;
//  4. removals, then additions, spaced by CommandSpacing. A command that finds
//     the car asleep wakes it once (WakeUp, WaitOnline) and is retried once;
//     a second sleep in the same cycle does not wake it again. Any other
//     failure stops the cycle;
//  5. the plan hash is stored only when every command succeeded.
//
// A second run with the same inputs finds nothing to add or remove and sends
// no command.
func (c *Cycle) Run(ctx context.Context, vin string) (Result, error) {
	release, err := c.store.AcquireCycle(ctx, vin, c.cfg.LeaseTTL)
	if err != nil {
		if errors.Is(err, ErrCycleBusy) {
			return Result{}, fmt.Errorf("cycle %s: %w", vin, err)
		}
		return Result{}, fmt.Errorf("%w: cycle lease for %s: %w", ErrPlanStore, vin, err)
	}
	defer release()

	var res Result
	list, err := c.listNeeds(ctx, vin)
	if err != nil {
		return res, err
	}
	snap, err := c.read(ctx, vin, list, &res)
	if err != nil || res.Asleep {
		return res, err
	}
	now := c.clock.Now()
	if len(list) > 0 {
		if err := c.settleNeeds(ctx, vin, snap, list, now, &res); err != nil {
			return res, err
		}
	}
	if !snap.HasLocation {
		// Not "away": unknown. Said so, so the owner learns the token lacks
		// the vehicle_location scope instead of seeing no schedule, ever.
		res.LocationMissing = true
		return res, nil
	}
	if !c.cfg.Home.Contains(LatLon{Lat: snap.Latitude, Lon: snap.Longitude}) {
		return res, nil
	}
	res.AtHome = true
	err = c.planAtHome(ctx, vin, snap, list, now, &res)
	return res, err
}

// planAtHome plans the car at home (the daily target and a need whose
// horizon has begun), puts the plan and the standing schedules on the car,
// and stores the plan's hash once every command succeeded.
func (c *Cycle) planAtHome(ctx context.Context, vin string, snap Snapshot, list []needs.Need, now time.Time, res *Result) error {
	in := c.planInput(snap)
	plan, err := c.planner.Plan(ctx, in)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	res.Plan, res.Shortfall = plan.Windows, plan.Shortfall
	res.PlannerUsed, res.FallbackReason = plan.Source, plan.FallbackReason

	needWindows, err := c.planNeed(ctx, vin, snap, list, now, res)
	if err != nil {
		return err
	}
	if len(needWindows) > 0 {
		res.Plan = mergeWindows(append(plan.Windows[:len(plan.Windows):len(plan.Windows)], needWindows...))
	}
	desired := ToSchedules(res.Plan, c.cfg.Location, c.cfg.Home.Point())
	withStanding := append(desired[:len(desired):len(desired)], c.standing(snap, in.Now, plan.Deadline)...)
	add, remove, err := Reconcile(snap.Schedules, withStanding, c.cfg.Home.Point(), snap.MaxSchedules)
	if errors.Is(err, ErrTooManySchedules) && len(withStanding) > len(desired) {
		// No room for both: the plan matters more than the guard.
		withStanding = desired
		add, remove, err = Reconcile(snap.Schedules, desired, c.cfg.Home.Point(), snap.MaxSchedules)
	}
	res.PlanHash = PlanHash(withStanding)
	if err != nil {
		return err
	}

	if len(add)+len(remove) > 0 {
		if err := c.send(ctx, vin, add, remove, res); err != nil {
			return err
		}
	}
	// The stored hash only saves a write when it is already current; a
	// failed read just means we write it again.
	if stored, err := c.store.LoadPlanHash(ctx, vin); err == nil && stored == res.PlanHash {
		return nil
	}
	if err := c.store.SavePlanHash(ctx, vin, res.PlanHash); err != nil {
		return fmt.Errorf("%w: save plan hash: %w", ErrPlanStore, err)
	}
	return nil
}

// listNeeds reads the car's charge needs (none when the cycle has no book).
func (c *Cycle) listNeeds(ctx context.Context, vin string) ([]needs.Need, error) {
	if c.cfg.Needs == nil {
		return nil, nil
	}
	list, err := c.cfg.Needs.ListVIN(ctx, vin)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNeeds, err)
	}
	return list, nil
}

// read makes the cycle's one vehicle_data read. An asleep car is left
// asleep (res.Asleep) unless a charge need asks for a step now (an outcome,
// a restore, a raise): then it is woken, once, and read again.
func (c *Cycle) read(ctx context.Context, vin string, list []needs.Need, res *Result) (Snapshot, error) {
	snap, err := c.vehicle.VehicleData(ctx, vin)
	if errors.Is(err, ErrAsleep) && needActionDue(list, c.clock.Now()) {
		res.Woke = true
		if werr := c.wake(ctx, vin); werr != nil {
			return Snapshot{}, fmt.Errorf("%w: wake for a charge need: %w", ErrVehicleRead, werr)
		}
		snap, err = c.vehicle.VehicleData(ctx, vin)
	}
	if errors.Is(err, ErrAsleep) {
		res.Asleep = true
		return Snapshot{}, nil
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("%w: %w", ErrVehicleRead, err)
	}
	return snap, nil
}

// mergeWindows sorts windows and joins those that overlap or touch.
func mergeWindows(ws []Window) []Window {
	ivs := make([]Interval, len(ws))
	for i, w := range ws {
		ivs[i] = Interval(w)
	}
	merged := mergeIntervals(ivs)
	out := make([]Window, len(merged))
	for i, iv := range merged {
		out[i] = Window(iv)
	}
	return out
}

// standing is the standing schedules this cycle wants (standing.go): all
// of them, but for a plugged-in car whose plan aims below its charge limit
// the occurrences up to the plan's deadline are left out, so the plan alone
// decides tonight.
func (c *Cycle) standing(snap Snapshot, now, deadline time.Time) []Schedule {
	if c.cfg.Standing == nil {
		return nil
	}
	list := Standing(c.cfg.Standing, c.cfg.Home.Point())
	limit := snap.ChargeLimitSOC
	if limit <= 0 {
		limit = 100
	}
	if snap.Plugged && c.cfg.Charge.TargetPercent < limit {
		list = WithoutOccurrences(list, now, deadline, c.cfg.Location)
	}
	return list
}

func (c *Cycle) planInput(snap Snapshot) PlanInput {
	target := c.cfg.Charge.TargetPercent
	// The car stops at its own charge limit: planning past it would only
	// hold cheap time that cannot be used.
	if snap.ChargeLimitSOC > 0 && snap.ChargeLimitSOC < target {
		target = snap.ChargeLimitSOC
	}
	return PlanInput{
		Now:           c.clock.Now(),
		SoC:           snap.BatteryLevel,
		TargetPercent: target,
		FloorPercent:  c.cfg.Charge.FloorPercent,
		BatteryKWh:    c.cfg.Charge.BatteryKWh,
		ChargerKW:     c.cfg.Charge.ChargerKW,
		Efficiency:    c.cfg.Charge.Efficiency,
		ReadyBy:       c.cfg.Charge.ReadyBy,
	}
}

// send removes first (freeing slots), then adds; it stops at the first
// failure.
func (c *Cycle) send(ctx context.Context, vin string, add []Schedule, remove []int64, res *Result) error {
	sent := 0
	do := func(what string, op func() error) error {
		if sent > 0 {
			if err := pause(ctx, c.cfg.CommandSpacing); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrCommand, what, err)
			}
		}
		sent++
		err := op()
		if errors.Is(err, ErrAsleep) && !res.Woke {
			// The car was awake at the read and fell asleep since: wake it
			// once for the whole cycle and retry this command once.
			res.Woke = true
			if werr := c.wake(ctx, vin); werr != nil {
				return fmt.Errorf("%w: %s: %w", ErrCommand, what, werr)
			}
			err = op()
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCommand, what, err)
		}
		return nil
	}
	for _, id := range remove {
		if err := do(fmt.Sprintf("remove schedule %d", id), func() error {
			return c.vehicle.RemoveChargeSchedule(ctx, vin, id)
		}); err != nil {
			return err
		}
		res.Removed++
		res.Changed = true
	}
	for _, s := range add {
		if err := do(fmt.Sprintf("add schedule %d", s.ID), func() error {
			return c.vehicle.AddChargeSchedule(ctx, vin, s)
		}); err != nil {
			return err
		}
		res.Added++
		res.Changed = true
	}
	return nil
}

func (c *Cycle) wake(ctx context.Context, vin string) error {
	if err := c.vehicle.WakeUp(ctx, vin); err != nil {
		return fmt.Errorf("wake up: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.WakeTimeout)
	defer cancel()
	if err := c.vehicle.WaitOnline(wctx, vin); err != nil {
		return fmt.Errorf("wait online: %w", err)
	}
	return nil
}

// pause waits d unless ctx ends first; d ≤ 0 does not wait.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
