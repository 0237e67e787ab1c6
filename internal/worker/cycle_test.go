package worker_test

import (
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

const (
	testVIN          = "5YJ3E7EB0KF000002"
	homeLat, homeLon = 52.231838, 21.005995
)

func (e *env) addCar(mod func(*fleetsim.CarState)) {
	c := fleetsim.CarState{VIN: testVIN, State: fleetsim.StateOnline, Latitude: homeLat, Longitude: homeLon,
		BatteryLevel: 40, ChargingState: fleetsim.ChargingStopped, ConnChargeCable: fleetsim.CableIEC, ChargeLimitSOC: 90}
	if mod != nil {
		mod(&c)
	}
	e.sim.AddCar(c)
	if e.key == nil {
		return
	}
	if err := e.sim.PairKey(c.VIN, e.key.Public); err != nil {
		e.t.Fatal(err)
	}
}

// foreignSchedule adds a schedule the way the Tesla app would (an id of its own).
func (e *env) foreignSchedule(_ string, id int64, lat, lon float64) {
	e.t.Helper()
	if err := e.sim.AddSchedule(testVIN, fleetsim.ChargeSchedule{ID: id, DaysOfWeek: fleetsim.DaysWeekdays, Enabled: true,
		StartEnabled: true, StartTime: 60, Latitude: lat, Longitude: lon}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) cycle() answer {
	return e.do("POST", "/run-cycle", `{"vin":"`+testVIN+`","reason":"arrived_home_ready"}`, nil)
}

// commands counts the signed commands the car received (handshakes apart).
func commands(e *env) int { return e.sim.SignedRequests(testVIN).Commands }

// asleepBody is what signed_command answers for a sleeping car
// (vehicle-command issue 285).
const asleepBody = `{"response":null,"error":"vehicle unavailable: vehicle is offline or asleep","error_description":""}`

func ours(list []fleetsim.ChargeSchedule) (n int) {
	for _, s := range list {
		if charging.IsOurs(s.ID) {
			n++
		}
	}
	return n
}

// standing counts our standing schedules (the tariff's cheap hours, recurring).
func standing(list []fleetsim.ChargeSchedule) (n int) {
	for _, s := range list {
		if charging.IsStanding(s.ID) {
			n++
		}
	}
	return n
}

func TestCycleAddsLeavesForeignAndIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	p := e.seed(8 * time.Hour)
	e.addCar(nil)
	e.foreignSchedule(p.AccessToken, 1700000000, homeLat, homeLon) // the owner's own, at home
	e.foreignSchedule(p.AccessToken, 1700000001, 50.06, 19.94)     // at the office in Kraków

	a := e.cycle()
	if a.status != 200 || a.body["changed"] != true {
		t.Fatalf("first cycle: %d %s", a.status, a.raw)
	}
	cmds := a.body["commands"].(map[string]any)
	plan := a.body["plan"].([]any)
	added := int(cmds["added"].(float64))
	if added == 0 || len(plan) == 0 {
		t.Fatalf("nothing planned for a car at 40 %%: %s", a.raw)
	}
	list := e.sim.Schedules(testVIN)
	if ours(list) != added || len(list) != added+2 {
		t.Errorf("car has %d schedules (%d ours), want %d ours plus the 2 foreign ones", len(list), ours(list), added)
	}
	// G12's cheap hours stand on the car as two recurring schedules; the
	// plan's are one-time, each on a single day.
	planned := ours(list) - standing(list)
	if standing(list) != 2 || planned == 0 {
		t.Errorf("want 2 standing schedules and the plan's: %+v", list)
	}
	for _, s := range list {
		switch {
		case charging.IsStanding(s.ID):
			if s.OneTime || s.DaysOfWeek == 0 {
				t.Errorf("standing schedule %+v must recur", s)
			}
		case charging.IsOurs(s.ID) && (!s.OneTime || s.DaysOfWeek == 0 || s.DaysOfWeek == 127):
			t.Errorf("our schedule %+v must be one-time on a single day", s)
		}
	}

	before := commands(e)
	a = e.cycle()
	if a.status != 200 || a.body["changed"] != false || commands(e) != before {
		t.Errorf("second cycle sent %d commands: %s", commands(e)-before, a.raw)
	}

	// Charged meanwhile: the plan's stale schedules go, the standing and
	// the foreign ones stay.
	if err := e.sim.SetCar(testVIN, func(c *fleetsim.CarState) { c.BatteryLevel = 85; c.State = fleetsim.StateOnline }); err != nil {
		t.Fatal(err)
	}
	a = e.cycle()
	removed := int(a.body["commands"].(map[string]any)["removed"].(float64))
	if a.status != 200 || removed != planned {
		t.Errorf("after charging: %s (want %d removed)", a.raw, planned)
	}
	if list := e.sim.Schedules(testVIN); ours(list) != 2 || standing(list) != 2 || len(list) != 4 {
		t.Errorf("left on the car: %+v", list)
	}
	if n := e.sim.FleetRequests(testVIN, fleetsim.CategoryWake); n != 0 {
		t.Errorf("wakes = %d for a car that was awake", n)
	}
}

func TestCycleOnAnAsleepCarChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	e.addCar(func(c *fleetsim.CarState) { c.State = fleetsim.StateAsleep })
	a := e.cycle()
	if a.status != 200 || a.body["asleep"] != true || a.body["changed"] != false {
		t.Fatalf("asleep: %d %s", a.status, a.raw)
	}
	c := e.sim.Counters().Fleet[testVIN]
	if c["wake"] != 0 || c["command"] != 0 {
		t.Errorf("an asleep car got %v", c)
	}
}

func TestCycleWakesAtMostOnceWhenTheCarFallsAsleep(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	e.addCar(nil)
	// The read finds the car awake; the first signed message finds it asleep.
	e.sim.InjectFault(fleetsim.EndpointSignedCommand, fleetsim.Fault{Status: 408, Body: asleepBody, Times: 1})
	a := e.cycle()
	if a.status != 200 || a.body["woke"] != true || a.body["changed"] != true {
		t.Fatalf("cycle: %d %s", a.status, a.raw)
	}
	if n := e.sim.FleetRequests(testVIN, fleetsim.CategoryWake); n != 1 {
		t.Errorf("wakes = %d, want exactly 1", n)
	}
	// Asleep at every command: still only one wake, and an error.
	e2 := newEnv(t, nil, fleetsim.Options{})
	e2.seed(8 * time.Hour)
	e2.addCar(nil)
	e2.sim.InjectFault(fleetsim.EndpointSignedCommand, fleetsim.Fault{Status: 408, Body: asleepBody, Times: 10})
	a = e2.cycle()
	if a.status < 500 {
		t.Errorf("a car that never wakes must fail the cycle: %d %s", a.status, a.raw)
	}
	if n := e2.sim.FleetRequests(testVIN, fleetsim.CategoryWake); n != 1 {
		t.Errorf("wakes = %d, want at most 1", n)
	}
}

func TestCycleBusyCarIsAFailureAndIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	e.addCar(nil)
	e.sim.InjectFault(fleetsim.EndpointSignedCommand, fleetsim.Fault{CarFault: "BUSY", Times: 2})
	a := e.cycle()
	if a.status != 503 || errCode(a) != "car_busy" || a.header.Get("Retry-After") == "" {
		t.Fatalf("busy car: %d %s", a.status, a.raw)
	}
	a = e.cycle()
	if a.status != 200 || a.body["changed"] != true {
		t.Fatalf("retry: %d %s", a.status, a.raw)
	}
	if ours(e.sim.Schedules(testVIN)) == 0 {
		t.Error("the retry should have put the schedules on the car")
	}
}

func TestConcurrentCyclesSendOneSetOfCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	e.addCar(nil)
	e.sim.SetLatency(fleetsim.EndpointSignedCommand, 30*time.Millisecond)
	var wg sync.WaitGroup
	answers := make([]answer, 4)
	for i := range answers {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = e.cycle() }()
	}
	wg.Wait()
	added := 0
	for _, a := range answers {
		switch {
		case a.status == 200:
			added += int(a.body["commands"].(map[string]any)["added"].(float64))
		case a.status == 409 && errCode(a) == "busy":
		default:
			t.Errorf("unexpected answer %d %s", a.status, a.raw)
		}
	}
	if n := ours(e.sim.Schedules(testVIN)); n != added || commands(e) != added {
		t.Errorf("schedules %d, add commands %d, reported added %d: want one set", n, commands(e), added)
	}
}
