package patrol

import (
	"slices"

	"context"
	"errors"
	"fmt"
	"github.com/offpeak-charging/offpeak/internal/needs"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/geo"
)

// The tick's steps against fakes of the three things it talks to. The real
// adapters, over the simulator, the worker and the state store, are
// exercised by internal/scout's tests and the fault suite.

const vin = "5YJ3E7EB0KF000001"

var home = geo.Home{Lat: 52.231838, Lon: 21.005995, RadiusM: 100}

type fakeFleet struct {
	cars    []Car
	carsErr error
	reading Reading
	readErr error
	reads   int
	states  int
}

func (f *fakeFleet) Cars(context.Context) ([]Car, error) { return f.cars, f.carsErr }
func (f *fakeFleet) State(context.Context, string) (string, error) {
	f.states++
	return StateOnline, nil
}
func (f *fakeFleet) Read(context.Context, string) (Reading, error) {
	f.reads++
	return f.reading, f.readErr
}

type memStore struct {
	mu      sync.Mutex
	recs    map[string]Record
	backoff *Backoff
	corrupt bool
	needs   map[string][]needs.Need
}

func (s *memStore) Needs(_ context.Context, vin string) ([]needs.Need, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.needs[vin]), nil
}

func (s *memStore) Car(_ context.Context, vin string) (Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.corrupt {
		return Record{}, false, fmt.Errorf("%w: bad JSON", ErrCorrupt)
	}
	r, ok := s.recs[vin]
	return r, ok, nil
}

func (s *memStore) UpdateCar(_ context.Context, vin string, change func(*Record) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.recs[vin]
	if !ok {
		rec = Record{VIN: vin}
	}
	if change(&rec) {
		s.recs[vin] = rec
		s.corrupt = false
	}
	return nil
}

func (s *memStore) Backoff(context.Context) (Backoff, error) {
	if s.backoff == nil {
		return Backoff{}, errors.New("none")
	}
	return *s.backoff, nil
}

func (s *memStore) SetBackoff(_ context.Context, b Backoff) error {
	s.backoff = &b
	return nil
}

type fakeWorker struct {
	calls []contract.CycleRequest
	err   error
}

func (w *fakeWorker) RunCycle(_ context.Context, req contract.CycleRequest) (contract.CycleResponse, error) {
	w.calls = append(w.calls, req)
	return contract.CycleResponse{Status: contract.StatusOK, VIN: req.VIN}, w.err
}

type rig struct {
	fleet  *fakeFleet
	store  *memStore
	worker *fakeWorker
	clock  *clock.Manual
	patrol *Patrol
}

func newRig(cfg Settings) *rig {
	r := &rig{
		fleet:  &fakeFleet{cars: []Car{{VIN: vin, State: StateOnline, Listed: true}}},
		store:  &memStore{recs: map[string]Record{}},
		worker: &fakeWorker{},
		clock:  clock.NewManual(t0),
	}
	cfg.Home = home
	r.patrol = New(r.fleet, r.worker, r.store, r.clock, cfg, nil)
	return r
}

// tick runs a tick and returns the car's line (a tick whose only car
// failed fails too: that is in the line).
func (r *rig) tick(t *testing.T) VehicleReport {
	t.Helper()
	rep, err := r.patrol.Tick(context.Background())
	if len(rep.Vehicles) != 1 || (err != nil) != (rep.Vehicles[0].Action == ActionError) {
		t.Fatalf("tick: %+v, %v", rep, err)
	}
	return rep.Vehicles[0]
}

var plugged = Reading{Position: &geo.Point{Lat: home.Lat, Lon: home.Lon}, Charge: &ChargeReading{BatteryLevel: 41, Plugged: true}}

func TestTickTriggersOnceAndSendsNoReading(t *testing.T) {
	t.Parallel()
	r := newRig(Settings{})
	r.fleet.reading = plugged
	v := r.tick(t)
	if v.Action != ActionTriggered || v.Reason != ReasonFirstSeen || !v.AtHome || !v.Ready || *v.BatteryLevel != 41 {
		t.Fatalf("report = %+v", v)
	}
	if c := r.worker.calls; len(c) != 1 || c[0].VIN != vin || c[0].Reason != ReasonFirstSeen || c[0].Observed != nil {
		t.Errorf("worker asked %+v, want one request with the VIN and the reason only", r.worker.calls)
	}
	if rec := r.store.recs[vin]; rec.Pending != nil || rec.LastTrigger == nil || rec.LastTrigger.Reason != ReasonFirstSeen {
		t.Errorf("record = %+v, want the trigger confirmed", rec)
	}
	r.clock.Advance(5 * time.Minute)
	if v := r.tick(t); v.Action != ActionNone {
		t.Errorf("second tick = %+v", v)
	}
	if r.fleet.reads != 2 || r.fleet.states != 0 || len(r.worker.calls) != 1 {
		t.Errorf("reads %d, state calls %d, worker calls %d: want 2, 0 (the list told), 1", r.fleet.reads, r.fleet.states, len(r.worker.calls))
	}
}

func TestTickLeavesSleepingCarsAlone(t *testing.T) {
	t.Parallel()
	for name, mod := range map[string]func(*rig){
		"listed asleep":         func(r *rig) { r.fleet.cars[0].State = StateAsleep },
		"asleep when read":      func(r *rig) { r.fleet.readErr = fmt.Errorf("%w: 408", ErrAsleep) },
		"configured and asleep": func(r *rig) { r.fleet.readErr = fmt.Errorf("%w: 408", ErrAsleep); r.patrol.cfg.VINs = []string{vin} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRig(Settings{})
			mod(r)
			if v := r.tick(t); v.Action != ActionAsleep || v.State != StateAsleep {
				t.Errorf("report = %+v", v)
			}
			if len(r.worker.calls) != 0 || r.store.recs[vin].State != StateAsleep {
				t.Errorf("worker calls %d, record %+v", len(r.worker.calls), r.store.recs[vin])
			}
		})
	}
}

func TestTickRemembersRateLimits(t *testing.T) {
	t.Parallel()
	limited := &RateLimitError{RetryAfter: 30 * time.Minute, Err: errors.New("fleet: HTTP 429")}

	// The account's list: the tick fails, and the next one asks nothing.
	r := newRig(Settings{})
	r.fleet.carsErr = limited
	if _, err := r.patrol.Tick(context.Background()); !errors.Is(err, ErrNothingObserved) {
		t.Fatalf("tick err = %v", err)
	}
	if r.store.backoff == nil || !r.store.backoff.Until.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("backoff = %+v", r.store.backoff)
	}
	r.fleet.carsErr = nil
	r.fleet.cars = nil // a call would now see no car, and not fail
	if _, err := r.patrol.Tick(context.Background()); !errors.Is(err, ErrNothingObserved) {
		t.Errorf("inside Retry-After: err = %v", err)
	}

	// One car's read: that car is left alone until then.
	r = newRig(Settings{})
	r.fleet.readErr = limited
	if v := r.tick(t); v.Action != ActionError || v.Error != limited.Error() {
		t.Fatalf("report = %+v", v)
	}
	r.fleet.readErr = nil
	r.clock.Advance(15 * time.Minute)
	if v := r.tick(t); v.Action != ActionError || r.fleet.reads != 1 {
		t.Errorf("inside the car's Retry-After: %+v after %d reads", v, r.fleet.reads)
	}
	r.clock.Advance(20 * time.Minute)
	if v := r.tick(t); v.Action == ActionError || r.fleet.reads != 2 {
		t.Errorf("after the car's Retry-After: %+v after %d reads", v, r.fleet.reads)
	}
}

func TestTickTreatsAnUnreadableRecordAsNeverSeen(t *testing.T) {
	t.Parallel()
	r := newRig(Settings{})
	r.fleet.reading = plugged
	r.store.corrupt = true
	if v := r.tick(t); v.Action != ActionTriggered || v.Reason != ReasonFirstSeen {
		t.Errorf("report = %+v", v)
	}
}

func TestTickGivesUpOnWhatOnlyTheOperatorCanFix(t *testing.T) {
	t.Parallel()
	r := newRig(Settings{})
	r.fleet.reading = plugged
	r.worker.err = fmt.Errorf("%w: key_not_paired", ErrNeedsOperator)
	for i := range MaxOperatorFailures {
		if v := r.tick(t); v.Action != ActionPending || v.Error == "" {
			t.Fatalf("tick %d = %+v", i, v)
		}
		r.clock.Advance(5 * time.Minute)
	}
	if v := r.tick(t); v.Action != ActionNone || len(r.worker.calls) != MaxOperatorFailures {
		t.Errorf("after %d refusals: %+v, %d calls", MaxOperatorFailures, v, len(r.worker.calls))
	}
}

func TestTickKeepsTheLastAnswerWithoutAPosition(t *testing.T) {
	t.Parallel()
	r := newRig(Settings{})
	r.fleet.reading = plugged
	r.tick(t)
	r.clock.Advance(5 * time.Minute)
	r.fleet.reading.Position = nil
	if v := r.tick(t); v.Action != ActionNone || !v.AtHome || !v.LocationMissing {
		t.Errorf("report = %+v: want at home still, no departure", v)
	}
}
