package charging

import (
	"fmt"
	"time"
)

// NeedInput is what PlanNeed knows of a charge need ("90 % by Friday
// 16:00") and of the car.
type NeedInput struct {
	Now           time.Time
	SoC           int       // battery level now, %
	TargetPercent int       // level wanted at By, %
	By            time.Time // the need's deadline (absolute)
	BatteryKWh    float64   // usable capacity
	ChargerKW     float64   // power at the wall
	Efficiency    float64   // 0 → DefaultEfficiency
}

// NeedPlan is PlanNeed's answer.
type NeedPlan struct {
	// Windows is every minute to charge, sorted, merged, minute-aligned.
	Windows []Window
	// Peak is the part of Windows outside the cheap hours (empty when the
	// cheap hours before By are enough).
	Peak []Window
	// Needed is the charging time from SoC to the target.
	Needed time.Duration
	// CheapTime and PeakTime split the planned time by tariff.
	CheapTime, PeakTime time.Duration
	// PeakKWh is the energy the plan buys at peak (from the grid, at the wall).
	PeakKWh float64
	// Reachable is false when even every minute until By cannot deliver
	// Needed (the charger is too slow, or By is too close); Windows then
	// holds every minute and Shortfall what is missing.
	Reachable bool
	Shortfall time.Duration
}

// PlanNeed plans the charging for one need on tariff t. The cheap hours
// before By come first, earliest first, as the builtin planner takes them
// (a charge that runs longer than estimated still ends in cheap time).
// Peak minutes are added only for what the cheap hours cannot hold, and
// they are the peak minutes closest to By: on a two-tier tariff every
// peak minute costs the same, and the latest ones are bought only if the
// need still stands then (a need deleted or a plan made again before them
// buys nothing at peak), and keep the battery at a high level for the
// shortest time. SoC at or above the target plans nothing.
func PlanNeed(t *Tariff, in NeedInput) (NeedPlan, error) {
	if err := in.validate(t); err != nil {
		return NeedPlan{}, err
	}
	plan := NeedPlan{Reachable: true}
	if in.SoC >= in.TargetPercent {
		return plan, nil
	}
	pi := in.planInput()
	plan.Needed = pi.chargeTime(in.TargetPercent - in.SoC)
	// Minute-aligned, as schedules are: the cheap edges are whole minutes too.
	start, end := in.Now.Truncate(time.Minute), in.By.Truncate(time.Minute)
	if !start.Before(end) {
		plan.Reachable, plan.Shortfall = false, plan.Needed
		return plan, nil
	}
	cheap := t.CheapIntervals(start, end)
	remaining := plan.Needed
	var taken []Interval
	for _, iv := range cheap {
		take := min(remaining, iv.Duration())
		taken = append(taken, Interval{iv.Start, iv.Start.Add(take)})
		remaining -= take
		plan.CheapTime += take
		if remaining <= 0 {
			break
		}
	}
	var peak []Interval
	if remaining > 0 {
		peak, remaining = latestFirst(subtractIntervals([]Interval{{start, end}}, cheap), remaining)
		for _, iv := range peak {
			plan.PeakTime += iv.Duration()
		}
	}
	if remaining > 0 {
		plan.Reachable, plan.Shortfall = false, remaining
	}
	plan.Windows = toWindows(mergeIntervals(append(taken, peak...)))
	plan.Peak = toWindows(mergeIntervals(peak))
	plan.PeakKWh = in.peakKWh(plan.CheapTime, plan.PeakTime)
	return plan, nil
}

// latestFirst takes up to want of ivs (sorted), from the end backwards,
// and returns the pieces (sorted) and what it could not take.
func latestFirst(ivs []Interval, want time.Duration) ([]Interval, time.Duration) {
	var out []Interval
	for i := len(ivs) - 1; i >= 0 && want > 0; i-- {
		take := min(want, ivs[i].Duration())
		out = append([]Interval{{ivs[i].End.Add(-take), ivs[i].End}}, out...)
		want -= take
	}
	return out, want
}

// peakKWh is the grid energy bought in peak time: what the need takes
// beyond the energy of the cheap time, at most what the charger draws in
// the peak minutes (the last minute is rounded up, so it is not all used).
func (in NeedInput) peakKWh(cheap, peak time.Duration) float64 {
	if peak <= 0 {
		return 0
	}
	needKWh := float64(in.TargetPercent-in.SoC) / 100 * in.BatteryKWh / in.planInput().efficiency()
	left := needKWh - cheap.Hours()*in.ChargerKW
	return max(0, min(left, peak.Hours()*in.ChargerKW))
}

func (in NeedInput) planInput() PlanInput {
	return PlanInput{Now: in.Now, SoC: in.SoC, TargetPercent: in.TargetPercent,
		BatteryKWh: in.BatteryKWh, ChargerKW: in.ChargerKW, Efficiency: in.Efficiency}
}

// validate applies the planner's own checks (battery, power, efficiency,
// percentages) and adds the need's.
func (in NeedInput) validate(t *Tariff) error {
	if t == nil {
		return fmt.Errorf("%w: no tariff", ErrPlanInput)
	}
	if in.By.IsZero() {
		return fmt.Errorf("%w: the need has no deadline", ErrPlanInput)
	}
	return in.planInput().validate()
}
