package charging

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strconv"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/geo"
)

const vin = "5YJ3E7EB0KF000001"

type cycleRig struct {
	car   *fakeCar
	store *fakeStore
	clock *clock.Manual
	cycle *Cycle
}

// newRig: Tuesday 2026-01-13 18:00 in Warsaw, G12, 60 kWh, 6 kW, efficiency 1
// (10 % an hour), target 80, ready by 07:00; the car is at home at 50 %.
func newRig(t *testing.T, planner Planner) *cycleRig {
	t.Helper()
	return newRigAt(t, planner, "2026-01-13 18:00")
}

func newRigAt(t *testing.T, planner Planner, now string) *cycleRig {
	t.Helper()
	r := &cycleRig{car: newFakeCar(), store: newFakeStore(), clock: clock.NewManual(lt(t, now))}
	if planner == nil {
		planner = NewBuiltinPlanner(mustTariff(t, g12, "", ""))
	}
	c, err := NewCycle(r.car, planner, r.store, r.clock, CycleConfig{
		Home:     geo.Home{Lat: home.Lat, Lon: home.Lon},
		Location: warsaw(t),
		Charge: ChargeSettings{TargetPercent: 80, FloorPercent: 0, BatteryKWh: 60, ChargerKW: 6, Efficiency: 1,
			ReadyBy: ClockTime{7, 0}},
		CommandSpacing: -1, // no pauses in tests
	})
	if err != nil {
		t.Fatal(err)
	}
	r.cycle = c
	return r
}

func TestCyclePlansAndIsIdempotent(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	loc := warsaw(t)
	foreign := Schedule{ID: 1700000000, DaysMask: AllDays, StartMin: 1380, EndMin: 300, Enabled: true, StartEnabled: true, EndEnabled: true, Lat: home.Lat, Lon: home.Lon}
	stale := ToSchedules([]Window{win(t, "2026-01-12 22:00", "2026-01-13 02:00")}, loc, home)[0]
	r.car.put(foreign, stale)

	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	wantPlan := []string{"2026-01-13 22:00 → 2026-01-14 01:00"}
	if got := fmtWindows(res.Plan, loc); !reflect.DeepEqual(got, wantPlan) {
		t.Fatalf("plan %q", got)
	}
	if res.Added != 1 || res.Removed != 1 || !res.Changed || res.Woke || res.Asleep || !res.AtHome || res.PlannerUsed != SourceBuiltin {
		t.Fatalf("first run: %+v", res)
	}
	wantLog := []string{"remove " + itoa(stale.ID), "add " + itoa(ToSchedules([]Window{win(t, "2026-01-13 22:00", "2026-01-14 01:00")}, loc, home)[0].ID)}
	if !reflect.DeepEqual(r.car.log, wantLog) {
		t.Fatalf("commands %q, want removals first: %q", r.car.log, wantLog)
	}
	if _, ok := r.car.schedules[foreign.ID]; !ok {
		t.Fatal("the foreign schedule was touched")
	}
	hash, saves := r.store.state(vin)
	if hash != res.PlanHash || saves != 1 {
		t.Fatalf("hash %q saves %d", hash, saves)
	}

	// Same inputs again: nothing to send, nothing to write.
	res2, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	_, wakes, adds, removes := r.car.counts()
	if res2.Changed || res2.Added != 0 || res2.Removed != 0 || adds != 1 || removes != 1 || wakes != 0 {
		t.Fatalf("second run sent commands: %+v (adds %d removes %d)", res2, adds, removes)
	}
	if _, saves := r.store.state(vin); saves != 1 {
		t.Fatalf("second run saved the hash again: %d", saves)
	}
}

func TestCycleResultFalseKeepsHashAndRetriesNextTime(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.car.set(func(c *fakeCar) { c.rejectNext = 1 })

	res, err := r.cycle.Run(context.Background(), vin)
	if !errors.Is(err, ErrCommand) || !errors.Is(err, ErrCommandRejected) {
		t.Fatalf("err = %v", err)
	}
	if res.Added != 0 || res.Changed {
		t.Fatalf("result %+v", res)
	}
	if hash, saves := r.store.state(vin); hash != "" || saves != 0 {
		t.Fatalf("hash saved after result:false: %q", hash)
	}

	res, err = r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 1 {
		t.Fatalf("retry: %+v", res)
	}
	if hash, _ := r.store.state(vin); hash != res.PlanHash {
		t.Fatal("hash not saved after success")
	}
}

func TestCycleStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	r := newRigAt(t, nil, "2026-01-13 12:00") // two windows: 13-15 and 22-23
	r.car.set(func(c *fakeCar) { c.rejectAt = map[int]bool{2: true} })
	res, err := r.cycle.Run(context.Background(), vin)
	if !errors.Is(err, ErrCommandRejected) {
		t.Fatalf("err = %v", err)
	}
	if res.Added != 1 || !res.Changed {
		t.Fatalf("res %+v", res)
	}
	if hash, _ := r.store.state(vin); hash != "" {
		t.Fatal("hash saved after a refused command")
	}
	// The next cycle sends only what is still missing.
	res, err = r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, adds, _ := r.car.counts(); adds != 2 || res.Added != 1 {
		t.Fatalf("adds %d res %+v", adds, res)
	}
}

func TestCycleTooManySchedulesSendsNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	foreign := Schedule{ID: 1700000000, DaysMask: AllDays, StartMin: 1380, EndMin: 300, Enabled: true, StartEnabled: true, EndEnabled: true, Lat: home.Lat, Lon: home.Lon}
	r.car.put(foreign)
	r.car.set(func(c *fakeCar) { c.max = 1 })
	res, err := r.cycle.Run(context.Background(), vin)
	if !errors.Is(err, ErrTooManySchedules) || res.Changed {
		t.Fatalf("err = %v res %+v", err, res)
	}
	if _, _, adds, removes := r.car.counts(); adds+removes != 0 {
		t.Fatal("commands sent although the plan does not fit")
	}
}

func TestCycleAsleepDoesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.car.set(func(c *fakeCar) { c.asleep = true })
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	reads, wakes, adds, removes := r.car.counts()
	if !res.Asleep || res.Changed || reads != 1 || wakes != 0 || adds+removes != 0 {
		t.Fatalf("res %+v reads %d wakes %d commands %d", res, reads, wakes, adds+removes)
	}
}

func TestCycleReadErrorSendsNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.car.set(func(c *fakeCar) { c.readErr = errors.New("502 from the Fleet API") })
	_, err := r.cycle.Run(context.Background(), vin)
	if !errors.Is(err, ErrVehicleRead) {
		t.Fatalf("err = %v", err)
	}
	if _, wakes, adds, removes := r.car.counts(); wakes+adds+removes != 0 {
		t.Fatal("commands after a read error")
	}
}

func TestCycleNotAtHome(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.car.set(func(c *fakeCar) { c.lat += 0.01 }) // ~1.1 km away
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	if res.AtHome || res.Changed || res.Plan != nil {
		t.Fatalf("res %+v", res)
	}
	if _, _, adds, removes := r.car.counts(); adds+removes != 0 {
		t.Fatal("commands away from home")
	}
}

// TestCycleHomeEdge: the worker draws the scout's circle (geo.Home), so a
// car 100.3 m from home with a 100 m radius is away for both; once the
// worker called it away while the scout called it home (rounded to 100 m),
// and that parking spot never got a schedule.
func TestCycleHomeEdge(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		metres float64
		home   bool
	}{{99.7, true}, {100, true}, {100.3, false}} {
		r := newRig(t, nil)
		r.car.set(func(car *fakeCar) { car.lat += c.metres / geo.EarthRadiusM * 180 / math.Pi })
		res, err := r.cycle.Run(context.Background(), vin)
		if err != nil {
			t.Fatal(err)
		}
		if res.AtHome != c.home || (res.Plan != nil) != c.home {
			t.Errorf("%.1f m north of home: AtHome = %v, plan %v; want home %v", c.metres, res.AtHome, res.Plan, c.home)
		}
	}
}

// TestCycleWithoutPosition: a car that reports no position is not "away"
// but unknown, and the answer says so (the vehicle_location scope).
func TestCycleWithoutPosition(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.car.set(func(c *fakeCar) { c.noLocation = true })
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	if !res.LocationMissing || res.AtHome || res.Changed {
		t.Fatalf("res %+v, want LocationMissing and nothing done", res)
	}
	if _, _, adds, removes := r.car.counts(); adds+removes != 0 {
		t.Fatal("commands without a position")
	}
}

func TestCycleWakesOnceWhenTheCarFellAsleep(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	stale := ToSchedules([]Window{win(t, "2026-01-12 22:00", "2026-01-13 02:00")}, warsaw(t), home)[0]
	r.car.put(stale)
	// Awake at the read, asleep by the second command.
	r.car.set(func(c *fakeCar) { c.sleepBefore = map[int]bool{2: true} })
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	_, wakes, adds, removes := r.car.counts()
	if !res.Woke || wakes != 1 || adds != 1 || removes != 1 || res.Added != 1 || res.Removed != 1 {
		t.Fatalf("res %+v wakes %d adds %d removes %d", res, wakes, adds, removes)
	}
	if hash, _ := r.store.state(vin); hash != res.PlanHash {
		t.Fatal("hash not saved")
	}
}

func TestCycleNoWakeWhenAwake(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	if _, wakes, _, _ := r.car.counts(); wakes != 0 || res.Woke {
		t.Fatalf("woke an awake car: %d", wakes)
	}
}

func TestCycleNeverWakesTwice(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	stale := ToSchedules([]Window{win(t, "2026-01-12 22:00", "2026-01-13 02:00")}, warsaw(t), home)[0]
	r.car.put(stale)
	// Asleep at the first command (woken, retried), asleep again at the next.
	r.car.set(func(c *fakeCar) { c.sleepBefore = map[int]bool{1: true, 3: true} })
	res, err := r.cycle.Run(context.Background(), vin)
	if !errors.Is(err, ErrCommand) || !errors.Is(err, ErrAsleep) {
		t.Fatalf("err = %v", err)
	}
	if _, wakes, _, _ := r.car.counts(); wakes != 1 || !res.Woke {
		t.Fatalf("wakes %d", wakes)
	}
	if res.Removed != 1 || res.Added != 0 {
		t.Fatalf("res %+v", res)
	}
	if hash, _ := r.store.state(vin); hash != "" {
		t.Fatal("hash saved after a failed command")
	}
}

func TestCycleWakeFails(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.car.set(func(c *fakeCar) { c.sleepBefore = map[int]bool{1: true}; c.wakeWorks = false })
	res, err := r.cycle.Run(context.Background(), vin)
	if !errors.Is(err, ErrCommand) || res.Added != 0 {
		t.Fatalf("err = %v res %+v", err, res)
	}
	if _, wakes, _, _ := r.car.counts(); wakes != 1 {
		t.Fatalf("wakes %d", wakes)
	}
}

func TestCycleConcurrentRunsSendOneSetOfCommands(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	entered, release := make(chan struct{}, 2), make(chan struct{})
	r.car.set(func(c *fakeCar) { c.readEntered, c.blockRead = entered, release })

	first := make(chan error, 1)
	go func() { _, err := r.cycle.Run(context.Background(), vin); first <- err }()
	<-entered // the first cycle holds the lease and is reading the car

	second := make(chan error, 1)
	go func() { _, err := r.cycle.Run(context.Background(), vin); second <- err }()
	var errSecond error
	select {
	case errSecond = <-second:
	case <-entered:
		close(release)
		<-first
		<-second
		t.Fatal("the second cycle read the car while the first one held it")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errSecond, ErrCycleBusy) {
		t.Fatalf("second cycle: %v, want ErrCycleBusy", errSecond)
	}
	if _, _, adds, _ := r.car.counts(); adds != 1 {
		t.Fatalf("adds %d, want one set of commands", adds)
	}
	// The lease is released: the next cycle runs, and has nothing to do.
	r.car.set(func(c *fakeCar) { c.blockRead = nil })
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil || res.Changed {
		t.Fatalf("after: %+v %v", res, err)
	}
}

func TestCyclePlannerFailureSendsNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, failingPlanner{})
	_, err := r.cycle.Run(context.Background(), vin)
	if !errors.Is(err, ErrPlanner) {
		t.Fatalf("err = %v", err)
	}
	if _, _, adds, removes := r.car.counts(); adds+removes != 0 {
		t.Fatal("commands without a plan")
	}
}

func TestCycleTargetReachedRemovesOurs(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	ours := ToSchedules([]Window{win(t, "2026-01-13 22:00", "2026-01-14 01:00")}, warsaw(t), home)[0]
	r.car.put(ours)
	r.car.set(func(c *fakeCar) { c.battery = 80 })
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 1 || res.Added != 0 || len(res.Plan) != 0 {
		t.Fatalf("res %+v", res)
	}
}

func TestCycleUsesTheCarsLowerLimit(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.car.set(func(c *fakeCar) { c.limit = 60 }) // config says 80, car stops at 60
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2026-01-13 22:00 → 2026-01-13 23:00"}
	if got := fmtWindows(res.Plan, warsaw(t)); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan %q", got)
	}
}

type failingPlanner struct{}

func (failingPlanner) Plan(context.Context, PlanInput) (Plan, error) {
	return Plan{}, ErrPlanner
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
