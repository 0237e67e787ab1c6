package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/state"
)

// CarCommands is the command half of charging.Vehicle: how a command
// reaches the car (signed, REST or an external signer) is its business.
type CarCommands interface {
	AddChargeSchedule(ctx context.Context, vin string, s charging.Schedule) error
	RemoveChargeSchedule(ctx context.Context, vin string, id int64) error
	SetChargeLimit(ctx context.Context, vin string, percent int) error
}

// FleetVehicle adapts the Fleet client (reads, wake) and the command
// router to what a charging cycle needs, translating the client's error
// kinds into the cycle's.
type FleetVehicle struct {
	Client   *fleet.Client
	Commands CarCommands
	// PollEvery is how often WaitOnline checks the free vehicle state after a
	// wake; 0 means 5 s.
	PollEvery time.Duration
}

var _ charging.Vehicle = FleetVehicle{}

// VehicleData makes the cycle's one read.
func (v FleetVehicle) VehicleData(ctx context.Context, vin string) (charging.Snapshot, error) {
	d, err := v.Client.VehicleData(ctx, vin, fleet.EndpointChargeState, fleet.EndpointDriveState, fleet.EndpointLocationData, fleet.EndpointChargeScheduleData)
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

// WaitOnline polls the free state endpoint until the car is online: at
// once, then every PollEvery while it is asleep, waking or the call fails
// transiently, until ctx ends.
func (v FleetVehicle) WaitOnline(ctx context.Context, vin string) error {
	every := v.PollEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	settled := false // the last poll ended the wait: online, or an error that polling again cannot cure
	err := retry.Do(ctx, retry.NewConstant(every), func(ctx context.Context) error {
		veh, err := v.Client.Vehicle(ctx, vin)
		switch {
		case err == nil && veh.State == fleet.StateOnline:
		case err == nil, fleet.IsTransient(err), errors.Is(err, fleet.ErrAsleep):
			return retry.RetryableError(errNotOnline)
		}
		settled = true
		return err
	})
	if !settled {
		return fmt.Errorf("%w: still not online after the wake: %w", charging.ErrAsleep, ctx.Err())
	}
	return err
}

// errNotOnline keeps WaitOnline polling; it is never returned.
var errNotOnline = errors.New("not online yet")

// AddChargeSchedule sends one schedule by the car's command path.
func (v FleetVehicle) AddChargeSchedule(ctx context.Context, vin string, s charging.Schedule) error {
	return v.Commands.AddChargeSchedule(ctx, vin, s)
}

// RemoveChargeSchedule removes one schedule by id, by the car's command path.
func (v FleetVehicle) RemoveChargeSchedule(ctx context.Context, vin string, id int64) error {
	return v.Commands.RemoveChargeSchedule(ctx, vin, id)
}

// SetChargeLimit sets the charge limit, by the car's command path.
func (v FleetVehicle) SetChargeLimit(ctx context.Context, vin string, percent int) error {
	return v.Commands.SetChargeLimit(ctx, vin, percent)
}

// asleepOr adds the cycle's error kinds to the client's, keeping both for errors.Is.
func asleepOr(err error) error {
	if err != nil && errors.Is(err, fleet.ErrAsleep) {
		return fmt.Errorf("%w: %w", charging.ErrAsleep, err)
	}
	return err
}

// PlanStore keeps the confirmed plan's hash and the per-car cycle lease in
// the state store (file or GCS), so two worker instances never run two
// cycles for one car: the lease is an object created only if absent
// (generation 0), taken over only when expired, with a generation match.
type PlanStore struct {
	Store  state.Store
	Clock  clock.Clock
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

// CommandStore keeps, per car, the signed-session cache and the command
// path learned for it in the state store: no key material, only counters,
// epochs and the car's public key (carcmd.SessionStore), and "signed" or
// "rest" (carcmd.PathStore).
type CommandStore struct {
	Store state.Store
	Clock clock.Clock
}

var (
	_ carcmd.SessionStore = CommandStore{}
	_ carcmd.PathStore    = CommandStore{}
)

type sessionRecord struct {
	Sessions json.RawMessage `json:"sessions"`
	SavedAt  time.Time       `json:"saved_at"`
}

type pathRecord struct {
	Path        carcmd.Path `json:"path"`
	LearnedFrom string      `json:"learned_from"`
	LearnedAt   time.Time   `json:"learned_at"`
}

// LoadSessions returns the stored session blob (nil when none).
func (c CommandStore) LoadSessions(ctx context.Context, vin string) ([]byte, error) {
	rec, _, err := state.Load[sessionRecord](ctx, c.Store, "sessions/"+vin+".json")
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rec.Sessions, nil
}

// SaveSessions stores the session blob.
func (c CommandStore) SaveSessions(ctx context.Context, vin string, blob []byte) error {
	_, err := state.Update(ctx, c.Store, "sessions/"+vin+".json", func(*sessionRecord, bool) (*sessionRecord, error) {
		return &sessionRecord{Sessions: blob, SavedAt: c.Clock.Now().UTC()}, nil
	})
	return err
}

// LoadPath returns the learned command path (PathUnknown when none).
func (c CommandStore) LoadPath(ctx context.Context, vin string) (carcmd.Path, error) {
	rec, _, err := state.Load[pathRecord](ctx, c.Store, "command-paths/"+vin+".json")
	if errors.Is(err, state.ErrNotFound) {
		return carcmd.PathUnknown, nil
	}
	if err != nil {
		return carcmd.PathUnknown, err
	}
	return rec.Path, nil
}

// SavePath records the command path and where it was learned.
func (c CommandStore) SavePath(ctx context.Context, vin string, p carcmd.Path, learnedFrom string) error {
	_, err := state.Update(ctx, c.Store, "command-paths/"+vin+".json", func(*pathRecord, bool) (*pathRecord, error) {
		return &pathRecord{Path: p, LearnedFrom: learnedFrom, LearnedAt: c.Clock.Now().UTC()}, nil
	})
	return err
}
