package fleetsim

import (
	"math"
	"net/http"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Warsaw without the system's zoneinfo

	"github.com/offpeak-charging/offpeak/internal/clock"
)

var warsaw = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		panic(err)
	}
	return loc
}()

// Home of the charge tests, and a place 300 m north of it.
const homeLat, homeLon, awayLat = 52.2297, 21.0122, 52.2324

func local(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, warsaw)
}

// chargeSim is a simulator without a server, its clock at start, with a
// car at home, unplugged, at level percent.
func chargeSim(t *testing.T, start time.Time, level int, mod ...func(*CarState)) (*Sim, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(start)
	s := New(Options{Clock: clk})
	c := CarState{VIN: testVIN, Latitude: homeLat, Longitude: homeLon, BatteryLevel: level}
	for _, f := range mod {
		f(&c)
	}
	s.AddCar(c)
	return s, clk
}

// nightly is an enabled schedule at home.
func nightly(id int64, days, start, end int, oneTime bool) ChargeSchedule {
	return ChargeSchedule{ID: id, DaysOfWeek: days, Enabled: true, StartEnabled: true, EndEnabled: true, OneTime: oneTime,
		StartTime: start, EndTime: end, Latitude: homeLat, Longitude: homeLon}
}

func plugIn(c *CarState) { c.ConnChargeCable = CableIEC }
func unplug(c *CarState) { c.ConnChargeCable = CableUnplugged }
func mustCar(t *testing.T, s *Sim) CarState {
	t.Helper()
	c, ok := s.Car(testVIN)
	if !ok {
		t.Fatal("no car")
	}
	return c
}

func stored(t *testing.T, s *Sim) float64 {
	t.Helper()
	st, _ := s.Energy(testVIN)
	return st.StoredKWh
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestChargesAtPlugInWithoutSchedule(t *testing.T) {
	t.Parallel()
	s, clk := chargeSim(t, local(2026, 3, 3, 17, 0), 40)
	_ = s.SetCar(testVIN, plugIn)
	if c := mustCar(t, s); c.ChargingState != ChargingCharging {
		t.Fatalf("plugged in with no schedule: %s, want Charging", c.ChargingState)
	}
	clk.Advance(time.Hour)
	if c := mustCar(t, s); c.BatteryLevel != 53 || c.ChargingState != ChargingCharging || !near(c.ChargeEnergyAdded, 9.9) {
		t.Fatalf("after an hour: level %d (want 53), %s, added %v", c.BatteryLevel, c.ChargingState, c.ChargeEnergyAdded)
	}
	// 40 → 80 % is 30 kWh into the battery: 30/9.9 h. The car idles from
	// the end of the charge and sleeps SleepAfter later.
	hours := 30 / 9.9
	end := local(2026, 3, 3, 17, 0).Add(time.Duration(hours * float64(time.Hour)))
	clk.Set(end.Add(DefaultSleepAfter - time.Second))
	c := mustCar(t, s)
	if c.BatteryLevel != 80 || c.ChargingState != ChargingComplete || c.State != StateOnline {
		t.Fatalf("after the charge: level %d, %s, %s; want 80 Complete online", c.BatteryLevel, c.ChargingState, c.State)
	}
	clk.Set(end.Add(DefaultSleepAfter + time.Second))
	if c := mustCar(t, s); c.State != StateAsleep {
		t.Fatalf("still %s after idling", c.State)
	}
	st, _ := s.Energy(testVIN)
	if !near(st.StoredKWh, 60) || !near(st.BatteryKWh, 30) || !near(st.GridKWh, 30/0.9) {
		t.Fatalf("energy: %+v", st)
	}
	// By hour: 17, 18, 19 full hours of 11 kWh, the rest in 20:00.
	if !near(st.ByHourOfDay[17], 11) || !near(st.ByHourOfDay[19], 11) || !near(st.ByHourOfDay[20], 30/0.9-33) || len(st.Hours) != 4 {
		t.Fatalf("by hour: %v, hours %+v", st.ByHourOfDay, st.Hours)
	}
}

func TestChargesInScheduleWindow(t *testing.T) {
	t.Parallel()
	// Tuesday 3 March 2026, 17:00. A schedule for Tuesday nights only,
	// 22:00–02:00 (crossing midnight).
	s, clk := chargeSim(t, local(2026, 3, 3, 17, 0), 20, func(c *CarState) { c.ChargeLimitSOC = 100 })
	if err := s.AddSchedule(testVIN, nightly(1, DayTuesday, 22*60, 2*60, false)); err != nil {
		t.Fatal(err)
	}
	_ = s.SetCar(testVIN, plugIn)
	if c := mustCar(t, s); c.ChargingState != ChargingStopped {
		t.Fatalf("plugged in outside the window: %s, want Stopped (waiting)", c.ChargingState)
	}
	clk.Set(local(2026, 3, 3, 21, 59))
	if c := mustCar(t, s); c.BatteryLevel != 20 || c.ChargingState != ChargingStopped {
		t.Fatalf("before the window: %d %s", c.BatteryLevel, c.ChargingState)
	}
	clk.Set(local(2026, 3, 4, 1, 0))
	if c := mustCar(t, s); c.ChargingState != ChargingCharging || c.State != StateOnline {
		t.Fatalf("inside the window after midnight: %s %s", c.ChargingState, c.State)
	}
	clk.Set(local(2026, 3, 4, 6, 0))
	c := mustCar(t, s)
	// 4 h × 13.2 % = 52.8 %.
	if c.ChargingState != ChargingStopped || c.BatteryLevel != 72 || !near(stored(t, s), 15+4*9.9) {
		t.Fatalf("after the window: %s level %d stored %v", c.ChargingState, c.BatteryLevel, stored(t, s))
	}
	// Wednesday night is not in the days: nothing until next Tuesday.
	clk.Set(local(2026, 3, 10, 21, 0))
	if c := mustCar(t, s); c.BatteryLevel != 72 || c.ChargingState != ChargingStopped {
		t.Fatalf("a week later before Tuesday's window: %d %s", c.BatteryLevel, c.ChargingState)
	}
	clk.Set(local(2026, 3, 10, 23, 0))
	if c := mustCar(t, s); c.ChargingState != ChargingCharging {
		t.Fatalf("next Tuesday 23:00: %s", c.ChargingState)
	}
	// The limit (100 %) comes before the window's end: Complete.
	clk.Set(local(2026, 3, 11, 2, 0))
	if c := mustCar(t, s); c.ChargingState != ChargingComplete || c.BatteryLevel != 100 {
		t.Fatalf("limit reached early: %s %d", c.ChargingState, c.BatteryLevel)
	}
}

func TestOneTimeScheduleRunsOnce(t *testing.T) {
	t.Parallel()
	s, clk := chargeSim(t, local(2026, 3, 3, 17, 0), 20)
	_ = s.AddSchedule(testVIN, nightly(7, DaysAll, 22*60, 23*60, true))
	_ = s.AddSchedule(testVIN, nightly(8, DaysAll, 13*60, 14*60, false))
	_ = s.SetCar(testVIN, plugIn)
	clk.Set(local(2026, 3, 3, 23, 0))
	list := s.Schedules(testVIN)
	if c := mustCar(t, s); c.BatteryLevel != 33 || len(list) != 1 || list[0].ID != 8 {
		t.Fatalf("after the one-time window: level %d, schedules %+v", c.BatteryLevel, list)
	}
	// Wednesday 22:00–23:00 is cheap again but the one-time schedule is gone;
	// the recurring one still applies here, so the car waits for it.
	clk.Set(local(2026, 3, 4, 12, 59))
	if c := mustCar(t, s); c.BatteryLevel != 33 || c.ChargingState != ChargingStopped {
		t.Fatalf("next day: %d %s", c.BatteryLevel, c.ChargingState)
	}
	clk.Set(local(2026, 3, 4, 14, 0))
	if c := mustCar(t, s); c.BatteryLevel != 46 {
		t.Fatalf("after the recurring window: %d", c.BatteryLevel)
	}
}

func TestLastScheduleConsumedDoesNotStartCharging(t *testing.T) {
	t.Parallel()
	// A one-time window ends below the limit and the schedule goes: the car
	// stays Stopped (no plug-in happened) instead of charging at peak.
	s, clk := chargeSim(t, local(2026, 3, 3, 17, 0), 20)
	_ = s.AddSchedule(testVIN, nightly(7, DaysAll, 22*60, 23*60, true))
	_ = s.SetCar(testVIN, plugIn)
	clk.Set(local(2026, 3, 4, 6, 0))
	if c := mustCar(t, s); c.BatteryLevel != 33 || c.ChargingState != ChargingStopped || len(s.Schedules(testVIN)) != 0 {
		t.Fatalf("%d %s %v", c.BatteryLevel, c.ChargingState, s.Schedules(testVIN))
	}
	// Unplugged and plugged in again with no schedule: it charges now.
	_ = s.SetCar(testVIN, unplug)
	_ = s.SetCar(testVIN, plugIn)
	if c := mustCar(t, s); c.ChargingState != ChargingCharging {
		t.Fatalf("replugged without schedules: %s", c.ChargingState)
	}
}

func TestDSTNights(t *testing.T) {
	t.Parallel()
	// 22:00–06:00 is 7 real hours on the spring-forward night (29 March
	// 2026 in Warsaw) and 9 on the fall-back night (25 October).
	for _, tc := range []struct {
		name  string
		start time.Time
		hours float64
	}{
		{"spring forward", local(2026, 3, 28, 20, 0), 7},
		{"fall back", local(2026, 10, 24, 20, 0), 9},
		{"ordinary", local(2026, 3, 21, 20, 0), 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, clk := chargeSim(t, tc.start, 0, func(c *CarState) { c.BatteryKWh, c.ChargeLimitSOC = 200, 100 })
			_ = s.AddSchedule(testVIN, nightly(1, DaysAll, 22*60, 6*60, false))
			_ = s.SetCar(testVIN, plugIn)
			clk.Advance(14 * time.Hour)
			st, _ := s.Energy(testVIN)
			if !near(st.StoredKWh, tc.hours*9.9) || !near(st.GridKWh, tc.hours*11) {
				t.Fatalf("stored %v, grid %v; want %v h of charging", st.StoredKWh, st.GridKWh, tc.hours)
			}
			if n := len(st.Hours); n != int(tc.hours) {
				t.Fatalf("%d clock hours booked, want %v: %+v", n, tc.hours, st.Hours)
			}
		})
	}
}

func TestUnplugMidWindow(t *testing.T) {
	t.Parallel()
	s, clk := chargeSim(t, local(2026, 3, 3, 21, 0), 20)
	_ = s.AddSchedule(testVIN, nightly(1, DaysAll, 22*60, 6*60, false))
	_ = s.SetCar(testVIN, plugIn)
	clk.Set(local(2026, 3, 3, 22, 30))
	_ = s.SetCar(testVIN, unplug)
	c := mustCar(t, s)
	if c.ChargingState != ChargingDisconnected || !near(stored(t, s), 15+0.5*9.9) {
		t.Fatalf("unplugged: %s %v", c.ChargingState, stored(t, s))
	}
	clk.Set(local(2026, 3, 3, 23, 30))
	if !near(stored(t, s), 15+0.5*9.9) {
		t.Fatal("charged while unplugged")
	}
	// Plugged in again inside the window: it charges at once.
	_ = s.SetCar(testVIN, plugIn)
	if c := mustCar(t, s); c.ChargingState != ChargingCharging || c.ChargeEnergyAdded != 0 {
		t.Fatalf("replugged in the window: %s, added %v", c.ChargingState, c.ChargeEnergyAdded)
	}
}

func TestScheduleElsewhereDoesNotApply(t *testing.T) {
	t.Parallel()
	// The only schedule is 300 m away (outside the 150 m radius): at home
	// the car has no schedule and charges at plug-in.
	s, _ := chargeSim(t, local(2026, 3, 3, 17, 0), 20)
	away := nightly(1, DaysAll, 22*60, 6*60, false)
	away.Latitude = awayLat
	_ = s.AddSchedule(testVIN, away)
	_ = s.SetCar(testVIN, plugIn)
	if c := mustCar(t, s); c.ChargingState != ChargingCharging {
		t.Fatalf("schedule 300 m away: %s, want Charging", c.ChargingState)
	}
	// 100 m away it applies: the car waits.
	s2, _ := chargeSim(t, local(2026, 3, 3, 17, 0), 20)
	close := nightly(1, DaysAll, 22*60, 6*60, false)
	close.Latitude = homeLat + 0.0009
	_ = s2.AddSchedule(testVIN, close)
	_ = s2.SetCar(testVIN, plugIn)
	if c, _ := s2.Car(testVIN); c.ChargingState != ChargingStopped {
		t.Fatalf("schedule 100 m away: %s, want Stopped", c.ChargingState)
	}
	// A disabled schedule does not apply either.
	s3, _ := chargeSim(t, local(2026, 3, 3, 17, 0), 20)
	off := nightly(1, DaysAll, 22*60, 6*60, false)
	off.Enabled = false
	_ = s3.AddSchedule(testVIN, off)
	_ = s3.SetCar(testVIN, plugIn)
	if c, _ := s3.Car(testVIN); c.ChargingState != ChargingCharging {
		t.Fatalf("disabled schedule: %s, want Charging", c.ChargingState)
	}
}

func TestSchedulesTakeOverAPlugInCharge(t *testing.T) {
	t.Parallel()
	// Plugged in with no schedule the car charges; a schedule stored then
	// makes it wait for its window, as enabling scheduled charging does.
	s, clk := chargeSim(t, local(2026, 3, 3, 17, 0), 20)
	_ = s.SetCar(testVIN, plugIn)
	clk.Advance(10 * time.Minute)
	_ = s.AddSchedule(testVIN, nightly(1, DaysAll, 22*60, 6*60, false))
	if c := mustCar(t, s); c.ChargingState != ChargingStopped || !near(stored(t, s), 15+9.9/6) {
		t.Fatalf("%s %v", c.ChargingState, stored(t, s))
	}
}

func TestForcedStartAndStop(t *testing.T) {
	t.Parallel()
	s, clk := chargeSim(t, local(2026, 3, 3, 17, 0), 20)
	_ = s.AddSchedule(testVIN, nightly(1, DaysAll, 22*60, 6*60, false))
	_ = s.SetCar(testVIN, plugIn)
	// charge_start outside the window charges until the limit.
	s.mu.Lock()
	ok, reason := s.cars[testVIN].chargeStart()
	s.mu.Unlock()
	if !ok {
		t.Fatal(reason)
	}
	clk.Advance(time.Hour)
	if c := mustCar(t, s); c.ChargingState != ChargingCharging || c.BatteryLevel != 33 {
		t.Fatalf("forced start: %s %d", c.ChargingState, c.BatteryLevel)
	}
	s.mu.Lock()
	ok, _ = s.cars[testVIN].chargeStop()
	s.mu.Unlock()
	if !ok {
		t.Fatal("charge_stop refused")
	}
	// The stop holds through the window, until the car is plugged in again.
	clk.Set(local(2026, 3, 3, 23, 0))
	if c := mustCar(t, s); c.ChargingState != ChargingStopped || c.BatteryLevel != 33 {
		t.Fatalf("stopped through the window: %s %d", c.ChargingState, c.BatteryLevel)
	}
	_ = s.SetCar(testVIN, unplug)
	_ = s.SetCar(testVIN, plugIn)
	if c := mustCar(t, s); c.ChargingState != ChargingCharging {
		t.Fatalf("replugged in the window: %s", c.ChargingState)
	}
}

func TestScriptedChargingStateIsObeyed(t *testing.T) {
	t.Parallel()
	// Older scripts plug in with charging_state Stopped: the car obeys, as
	// if the owner tapped Stop, through its windows, until unplugged.
	s, clk := chargeSim(t, local(2026, 3, 3, 17, 0), 40)
	_ = s.AddSchedule(testVIN, nightly(1, DaysAll, 18*60, 19*60, false))
	_ = s.SetCar(testVIN, func(c *CarState) { c.ConnChargeCable, c.ChargingState = CableIEC, ChargingStopped })
	clk.Advance(3 * time.Hour)
	if c := mustCar(t, s); c.ChargingState != ChargingStopped || c.BatteryLevel != 40 {
		t.Fatalf("%s %d", c.ChargingState, c.BatteryLevel)
	}
	// And a script's battery level wins over the physics.
	_ = s.SetCar(testVIN, func(c *CarState) { c.BatteryLevel = 70 })
	if c := mustCar(t, s); c.BatteryLevel != 70 || !near(stored(t, s), 52.5) {
		t.Fatalf("set level: %d %v", c.BatteryLevel, stored(t, s))
	}
}

func TestDrivingUsesEnergy(t *testing.T) {
	t.Parallel()
	s, _ := chargeSim(t, local(2026, 3, 3, 7, 0), 80)
	// About 11.1 km north: 16 kWh/100 km × 11.1 km ≈ 1.78 kWh.
	_ = s.SetCar(testVIN, func(c *CarState) { c.Latitude = homeLat + 0.1 })
	st, _ := s.Energy(testVIN)
	km := distanceM(homeLat, homeLon, homeLat+0.1, homeLon) / 1000
	if !near(st.DrivenKm, km) || !near(st.DrivenKWh, km*0.16) || !near(st.StoredKWh, 60-km*0.16) {
		t.Fatalf("%+v (km %v)", st, km)
	}
	if c := mustCar(t, s); c.BatteryLevel != 77 {
		t.Fatalf("level %d, want 77", c.BatteryLevel)
	}
}

// TestChargeIndependentOfTicks plays one scripted week three times —
// ticking every minute, every 15 minutes, and once at the end — and wants
// the same battery, ledger and charging state bit for bit.
func TestChargeIndependentOfTicks(t *testing.T) {
	t.Parallel()
	start := local(2026, 3, 2, 6, 0) // a Monday
	script := func() []TripStep {
		var steps []TripStep
		for day := 0; day < 7; day++ {
			at := func(hh, mm int) time.Duration {
				return local(2026, 3, 2+day, hh, mm).Sub(start)
			}
			steps = append(steps,
				TripStep{At: at(7, 10), Apply: unplug},
				TripStep{At: at(7, 20), Apply: func(c *CarState) { c.Latitude = homeLat + 0.2 }},
				TripStep{At: at(17, 0), Apply: func(c *CarState) { c.Latitude = homeLat }},
				TripStep{At: at(17, 13), Apply: plugIn},
			)
		}
		return steps
	}
	run := func(step time.Duration) (CarState, EnergyStats) {
		s, clk := chargeSim(t, start, 50)
		_ = s.AddSchedule(testVIN, nightly(1, DaysWeekdays, 22*60, 23*60+30, false))
		_ = s.AddSchedule(testVIN, nightly(2, DaysAll, 13*60, 15*60, false))
		s.RunScript(start, script())
		end := start.Add(7 * 24 * time.Hour)
		for clk.Now().Before(end) {
			clk.Advance(min(step, end.Sub(clk.Now())))
			s.Tick()
		}
		st, _ := s.Energy(testVIN)
		return mustCar(t, s), st
	}
	c1, e1 := run(time.Minute)
	c15, e15 := run(15 * time.Minute)
	cOnce, eOnce := run(7 * 24 * time.Hour)
	for name, got := range map[string]struct {
		c CarState
		e EnergyStats
	}{"15 min": {c15, e15}, "once": {cOnce, eOnce}} {
		if got.e.StoredKWh != e1.StoredKWh || got.e.GridKWh != e1.GridKWh || got.c.BatteryLevel != c1.BatteryLevel ||
			got.c.ChargingState != c1.ChargingState || len(got.e.Hours) != len(e1.Hours) || got.c.State != c1.State {
			t.Fatalf("ticking %s: %v kWh %v %s %s, every minute: %v kWh %v %s %s", name, got.e.StoredKWh, got.c.BatteryLevel,
				got.c.ChargingState, got.c.State, e1.StoredKWh, c1.BatteryLevel, c1.ChargingState, c1.State)
		}
		for i := range e1.Hours {
			if g, w := got.e.Hours[i], e1.Hours[i]; !g.Start.Equal(w.Start) || g.GridKWh != w.GridKWh || g.BatteryKWh != w.BatteryKWh {
				t.Fatalf("ticking %s: hour %d %+v, every minute %+v", name, i, got.e.Hours[i], e1.Hours[i])
			}
		}
	}
	// Weekday evenings: about 9.5 % taken by the drive (2 × 22 km), put back in
	// the 22:00 window; nothing was charged outside the two schedules.
	if e1.GridKWh == 0 {
		t.Fatal("nothing charged")
	}
	for h, kwh := range e1.ByHourOfDay {
		if kwh > 0 && h != 22 && h != 23 && h != 13 && h != 14 {
			t.Errorf("%v kWh at %02d:00, outside every schedule", kwh, h)
		}
	}
}

func TestChargeStateFields(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.sim.AddCar(CarState{VIN: testVIN, State: StateOnline, Latitude: homeLat, Longitude: homeLon, BatteryLevel: 40})
	_ = h.sim.SetCar(testVIN, plugIn)
	h.clk.Advance(30 * time.Minute)
	tok := h.token()
	st, body := h.api(http.MethodGet, "/api/1/vehicles/"+testVIN+"/vehicle_data?endpoints=charge_state", tok, nil)
	if st != 200 {
		t.Fatalf("%d %v", st, body)
	}
	cs := obj(t, obj(t, body, "response"), "charge_state")
	// 46.6 % after 30 min; 33.4 % (25.05 kWh) to go at 9.9 kW → 152 min.
	want := map[string]any{"charging_state": ChargingCharging, "battery_level": 46.0, "charger_power": 11.0,
		"charge_energy_added": 4.95, "minutes_to_full_charge": 152.0, "charger_phases": 3.0, "charger_actual_current": 16.0,
		// 9.9 kW ÷ 16 kWh/100 km = 61.9 km/h = 38.4 mi/h.
		"charge_rate": 38.4}
	for k, v := range want {
		if cs[k] != v {
			t.Errorf("%s = %v, want %v", k, cs[k], v)
		}
	}
	// The admin API shows the ledger; counters carry the totals.
	_, e := h.api(http.MethodGet, "/sim/cars/"+testVIN+"/energy", "", nil)
	if e["grid_kwh"] != 5.5 {
		t.Errorf("energy: %v", e)
	}
	c := h.sim.Counters()
	if got := c.Energy[testVIN].GridKWh; !near(got, 5.5) {
		t.Errorf("counters energy %v", got)
	}
	h.sim.ResetCounters()
	if got := h.sim.Counters().Energy[testVIN].GridKWh; got != 0 {
		t.Errorf("after reset: %v", got)
	}
}
