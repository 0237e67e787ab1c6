package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/state"
)

// FleetVehicle adapts the Fleet client to what a charging cycle needs,
// translating the client's error kinds into the cycle's.
type FleetVehicle struct {
	Client *fleet.Client
	// PollEvery is how often WaitOnline checks the free vehicle state after a
	// wake; 0 means 5 s.
	PollEvery time.Duration
}

var _ charging.Vehicle = FleetVehicle{}

// VehicleData makes the cycle's one read.
func (v FleetVehicle) VehicleData(ctx context.Context, vin string) (charging.Snapshot, error) {
	d, err := v.Client.VehicleData(ctx, vin, fleet.EndpointChargeState, fleet.EndpointLocationData, fleet.EndpointChargeScheduleData)
	if err != nil {
		return charging.Snapshot{}, asleepOr(err)
	}
	snap := charging.Snapshot{State: d.State}
	if d.Charge != nil {
		snap.BatteryLevel = d.Charge.BatteryLevel
		snap.ChargeLimitSOC = d.Charge.ChargeLimitSOC
		snap.ChargingState = d.Charge.ChargingState
		snap.Plugged = d.Charge.CablePlugged()
	}
	if d.Location != nil {
		snap.Latitude, snap.Longitude, snap.HasLocation = d.Location.Latitude, d.Location.Longitude, true
	}
	if d.Schedules == nil {
		// Reconciling against "no schedules" when they simply were not
		// returned would duplicate them: treat it as a failed read.
		return charging.Snapshot{}, fmt.Errorf("vehicle_data carried no charge_schedule_data (firmware older than 2024.26?)")
	}
	snap.MaxSchedules = d.Schedules.MaxNumChargeSchedules
	for _, s := range d.Schedules.Schedules {
		snap.Schedules = append(snap.Schedules, charging.Schedule{
			ID: s.ID, DaysMask: s.DaysOfWeek, StartMin: s.StartTime, EndMin: s.EndTime,
			Enabled: s.Enabled, StartEnabled: s.StartEnabled, EndEnabled: s.EndEnabled, OneTime: s.OneTime,
			Lat: s.Latitude, Lon: s.Longitude,
		})
	}
	return snap, nil
}

// WakeUp sends the one wake a cycle may spend.
func (v FleetVehicle) WakeUp(ctx context.Context, vin string) error {
	_, err := v.Client.WakeUp(ctx, vin)
	return asleepOr(err)
}

// WaitOnline polls the free state endpoint until the car is online.
func (v FleetVehicle) WaitOnline(ctx context.Context, vin string) error {
	every := v.PollEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		veh, err := v.Client.Vehicle(ctx, vin)
		if err == nil && veh.State == fleet.StateOnline {
			return nil
		}
		if err != nil && !fleet.IsTransient(err) && !errors.Is(err, fleet.ErrAsleep) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: still not online after the wake: %w", charging.ErrAsleep, ctx.Err())
		case <-t.C:
		}
	}
}

// AddChargeSchedule sends one schedule with our id.
func (v FleetVehicle) AddChargeSchedule(ctx context.Context, vin string, s charging.Schedule) error {
	days, err := fleet.DayNames(s.DaysMask)
	if err != nil {
		return err
	}
	return asleepOr(v.Client.AddChargeSchedule(ctx, vin, fleet.ScheduleRequest{
		ID: s.ID, DaysOfWeek: days, Enabled: s.Enabled, StartEnabled: s.StartEnabled, EndEnabled: s.EndEnabled,
		OneTime: s.OneTime, StartTime: s.StartMin, EndTime: s.EndMin, Lat: s.Lat, Lon: s.Lon,
	}))
}

// RemoveChargeSchedule removes one schedule by id.
func (v FleetVehicle) RemoveChargeSchedule(ctx context.Context, vin string, id int64) error {
	return asleepOr(v.Client.RemoveChargeSchedule(ctx, vin, id))
}

// asleepOr adds the cycle's error kinds to the client's, keeping both for errors.Is.
func asleepOr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fleet.ErrAsleep):
		return fmt.Errorf("%w: %w", charging.ErrAsleep, err)
	case errors.Is(err, fleet.ErrCommandFailed):
		return fmt.Errorf("%w: %w", charging.ErrCommandRejected, err)
	}
	return err
}

// PlanStore keeps the confirmed plan's hash and the per-car cycle lease in
// the state store (file or GCS), so two worker instances never run two
// cycles for one car: the lease is an object created only if absent
// (generation 0), taken over only when expired, with a generation match.
type PlanStore struct {
	Store  state.Store
	Clock  charging.Clock
	Holder string
}

var _ charging.PlanStore = PlanStore{}

type planRecord struct {
	Hash    string    `json:"hash"`
	SavedAt time.Time `json:"saved_at"`
}

type cycleLease struct {
	Holder    string    `json:"holder"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LoadPlanHash returns the hash the car last confirmed ("" if none).
func (p PlanStore) LoadPlanHash(ctx context.Context, vin string) (string, error) {
	rec, _, err := state.Load[planRecord](ctx, p.Store, "plans/"+vin+".json")
	if errors.Is(err, state.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", charging.ErrPlanStore, err)
	}
	return rec.Hash, nil
}

// SavePlanHash records a hash after every command succeeded.
func (p PlanStore) SavePlanHash(ctx context.Context, vin, hash string) error {
	_, err := state.Update(ctx, p.Store, "plans/"+vin+".json", func(*planRecord, bool) (*planRecord, error) {
		return &planRecord{Hash: hash, SavedAt: p.Clock.Now().UTC()}, nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", charging.ErrPlanStore, err)
	}
	return nil
}

var leaseSeq atomic.Int64

// AcquireCycle takes the car's cycle lease.
func (p PlanStore) AcquireCycle(ctx context.Context, vin string, ttl time.Duration) (func(), error) {
	key := "leases/cycle-" + vin + ".json"
	now := p.Clock.Now()
	// Each acquisition is its own holder: two requests in one instance must
	// exclude each other as much as two instances do.
	mine := cycleLease{Holder: fmt.Sprintf("%s/%d", p.Holder, leaseSeq.Add(1)), ExpiresAt: now.Add(ttl).UTC()}
	_, err := state.Update(ctx, p.Store, key, func(cur *cycleLease, exists bool) (*cycleLease, error) {
		if exists && cur.ExpiresAt.After(now) {
			return nil, charging.ErrCycleBusy
		}
		return &mine, nil
	})
	if errors.Is(err, charging.ErrCycleBusy) || errors.Is(err, state.ErrConflict) {
		return nil, charging.ErrCycleBusy
	}
	if err != nil {
		return nil, fmt.Errorf("%w: take cycle lease: %w", charging.ErrPlanStore, err)
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		obj, err := p.Store.Get(rctx, key)
		if err != nil {
			return
		}
		var cur cycleLease
		if json.Unmarshal(obj.Data, &cur) == nil && cur.Holder == mine.Holder {
			_ = p.Store.Delete(rctx, key, obj.Generation)
		}
	}, nil
}
