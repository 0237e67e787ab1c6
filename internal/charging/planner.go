package charging

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Planner errors.
var (
	// ErrPlanInput: the input cannot be planned (battery size, power, percentages).
	ErrPlanInput = errors.New("invalid plan input")
	// ErrPlanner: an external planner failed (transport, status, timeout).
	ErrPlanner = errors.New("planner failed")
	// ErrPlannerQuota: the external planner's daily quota is used up; it was not called.
	ErrPlannerQuota = errors.New("planner daily quota exhausted")
	// ErrPlannerResponse: the external planner answered something we cannot trust.
	ErrPlannerResponse = errors.New("planner answer malformed")
)

// DefaultEfficiency is the share of grid energy that reaches the battery when
// none is configured. evcc uses 0.85; 0.9 is closer to an 11 kW AC charger.
const DefaultEfficiency = 0.9

// Names of the planners, as Plan.Source and Result.PlannerUsed report them.
const (
	SourceBuiltin  = "builtin"
	SourceExternal = "external"
)

// Window is one span of planned charging, in absolute time.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// PlanInput is what a planner needs to know about the car and the morning.
type PlanInput struct {
	Now           time.Time
	SoC           int       // battery level now, %
	TargetPercent int       // level wanted at ReadyBy, %
	FloorPercent  int       // below this the car may charge outside cheap time, up to it; 0 = never
	BatteryKWh    float64   // usable capacity
	ChargerKW     float64   // power at the wall
	Efficiency    float64   // 0 → DefaultEfficiency
	ReadyBy       ClockTime // local time; the deadline is its next occurrence after Now
}

func (in PlanInput) efficiency() float64 {
	if in.Efficiency == 0 {
		return DefaultEfficiency
	}
	return in.Efficiency
}

func (in PlanInput) validate() error {
	switch {
	case in.BatteryKWh <= 0 || math.IsNaN(in.BatteryKWh) || math.IsInf(in.BatteryKWh, 0):
		return fmt.Errorf("%w: battery capacity %v kWh", ErrPlanInput, in.BatteryKWh)
	case in.ChargerKW <= 0 || math.IsNaN(in.ChargerKW) || math.IsInf(in.ChargerKW, 0):
		return fmt.Errorf("%w: charger power %v kW", ErrPlanInput, in.ChargerKW)
	case in.efficiency() <= 0 || in.efficiency() > 1 || math.IsNaN(in.Efficiency):
		return fmt.Errorf("%w: efficiency %v", ErrPlanInput, in.Efficiency)
	case in.SoC < 0 || in.SoC > 100:
		return fmt.Errorf("%w: state of charge %d%%", ErrPlanInput, in.SoC)
	case in.TargetPercent < 0 || in.TargetPercent > 100:
		return fmt.Errorf("%w: target %d%%", ErrPlanInput, in.TargetPercent)
	case in.FloorPercent < 0 || in.FloorPercent > 100:
		return fmt.Errorf("%w: floor %d%%", ErrPlanInput, in.FloorPercent)
	case in.ReadyBy.Hour < 0 || in.ReadyBy.Hour > 23 || in.ReadyBy.Minute < 0 || in.ReadyBy.Minute > 59:
		return fmt.Errorf("%w: ready-by %v", ErrPlanInput, in.ReadyBy)
	}
	return nil
}

// chargeTime is how long the charger needs to raise the battery by pct
// percent, rounded up to a whole minute (schedules have minute resolution).
func (in PlanInput) chargeTime(pct int) time.Duration {
	if pct <= 0 {
		return 0
	}
	kwh := float64(pct) / 100 * in.BatteryKWh / in.efficiency()
	minutes := math.Ceil(kwh / in.ChargerKW * 60)
	return time.Duration(minutes) * time.Minute
}

// floorTime is the charging time that may lie outside cheap windows: what
// raises SoC to the floor (never past the target), zero when SoC ≥ floor.
func (in PlanInput) floorTime() time.Duration {
	top := min(in.FloorPercent, in.TargetPercent)
	return in.chargeTime(top - in.SoC)
}

// Plan is a planner's answer.
type Plan struct {
	Windows        []Window      // sorted, merged, minute-aligned
	Deadline       time.Time     // next ReadyBy after Now
	Needed         time.Duration // charging time from SoC to target
	Shortfall      time.Duration // part of Needed the windows do not hold
	Source         string        // SourceBuiltin or SourceExternal
	FallbackReason string        // why the primary planner was not used (FallbackPlanner only)
}

// Planned is the total length of the windows.
func (p Plan) Planned() time.Duration {
	var d time.Duration
	for _, w := range p.Windows {
		d += w.End.Sub(w.Start)
	}
	return d
}

// Planner turns the car's state into charging windows.
type Planner interface {
	Plan(ctx context.Context, in PlanInput) (Plan, error)
}

// BuiltinPlanner plans on a two-tier tariff, where every cheap hour costs the
// same: it takes the earliest cheap time first (robust to a charge that runs
// longer than estimated), trims the last piece, and takes nothing more than
// needed.
type BuiltinPlanner struct {
	Tariff *Tariff
}

var _ Planner = (*BuiltinPlanner)(nil)

// NewBuiltinPlanner returns a planner over t.
func NewBuiltinPlanner(t *Tariff) *BuiltinPlanner { return &BuiltinPlanner{Tariff: t} }

// Plan implements Planner.
//
// SoC ≥ target → no windows. SoC < floor → the plan starts now with the time
// that reaches the floor, cheap or not (a car left nearly empty must have a
// usable range by the morning); the rest goes into cheap time only. When the
// cheap time before the deadline is not enough, all of it is taken and the
// remainder reported as Shortfall; no expensive time is added for it.
func (b *BuiltinPlanner) Plan(_ context.Context, in PlanInput) (Plan, error) {
	if err := in.validate(); err != nil {
		return Plan{}, err
	}
	loc := b.Tariff.Location()
	plan := Plan{Source: SourceBuiltin, Deadline: in.ReadyBy.Next(in.Now, loc)}
	if in.SoC >= in.TargetPercent {
		return plan, nil
	}
	plan.Needed = in.chargeTime(in.TargetPercent - in.SoC)
	// Minute-aligned so every window edge is a whole minute.
	start := in.Now.Truncate(time.Minute)
	remaining := plan.Needed
	var windows []Interval
	cursor := start
	if ft := in.floorTime(); ft > 0 {
		windows = append(windows, Interval{start, start.Add(ft)})
		remaining -= ft
		cursor = start.Add(ft)
	}
	if remaining > 0 && cursor.Before(plan.Deadline) {
		for _, iv := range b.Tariff.CheapIntervals(cursor, plan.Deadline) {
			take := min(remaining, iv.Duration())
			windows = append(windows, Interval{iv.Start, iv.Start.Add(take)})
			remaining -= take
			if remaining <= 0 {
				break
			}
		}
	}
	plan.Shortfall = max(remaining, 0)
	plan.Windows = toWindows(mergeIntervals(windows))
	return plan, nil
}

func toWindows(ivs []Interval) []Window {
	if len(ivs) == 0 {
		return nil
	}
	out := make([]Window, len(ivs))
	for i, iv := range ivs {
		out[i] = Window(iv)
	}
	return out
}

// FallbackPlanner asks Primary and, when it fails for any reason, Fallback.
// The reason is kept in Plan.FallbackReason.
type FallbackPlanner struct {
	Primary, Fallback Planner
}

var _ Planner = FallbackPlanner{}

// Plan implements Planner.
func (f FallbackPlanner) Plan(ctx context.Context, in PlanInput) (Plan, error) {
	if f.Primary != nil {
		p, err := f.Primary.Plan(ctx, in)
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			return Plan{}, err
		}
		fp, ferr := f.Fallback.Plan(ctx, in)
		if ferr != nil {
			return Plan{}, fmt.Errorf("primary planner: %v; fallback planner: %w", err, ferr)
		}
		fp.FallbackReason = err.Error()
		return fp, nil
	}
	return f.Fallback.Plan(ctx, in)
}
