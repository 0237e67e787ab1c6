package patrol

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/offpeak-charging/offpeak/internal/contract"
)

// tickVehicle looks at one car and acts on what it saw, in steps: recall
// what was remembered, respect the car's own rate limit, the free state
// check, the one billed read, observe, claim the decision, act on it.
func (p *Patrol) tickVehicle(ctx context.Context, car Car) VehicleReport {
	rep := VehicleReport{VIN: car.VIN, Action: ActionNone}
	prev, err := p.recall(ctx, car.VIN)
	if err != nil {
		return p.failed(rep, err)
	}
	if prev != nil && prev.BackoffUntil.After(p.clock.Now()) {
		rep.State = prev.State
		return p.failed(rep, fmt.Errorf("rate limited by the Fleet API until %s", prev.BackoffUntil.Format(time.RFC3339)))
	}
	vstate, err := p.state(ctx, car)
	if err != nil {
		return p.fleetFailed(ctx, rep, err)
	}
	rep.State = vstate
	if vstate != StateOnline {
		return p.asleep(ctx, rep, vstate)
	}
	reading, err := p.fleet.Read(ctx, car.VIN)
	switch {
	case errors.Is(err, ErrAsleep):
		return p.asleep(ctx, rep, StateAsleep)
	case err != nil:
		return p.fleetFailed(ctx, rep, err)
	}
	obs := p.observe(car.VIN, reading, prev)
	rep.saw(obs)
	dec, err := p.claim(ctx, car.VIN, obs)
	if err != nil {
		return p.failed(rep, fmt.Errorf("write state: %w", err))
	}
	if dec.Kind == DecideNothing {
		dec = p.claimNeed(ctx, car.VIN)
	}
	return p.act(ctx, rep, dec, obs)
}

// asleep records the sleep, and asks for a cycle if a charge need's step
// is due (the worker may wake the car for it, once per step).
func (p *Patrol) asleep(ctx context.Context, rep VehicleReport, vstate string) VehicleReport {
	rep = p.sawAsleep(ctx, rep, vstate)
	if dec := p.claimNeed(ctx, rep.VIN); dec.Kind == DecideTrigger {
		return p.act(ctx, rep, dec, Observation{})
	}
	return rep
}

// recall reads what the last ticks remembered of the car: nil when it was
// never seen, or when its record is unreadable (then it is looked at
// afresh, as if never seen).
func (p *Patrol) recall(ctx context.Context, vin string) (*Record, error) {
	rec, found, err := p.store.Car(ctx, vin)
	switch {
	case err == nil && found:
		return &rec, nil
	case err == nil:
		return nil, nil
	case errors.Is(err, ErrCorrupt):
		p.log.Warn("state record unreadable; treating the car as never seen", "vin", vin, "error", err)
		return nil, nil
	default:
		return nil, fmt.Errorf("read state: %w", err)
	}
}

// state is the free state check, which never wakes the car: the account's
// list already told it, or one call does.
func (p *Patrol) state(ctx context.Context, car Car) (string, error) {
	if car.Listed {
		return car.State, nil
	}
	return p.fleet.State(ctx, car.VIN)
}

// observe classifies the reading, and says when the car sent no position.
func (p *Patrol) observe(vin string, r Reading, prev *Record) Observation {
	obs := Observe(r, prev, p.cfg.Home)
	if !obs.HasLocation {
		p.log.Warn("the car reported no position; is the vehicle_location scope granted?",
			"vin", vin, "fix", "run fleetctl login and approve every scope")
	}
	return obs
}

// claim decides and records the decision in one conditional write (see
// the function claim).
func (p *Patrol) claim(ctx context.Context, vin string, obs Observation) (Decision, error) {
	var dec Decision
	err := p.store.UpdateCar(ctx, vin, func(rec *Record) bool {
		dec = claim(rec, obs, p.clock.Now(), p.cfg.PendingTTL)
		return true
	})
	return dec, err
}

// act does what the decision says: nothing, leave the trigger to the tick
// sending it, drop a trigger too old, or call the worker.
func (p *Patrol) act(ctx context.Context, rep VehicleReport, dec Decision, obs Observation) VehicleReport {
	switch dec.Kind {
	case DecideNothing:
		return rep
	case DecideWait:
		rep.Action, rep.Reason = ActionPending, dec.Reason
		return rep
	case DecideDrop:
		p.log.Warn("dropping a trigger the worker never confirmed", "vin", rep.VIN, "reason", dec.Reason, "after", p.cfg.PendingTTL)
		return rep
	}
	rep.Reason = dec.Reason
	return p.trigger(ctx, rep, obs)
}

// trigger calls the worker and records the outcome; a failure stays pending.
func (p *Patrol) trigger(ctx context.Context, rep VehicleReport, obs Observation) VehicleReport {
	p.log.Info("triggering the charging cycle", "vin", rep.VIN, "reason", rep.Reason,
		"at_home", obs.AtHome, "distance_m", obs.DistanceM, "ready", obs.Ready, "battery_level", obs.BatteryLevel)
	// The worker reads the car itself: nothing of this tick's reading is sent.
	ans, err := p.worker.RunCycle(ctx, contract.CycleRequest{VIN: rep.VIN, Reason: rep.Reason})
	if err == nil && ans.Asleep {
		err = errors.New("the car fell asleep before the cycle could read it")
	}
	now := p.clock.Now()
	if uerr := p.store.UpdateCar(ctx, rep.VIN, func(rec *Record) bool { return settle(rec, rep.Reason, now, err) }); uerr != nil {
		p.log.Error("could not record the trigger's outcome", "vin", rep.VIN, "error", uerr)
	}
	return p.answered(rep, ans, err)
}

// answered reports the worker's answer to a trigger.
func (p *Patrol) answered(rep VehicleReport, ans contract.CycleResponse, err error) VehicleReport {
	switch {
	case errors.Is(err, ErrNeedsOperator):
		p.log.Error("the worker cannot change the car until the operator acts", "vin", rep.VIN, "error", err)
		rep.Action, rep.Error = ActionPending, err.Error()
	case err != nil:
		p.log.Warn("trigger failed; kept pending for a later tick", "vin", rep.VIN, "error", err)
		rep.Action, rep.Error = ActionPending, err.Error()
	default:
		p.log.Info("worker ran the charging cycle", "vin", rep.VIN, "changed", ans.Changed,
			"added", ans.Commands.Added, "removed", ans.Commands.Removed)
		rep.Action = ActionTriggered
	}
	return rep
}

// sawAsleep records that the car was asleep or offline (markAsleep).
func (p *Patrol) sawAsleep(ctx context.Context, rep VehicleReport, vstate string) VehicleReport {
	rep.State, rep.Action, rep.observed = vstate, ActionAsleep, true
	err := p.store.UpdateCar(ctx, rep.VIN, func(rec *Record) bool {
		markAsleep(rec, vstate, p.clock.Now())
		return true
	})
	if err != nil {
		p.log.Warn("could not record the car's sleep", "vin", rep.VIN, "error", err)
	}
	return rep
}

// fleetFailed reports a failed Fleet call; a rate limit that says how long
// is remembered, so the next ticks leave this car alone until then.
func (p *Patrol) fleetFailed(ctx context.Context, rep VehicleReport, err error) VehicleReport {
	if d, ok := retryAfter(err); ok {
		until := p.clock.Now().Add(d)
		uerr := p.store.UpdateCar(ctx, rep.VIN, func(rec *Record) bool {
			rec.BackoffUntil = until
			return true
		})
		if uerr != nil {
			p.log.Warn("could not record the rate limit", "vin", rep.VIN, "error", uerr)
		}
	}
	return p.failed(rep, err)
}

func (p *Patrol) failed(rep VehicleReport, err error) VehicleReport {
	p.log.Warn("vehicle not observed", "vin", rep.VIN, "error", err)
	rep.Action, rep.Error = ActionError, err.Error()
	return rep
}
