package faults

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/devstack"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
)

// fleetRig is a seeded rig after its first tick (the car's first sighting
// has triggered a cycle), with the car online at home, unplugged.
func fleetRig(t *testing.T) *rig {
	t.Helper()
	r := newRig(t, rigOptions{})
	r.seed()
	rep, err := r.tick()
	if v, _ := vehicleReport(rep); err != nil || v.Reason != patrol.ReasonFirstSeen {
		t.Fatalf("first tick: %+v %v", rep, err)
	}
	return r
}

// nextTick lets 15 minutes pass with the car kept awake (someone is in it),
// then ticks.
func (r *rig) nextTick() (patrol.VehicleReport, error) {
	r.advance(15 * time.Minute)
	r.setCar(func(*fleetsim.CarState) {})
	rep, err := r.tick()
	v, _ := vehicleReport(rep)
	return v, err
}

func (r *rig) setCar(f func(*fleetsim.CarState)) {
	r.t.Helper()
	if err := r.sim.SetCar(vin, func(c *fleetsim.CarState) { c.State = fleetsim.StateOnline; f(c) }); err != nil {
		r.t.Fatal(err)
	}
}

func away(c *fleetsim.CarState) {
	c.Latitude, c.Longitude = devstack.Work.Lat, devstack.Work.Lon
	c.ConnChargeCable, c.ChargingState = fleetsim.CableUnplugged, fleetsim.ChargingDisconnected
}

func homePlugged(c *fleetsim.CarState) {
	c.Latitude, c.Longitude = devstack.Home.Lat, devstack.Home.Lon
	c.ConnChargeCable, c.ChargingState = fleetsim.CableIEC, fleetsim.ChargingStopped
}

// fleetTotal is every Fleet request the simulator has seen, any car, any kind.
func (r *rig) fleetTotal() int {
	n := 0
	for _, byKind := range r.sim.Counters().Fleet {
		for _, c := range byKind {
			n += c
		}
	}
	return n
}

func (r *rig) data() int   { return r.sim.FleetRequests(vin, fleetsim.CategoryData) }
func (r *rig) billed() int { return r.sim.BilledRequests(vin, fleetsim.CategoryData) }

// A Fleet 401 (Tesla revoked the access token) makes the scout re-read the
// token, find the same one, have the worker force one refresh, and retry
// the call once: one exchange, two calls, and the car observed.
func TestFleet401RefreshesOnceThroughTheWorker(t *testing.T) {
	t.Parallel()
	for _, ep := range []fleetsim.Endpoint{fleetsim.EndpointVehicles, fleetsim.EndpointVehicleData} {
		t.Run(string(ep), func(t *testing.T) {
			t.Parallel()
			r := fleetRig(t)
			data := r.data()
			refreshCalls, _ := r.gate.Calls("/refresh-tokens")
			_, askedBefore := r.scout.Tokens.Counts()
			r.sim.InjectFault(ep, fleetsim.Fault{Status: 401, Body: `{"response":null,"error":"token expired (401)"}`})
			v, err := r.nextTick()
			if err != nil || v.BatteryLevel == nil {
				t.Fatalf("tick after a 401: %+v %v", v, err)
			}
			if got := r.exchanges(); got != 1 {
				t.Errorf("pairs issued = %d, want 1 forced refresh", got)
			}
			if calls, _ := r.gate.Calls("/refresh-tokens"); calls-refreshCalls != 1 {
				t.Errorf("scout → worker refresh calls = %d, want 1", calls-refreshCalls)
			}
			if _, asked := r.scout.Tokens.Counts(); asked-askedBefore != 1 {
				t.Errorf("token cache asked the worker %d times, want 1", asked-askedBefore)
			}
			wantData := 1
			if ep == fleetsim.EndpointVehicleData {
				wantData = 2 // the rejected call and its one retry
			}
			if got := r.data() - data; got != wantData {
				t.Errorf("data calls = %d, want %d", got, wantData)
			}
			if msg := r.lostRotation(true); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// 408 on vehicle_data: the car is asleep. The scout records that, makes no
// further call and never wakes it.
func TestFleet408IsAsleepAndNeverWoken(t *testing.T) {
	t.Parallel()
	r := fleetRig(t)
	data := r.data()
	cycles, _ := r.gate.Calls("/run-cycle")
	r.sim.InjectFault(fleetsim.EndpointVehicleData, fleetsim.Fault{Status: 408, Body: `{"response":null,"error":"vehicle unavailable: vehicle is offline or asleep"}`})
	v, err := r.nextTick()
	if err != nil || v.Action != patrol.ActionAsleep {
		t.Fatalf("tick: %+v %v, want the car reported asleep", v, err)
	}
	if got := r.data() - data; got != 1 {
		t.Errorf("data calls = %d, want 1", got)
	}
	if c, _ := r.gate.Calls("/run-cycle"); c != cycles || r.wakes() != 0 {
		t.Errorf("run-cycle calls %d→%d, wakes %d", cycles, c, r.wakes())
	}
}

// 421: the account lives in another region. The tick fails, names the
// setting to change, and nothing else is called.
func TestFleet421NamesTheSetting(t *testing.T) {
	t.Parallel()
	r := fleetRig(t)
	total := r.fleetTotal()
	r.sim.InjectFault(fleetsim.EndpointVehicles, fleetsim.Fault{Status: 421, Body: `{"response":null,"error":"user out of region"}`})
	_, err := r.nextTick()
	if err == nil || !strings.Contains(err.Error(), "TESLA_FLEET_API_URL") {
		t.Fatalf("tick error = %v, want one naming TESLA_FLEET_API_URL", err)
	}
	if got := r.fleetTotal() - total; got != 1 {
		t.Errorf("Fleet calls = %d, want only the rejected list", got)
	}
	if r.exchanges() != 0 || r.wakes() != 0 {
		t.Errorf("pairs issued %d, wakes %d", r.exchanges(), r.wakes())
	}
}

// 429 with Retry-After: no call to the Fleet API (account level) or for the
// car (vehicle_data) until the time has passed, then calls resume.
func TestFleet429HonoursRetryAfter(t *testing.T) {
	t.Parallel()
	t.Run("account", func(t *testing.T) {
		t.Parallel()
		r := fleetRig(t)
		r.sim.InjectFault(fleetsim.EndpointVehicles, fleetsim.Fault{Status: 429, RetryAfter: "3600"})
		if _, err := r.nextTick(); err == nil {
			t.Fatal("a rate-limited tick reported success")
		}
		total := r.fleetTotal()
		for i := 0; i < 3; i++ { // +30, +45, +60 min: still inside the hour
			if _, err := r.nextTick(); err == nil {
				t.Error("a tick inside Retry-After reported success")
			}
		}
		if got := r.fleetTotal() - total; got != 0 {
			t.Errorf("Fleet calls inside Retry-After = %d, want 0", got)
		}
		if _, err := r.nextTick(); err != nil { // +75 min
			t.Errorf("tick after Retry-After: %v", err)
		}
		if got := r.fleetTotal() - total; got != 2 {
			t.Errorf("Fleet calls after Retry-After = %d, want 2 (list, data)", got)
		}
	})
	t.Run("vehicle_data", func(t *testing.T) {
		t.Parallel()
		r := fleetRig(t)
		r.sim.InjectFault(fleetsim.EndpointVehicleData, fleetsim.Fault{Status: 429, RetryAfter: "7200"})
		if v, _ := r.nextTick(); v.Action != patrol.ActionError {
			t.Fatalf("rate-limited car: %+v", v)
		}
		data := r.data()
		for i := 0; i < 7; i++ { // up to +120 min after the 429
			if v, _ := r.nextTick(); v.Action != patrol.ActionError {
				t.Errorf("tick %d inside Retry-After: %+v", i, v)
			}
		}
		if got := r.data() - data; got != 0 {
			t.Errorf("data calls inside Retry-After = %d, want 0", got)
		}
		if v, err := r.nextTick(); err != nil || v.BatteryLevel == nil {
			t.Errorf("tick after Retry-After: %+v %v", v, err)
		}
		if got := r.data() - data; got != 1 {
			t.Errorf("data calls after Retry-After = %d, want 1", got)
		}
	})
}

// A 5xx is not billed and not remembered: the arrival it hid is seen, and
// triggers the cycle, at the next tick.
func TestFleet5xxDelaysTheArrivalByOneTick(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ep     fleetsim.Endpoint
		status int
	}{{fleetsim.EndpointVehicleData, 503}, {fleetsim.EndpointVehicleData, 500}, {fleetsim.EndpointVehicles, 500}, {fleetsim.EndpointVehicles, 502}} {
		t.Run(string(tc.ep)+"-"+strconv.Itoa(tc.status), func(t *testing.T) {
			t.Parallel()
			r := fleetRig(t)
			r.setCar(away)
			if v, err := r.nextTick(); err != nil || v.AtHome {
				t.Fatalf("away tick: %+v %v", v, err)
			}
			r.setCar(homePlugged)
			billed := r.billed()
			r.sim.InjectFault(tc.ep, fleetsim.Fault{Status: tc.status, Body: `{"response":null,"error":"internal error"}`})
			if v, _ := r.nextTick(); v.Action == patrol.ActionTriggered {
				t.Fatalf("a failed tick triggered: %+v", v)
			}
			if got := r.billed() - billed; got != 0 {
				t.Errorf("billed data calls during the 5xx tick = %d, want 0", got)
			}
			v, err := r.nextTick()
			if err != nil || v.Action != patrol.ActionTriggered || v.Reason != patrol.ReasonArrivedHomeReady {
				t.Fatalf("tick after the 5xx: %+v %v, want arrived_home_ready triggered", v, err)
			}
			if r.wakes() != 0 {
				t.Errorf("wakes = %d", r.wakes())
			}
		})
	}
}

// The car comes home and is plugged in at lunchtime, the tick that sees it
// cannot reach the worker, and the car falls asleep until its charging
// window opens at 22:00 — nine hours later. The scout never wakes a car, so
// the first chance to retry the trigger is when the car wakes by itself;
// nothing has changed (still at home, still plugged in), and the cycle that
// never ran must run then. A pending trigger aged past PENDING_TRIGGER_TTL
// while the car slept had no attempt to spend; dropping it loses the night.
func TestPendingArrivalSurvivesTheCarSleepingPastTheTTL(t *testing.T) {
	t.Parallel()
	r := fleetRig(t)
	r.setCar(away)
	if v, err := r.nextTick(); err != nil || v.AtHome {
		t.Fatalf("away tick: %+v %v", v, err)
	}
	r.advance(10 * time.Minute)
	r.setCar(homePlugged)
	r.gate.down.Store(true)
	rep, _ := r.tick()
	if v, _ := vehicleReport(rep); v.Action != patrol.ActionPending || v.Reason != patrol.ReasonArrivedHomeReady {
		t.Fatalf("arrival with the worker unreachable: %+v", v)
	}
	r.gate.down.Store(false)
	for i := 0; i < 36; i++ { // nine hours asleep
		r.advance(15 * time.Minute)
		rep, _ := r.tick()
		if v, _ := vehicleReport(rep); v.Action != patrol.ActionAsleep {
			t.Fatalf("tick %d while the car sleeps: %+v", i, v)
		}
	}
	cycles, _ := r.gate.Calls("/run-cycle")
	r.setCar(func(c *fleetsim.CarState) { c.ChargingState = fleetsim.ChargingCharging }) // the car wakes to charge
	for i := 0; i < 2; i++ {
		if v, _ := r.nextTick(); v.Action == patrol.ActionTriggered {
			return
		}
	}
	after, _ := r.gate.Calls("/run-cycle")
	t.Errorf("no charging cycle within two ticks of the car waking (run-cycle calls %d → %d): the pending arrival was dropped while the car slept", cycles, after)
}
