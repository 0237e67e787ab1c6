package charging

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/offpeak-charging/offpeak/internal/needs"
)

// Charge needs in the cycle: "90 % by Saturday 08:00" (internal/needs).
//
// A cycle first settles what is over: a need whose `by` has passed gets its
// outcome (met or missed, by the level this cycle read) and a need that is
// over or was deleted gets the charge limit it found put back — each once,
// recorded in the store with compare-and-swap, so a restart or an
// overlapping cycle never does it twice. This needs no home: a command
// reaches the car anywhere.
//
// Then, at home, the nearest unmet need whose horizon has begun (needs.Horizon
// before its `by`) is planned with PlanNeed: cheap hours first, peak minutes
// only for what they cannot hold. Before its windows go on the car the
// cycle raises the charge limit to the need's target, remembering the
// limit it found; the intent is written before the command, so a crash
// between the two can at worst restore a limit that was never changed.
//
// The Python system's special charging kept none of this: its sessions
// repeated daily, limits stayed raised when the clean-up job was never
// created, and the scout deleted its schedules.

// ErrNeeds: the charge needs could not be read or recorded.
var ErrNeeds = errors.New("charge needs store failed")

// NeedBook is what a cycle needs of the charge needs (*needs.Book fits).
type NeedBook interface {
	ListVIN(ctx context.Context, vin string) ([]needs.Need, error)
	Modify(ctx context.Context, id string, fn func(n *needs.Need) error) (needs.Need, error)
}

// NeedResult is what a cycle did about the car's charge needs.
type NeedResult struct {
	// ID, TargetPercent and By name the need planned for, if any.
	ID            string
	TargetPercent int
	By            time.Time
	// LimitRaised: this cycle raised the car's charge limit for it.
	LimitRaised bool
	// PeakKWh is the energy the need's plan buys at peak; Shortfall what
	// even every minute before By cannot deliver.
	PeakKWh   float64
	Shortfall time.Duration
	// Restored and Settled list needs whose limit this cycle put back and
	// whose outcome it recorded.
	Restored, Settled []string
}

// needActionDue reports whether a need asks for this cycle to reach the
// car even when asleep: an outcome or a restore is due, or a horizon has
// begun with the limit not yet raised. The scout asks for such a cycle
// once per need and step, so it costs at most one wake each.
func needActionDue(list []needs.Need, now time.Time) bool {
	for _, n := range list {
		if n.RestoreDue(now) || n.OutcomeDue(now) || n.RaiseDue(now) {
			return true
		}
	}
	return false
}

// settleNeeds records the outcomes that are due and puts back the limits
// of needs that are over. The car's limit is put back only if it is still
// the one the need set: an owner who changed it since has the last word.
func (c *Cycle) settleNeeds(ctx context.Context, vin string, snap Snapshot, list []needs.Need, now time.Time, res *Result) error {
	for _, n := range list {
		if n.OutcomeDue(now) {
			if _, err := c.cfg.Needs.Modify(ctx, n.ID, func(m *needs.Need) error {
				m.RecordOutcome(snap.BatteryLevel, now)
				return nil
			}); err != nil {
				return fmt.Errorf("%w: record outcome of %s: %w", ErrNeeds, n.ID, err)
			}
			res.Need.Settled = append(res.Need.Settled, n.ID)
		}
		if !n.RestoreDue(now) {
			continue
		}
		if next, ok := needs.Nearest(list, now); ok && next.ID != n.ID && next.InHorizon(now) && next.TargetPercent >= n.Limit.RaisedPercent {
			// The next need keeps the limit up: hand the remembered one on.
			if err := c.handOver(ctx, n, next, now); err != nil {
				return err
			}
			res.Need.Restored = append(res.Need.Restored, n.ID)
			continue
		}
		if snap.ChargeLimitSOC == n.Limit.RaisedPercent && snap.ChargeLimitSOC != n.Limit.PreviousPercent {
			if err := c.vehicle.SetChargeLimit(ctx, vin, n.Limit.PreviousPercent); err != nil {
				return fmt.Errorf("%w: put the charge limit back to %d %%: %w", ErrCommand, n.Limit.PreviousPercent, err)
			}
			res.Changed = true
		}
		if _, err := c.cfg.Needs.Modify(ctx, n.ID, func(m *needs.Need) error {
			_, err := m.MarkRestored(now)
			return err
		}); err != nil {
			return fmt.Errorf("%w: record the restore of %s: %w", ErrNeeds, n.ID, err)
		}
		res.Need.Restored = append(res.Need.Restored, n.ID)
	}
	return nil
}

// handOver passes a finished need's remembered limit to the next one, whose
// horizon has begun and which keeps the limit at least as high.
func (c *Cycle) handOver(ctx context.Context, done, next needs.Need, now time.Time) error {
	prev := done.Limit.PreviousPercent
	if _, err := c.cfg.Needs.Modify(ctx, next.ID, func(m *needs.Need) error {
		m.RaiseLimit(prev, done.Limit.RaisedPercent, now)
		return nil
	}); err != nil {
		return fmt.Errorf("%w: hand the limit on to %s: %w", ErrNeeds, next.ID, err)
	}
	if _, err := c.cfg.Needs.Modify(ctx, done.ID, func(m *needs.Need) error {
		_, err := m.MarkRestored(now)
		return err
	}); err != nil {
		return fmt.Errorf("%w: record the hand-over of %s: %w", ErrNeeds, done.ID, err)
	}
	return nil
}

// planNeed plans the nearest unmet need whose horizon has begun and raises
// the limit for it; it returns the need's windows (nil when there is none).
func (c *Cycle) planNeed(ctx context.Context, vin string, snap Snapshot, list []needs.Need, now time.Time, res *Result) ([]Window, error) {
	n, ok := needs.Nearest(list, now)
	if !ok || !n.InHorizon(now) {
		return nil, nil
	}
	res.Need.ID, res.Need.TargetPercent, res.Need.By = n.ID, n.TargetPercent, n.By
	plan, err := PlanNeed(c.cfg.NeedTariff, NeedInput{
		Now: now, SoC: snap.BatteryLevel, TargetPercent: n.TargetPercent, By: n.By,
		BatteryKWh: c.cfg.Charge.BatteryKWh, ChargerKW: c.cfg.Charge.ChargerKW, Efficiency: c.cfg.Charge.Efficiency,
	})
	if err != nil {
		return nil, fmt.Errorf("plan need %s: %w", n.ID, err)
	}
	res.Need.PeakKWh, res.Need.Shortfall = plan.PeakKWh, plan.Shortfall
	if snap.ChargeLimitSOC < n.TargetPercent {
		// Intent first: a crash after the command still knows what to put back.
		if _, err := c.cfg.Needs.Modify(ctx, n.ID, func(m *needs.Need) error {
			m.RaiseLimit(snap.ChargeLimitSOC, n.TargetPercent, now)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("%w: record the raise for %s: %w", ErrNeeds, n.ID, err)
		}
		if err := c.vehicle.SetChargeLimit(ctx, vin, n.TargetPercent); err != nil {
			return nil, fmt.Errorf("%w: raise the charge limit to %d %%: %w", ErrCommand, n.TargetPercent, err)
		}
		res.Need.LimitRaised, res.Changed = true, true
	}
	return plan.Windows, nil
}
