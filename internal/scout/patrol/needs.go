package patrol

import (
	"context"
	"time"

	"github.com/offpeak-charging/offpeak/internal/needs"
)

// Trigger reasons for charge needs. Any cycle serves the car's needs, so
// these are asked for only when no other trigger is pending.
const (
	// ReasonNeedWindow: a need's horizon began (needs.Horizon before its
	// `by`) with the car at home and no cycle since to raise its limit —
	// a car left plugged in for days gets no arrival to trigger one.
	ReasonNeedWindow = "need_window"
	// ReasonNeedDue: a need's `by` passed (its outcome is to be recorded)
	// or its raised limit is to be put back.
	ReasonNeedDue = "need_due"
)

// NeedReason is the need trigger the rules ask for, and the step's key in
// Record.NeedSteps, or "" when there is none. Each step of each need is
// asked for once: the worker's answer changes the need (a raised limit, an
// outcome) and the step is remembered, so a cycle that could not act (the
// car was elsewhere after all) is not asked for again every tick. A due
// step is asked for whether the car is awake or not (the worker wakes it
// once to put its limit back); a window step only when the car was last
// seen at home.
func NeedReason(list []needs.Need, rec Record, now time.Time) (reason, key string) {
	for _, n := range list {
		var k, r string
		switch {
		case n.OutcomeDue(now) || n.RestoreDue(now):
			k, r = n.ID+"/due", ReasonNeedDue
		case n.RaiseDue(now) && rec.AtHome:
			k, r = n.ID+"/window", ReasonNeedWindow
		default:
			continue
		}
		if _, done := rec.NeedSteps[k]; !done {
			return r, k
		}
	}
	return "", ""
}

// claimNeed claims a need trigger for the car, in the same conditional
// write as every claim: of two overlapping ticks one calls the worker.
// Steps of needs no longer listed are forgotten.
func (p *Patrol) claimNeed(ctx context.Context, vin string) Decision {
	list, err := p.store.Needs(ctx, vin)
	if err != nil {
		p.log.Warn("could not read the car's charge needs", "vin", vin, "error", err)
		return Decision{}
	}
	if len(list) == 0 {
		return Decision{}
	}
	var dec Decision
	now := p.clock.Now()
	err = p.store.UpdateCar(ctx, vin, func(rec *Record) bool {
		dec = Decision{}
		if rec.Pending != nil {
			return false // a pending cycle serves the needs too
		}
		reason, key := NeedReason(list, *rec, now)
		if reason == "" {
			return false
		}
		rec.NeedSteps = keepSteps(rec.NeedSteps, list)
		rec.NeedSteps[key] = now
		rec.Pending = &Pending{Reason: reason, Since: now, AttemptAt: now, Attempts: 1}
		dec = Decision{Kind: DecideTrigger, Reason: reason}
		return true
	})
	if err != nil {
		p.log.Warn("could not claim a charge need's trigger", "vin", vin, "error", err)
		return Decision{}
	}
	return dec
}

// keepSteps is steps without the needs no longer in list.
func keepSteps(steps map[string]time.Time, list []needs.Need) map[string]time.Time {
	out := map[string]time.Time{}
	for k, t := range steps {
		for _, n := range list {
			if k == n.ID+"/due" || k == n.ID+"/window" {
				out[k] = t
			}
		}
	}
	return out
}
