package fleetsim

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestFleetRequiresValidAccessToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addCar(testVIN)
	p := h.sim.Login()

	if st, body := h.api(http.MethodGet, "/api/1/vehicles", "", nil); st != 401 || body["error"] != "token expired (401)" {
		t.Errorf("no bearer: %d %v", st, body)
	}
	if st, _ := h.api(http.MethodGet, "/api/1/vehicles", "not-a-token", nil); st != 401 {
		t.Errorf("unknown token: %d", st)
	}
	if st, _ := h.api(http.MethodGet, "/api/1/vehicles", p.AccessToken, nil); st != 200 {
		t.Errorf("valid token: %d", st)
	}
	h.clk.Advance(8 * time.Hour)
	if st, body := h.api(http.MethodGet, "/api/1/vehicles", p.AccessToken, nil); st != 401 || body["error"] != "token expired (401)" {
		t.Errorf("expired token: %d %v", st, body)
	}
	c := h.sim.Counters()
	if c.Unauthorized != 3 || c.Fleet[""][CategoryOther] != 1 {
		t.Errorf("counters: unauthorized %d fleet %v", c.Unauthorized, c.Fleet)
	}
}

func TestRevokeAccessOnRotate(t *testing.T) {
	t.Parallel()
	for _, revoke := range []bool{false, true} {
		h := newHarness(t, Options{RevokeAccessOnRotate: revoke})
		p := h.sim.Login()
		at1, _ := h.mustRefresh(p.RefreshToken)
		st, _ := h.api(http.MethodGet, "/api/1/vehicles", p.AccessToken, nil)
		if want := map[bool]int{false: 200, true: 401}[revoke]; st != want {
			t.Errorf("revoke=%v: old access token answered %d, want %d", revoke, st, want)
		}
		if st, _ := h.api(http.MethodGet, "/api/1/vehicles", at1, nil); st != 200 {
			t.Errorf("revoke=%v: new access token answered %d", revoke, st)
		}
	}
}

func TestVehiclesListAndRegion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addCar(testVIN)
	h.sim.AddCar(CarState{VIN: testVIN2, State: StateAsleep})
	tok := h.token()

	st, body := h.api(http.MethodGet, "/api/1/vehicles", tok, nil)
	list, _ := body["response"].([]any)
	if st != 200 || len(list) != 2 || body["count"] != 2.0 || body["pagination"] == nil {
		t.Fatalf("vehicles: %d %v", st, body)
	}
	first := list[0].(map[string]any)
	for _, k := range []string{"id", "vehicle_id", "vin", "display_name", "state"} {
		if _, ok := first[k]; !ok {
			t.Errorf("vehicles entry lacks %s: %v", k, first)
		}
	}
	if list[1].(map[string]any)["state"] != StateAsleep {
		t.Errorf("second car state %v", list[1])
	}

	st, body = h.api(http.MethodGet, "/api/1/vehicles/"+testVIN2, tok, nil)
	if st != 200 || obj(t, body, "response")["state"] != StateAsleep {
		t.Errorf("vehicle: %d %v", st, body)
	}
	car2, _ := h.sim.Car(testVIN2)
	if st, _ := h.api(http.MethodGet, "/api/1/vehicles/"+strconv.FormatInt(car2.ID, 10), tok, nil); st != 200 {
		t.Errorf("vehicle by id: %d", st)
	}
	if st, body := h.api(http.MethodGet, "/api/1/vehicles/NOPE", tok, nil); st != 404 || body["error"] != "not_found" {
		t.Errorf("unknown vin: %d %v", st, body)
	}
	st, body = h.api(http.MethodGet, "/api/1/users/region", tok, nil)
	if r := obj(t, body, "response"); st != 200 || r["region"] != "eu" || r["fleet_api_base_url"] != h.url {
		t.Errorf("region: %d %v", st, body)
	}
	if st, _ := h.api(http.MethodGet, "/api/1/nothing", tok, nil); st != 404 {
		t.Errorf("unknown path: %d", st)
	}
	if st, _ := h.api(http.MethodPost, "/api/1/vehicles", tok, nil); st != 405 {
		t.Errorf("POST vehicles: %d", st)
	}
	if got := h.sim.FleetRequests(testVIN2, CategoryOther); got != 2 {
		t.Errorf("other requests for car 2: %d", got)
	}
	if got := h.sim.FleetRequests("", CategoryOther); got != 2 {
		t.Errorf("account-level requests: %d", got)
	}
	if got, _ := h.sim.Car(testVIN2); got.State != StateAsleep {
		t.Errorf("GET vehicle woke the car: %s", got.State)
	}
}

func TestVehicleDataSections(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addCar(testVIN)
	tok := h.token()
	path := "/api/1/vehicles/" + testVIN + "/vehicle_data"

	st, body := h.api(http.MethodGet, path+"?endpoints=charge_state;location_data", tok, nil)
	if st != 200 {
		t.Fatalf("vehicle_data: %d %v", st, body)
	}
	resp := obj(t, body, "response")
	if resp["vin"] != testVIN || resp["state"] != StateOnline || resp["id"] == nil {
		t.Errorf("top level %v", resp)
	}
	cs := obj(t, resp, "charge_state")
	if cs["battery_level"] != 55.0 || cs["charging_state"] != ChargingDisconnected || cs["conn_charge_cable"] != CableUnplugged || cs["charge_limit_soc"] != 80.0 {
		t.Errorf("charge_state %v", cs)
	}
	for _, k := range []string{"charge_rate", "charger_power", "minutes_to_full_charge", "timestamp"} {
		if _, ok := cs[k]; !ok {
			t.Errorf("charge_state lacks %s", k)
		}
	}
	ds := obj(t, resp, "drive_state")
	if ds["latitude"] != 52.2297 || ds["longitude"] != 21.0122 || ds["gps_as_of"] != float64(simStart.Unix()) {
		t.Errorf("drive_state %v", ds)
	}
	for _, absent := range []string{"climate_state", "vehicle_state", "vehicle_config", "charge_schedule_data"} {
		if _, ok := resp[absent]; ok {
			t.Errorf("unrequested section %s present", absent)
		}
	}

	_, body = h.api(http.MethodGet, path, tok, nil)
	resp = obj(t, body, "response")
	for _, k := range []string{"charge_state", "climate_state", "vehicle_state", "vehicle_config", "charge_schedule_data"} {
		if _, ok := resp[k]; !ok {
			t.Errorf("default vehicle_data lacks %s", k)
		}
	}
	if _, ok := obj(t, resp, "drive_state")["latitude"]; ok {
		t.Error("location returned without location_data")
	}
	if off := obj(t, resp, "vehicle_config")["utc_offset"]; off != 3600.0 {
		t.Errorf("utc_offset %v, want 3600 (Warsaw in January)", off)
	}
	if got := h.sim.FleetRequests(testVIN, CategoryData); got != 2 {
		t.Errorf("data requests %d", got)
	}
}

func TestAsleepCarAnswers408AndIsBilled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.sim.AddCar(CarState{VIN: testVIN, State: StateAsleep})
	tok := h.token()
	st, body := h.api(http.MethodGet, "/api/1/vehicles/"+testVIN+"/vehicle_data?endpoints=charge_state", tok, nil)
	if st != http.StatusRequestTimeout || body["error"] != "vehicle unavailable: vehicle is offline or asleep" || body["response"] != nil {
		t.Fatalf("asleep: %d %v", st, body)
	}
	if h.sim.FleetRequests(testVIN, CategoryData) != 1 || h.sim.BilledRequests(testVIN, CategoryData) != 1 {
		t.Errorf("counters %+v", h.sim.Counters())
	}
	if c, _ := h.sim.Car(testVIN); c.State != StateAsleep {
		t.Error("a data call woke the car")
	}
}

func TestSleepModel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{SleepAfter: 15 * time.Minute})
	h.addCar(testVIN)
	h.addCar(testVIN2)
	tok := h.token()
	state := func(vin string) string {
		c, _ := h.sim.Car(vin)
		return c.State
	}

	h.clk.Advance(10 * time.Minute)
	// A data call is activity; the free state check is not.
	h.api(http.MethodGet, "/api/1/vehicles/"+testVIN+"/vehicle_data", tok, nil)
	h.api(http.MethodGet, "/api/1/vehicles/"+testVIN2, tok, nil)
	h.clk.Advance(5 * time.Minute)
	h.sim.Tick()
	if state(testVIN) != StateOnline || state(testVIN2) != StateAsleep {
		t.Fatalf("after 15 min: %s %s, want online asleep", state(testVIN), state(testVIN2))
	}
	h.clk.Advance(10 * time.Minute)
	if state(testVIN) != StateAsleep {
		t.Fatal("car polled 15 min ago is still awake")
	}

	// A charging car stays awake; once charging ends it idles from then.
	_ = h.sim.SetCar(testVIN2, func(c *CarState) {
		c.State = StateOnline
		c.ConnChargeCable = CableIEC
		c.ChargingState = ChargingCharging
	})
	h.clk.Advance(90 * time.Minute) // 55 % + 1.5 h × 13.2 %/h: still below the 80 % limit
	if state(testVIN2) != StateOnline {
		t.Fatal("charging car fell asleep")
	}
	_ = h.sim.SetCar(testVIN2, func(c *CarState) { c.ChargingState = ChargingComplete })
	h.clk.Advance(14 * time.Minute)
	if state(testVIN2) != StateOnline {
		t.Fatal("car fell asleep before SleepAfter once charging completed")
	}
	h.clk.Advance(time.Minute)
	if state(testVIN2) != StateAsleep {
		t.Fatal("car did not fall asleep after charging completed")
	}
}

func TestWakeUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{WakeDelay: 20 * time.Second})
	h.sim.AddCar(CarState{VIN: testVIN, State: StateAsleep})
	tok := h.token()
	st, body := h.api(http.MethodPost, "/api/1/vehicles/"+testVIN+"/wake_up", tok, nil)
	if r := obj(t, body, "response"); st != 200 || r["state"] != StateAsleep || r["vin"] != testVIN {
		t.Fatalf("wake_up: %d %v", st, body)
	}
	data := "/api/1/vehicles/" + testVIN + "/vehicle_data"
	h.clk.Advance(19 * time.Second)
	if st, _ := h.api(http.MethodGet, data, tok, nil); st != 408 {
		t.Errorf("before WakeDelay: %d, want 408", st)
	}
	h.clk.Advance(time.Second)
	if st, _ := h.api(http.MethodGet, data, tok, nil); st != 200 {
		t.Errorf("after WakeDelay: %d, want 200", st)
	}
	if got := h.sim.FleetRequests(testVIN, CategoryWake); got != 1 {
		t.Errorf("wake requests %d", got)
	}
	// Woken at +20 s and polled then: asleep again SleepAfter after the poll.
	h.clk.Advance(DefaultSleepAfter)
	if c, _ := h.sim.Car(testVIN); c.State != StateAsleep {
		t.Errorf("state %s after idling", c.State)
	}
}

func TestScriptAppliesLazilyInOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{SleepAfter: 15 * time.Minute})
	h.addCar(testVIN)
	var notes []string
	h.sim.RunScript(simStart, []TripStep{
		{At: time.Hour, Note: "drive to work", Apply: func(c *CarState) {
			notes = append(notes, "work")
			c.State, c.Latitude, c.Longitude = StateOnline, 52.1, 21.0
		}},
		{At: 9 * time.Hour, Note: "home and plug in", Apply: func(c *CarState) {
			notes = append(notes, "home")
			c.State, c.Latitude, c.Longitude = StateOnline, 52.2297, 21.0122
			c.ConnChargeCable, c.ChargingState = CableIEC, ChargingCharging
		}},
		{At: 11 * time.Hour, Note: "charged", VIN: testVIN, Apply: func(c *CarState) {
			notes = append(notes, "charged")
			c.ChargingState, c.BatteryLevel = ChargingComplete, 80
		}},
	})
	h.clk.Advance(30 * time.Minute)
	h.sim.Tick()
	if c, _ := h.sim.Car(testVIN); c.State != StateAsleep || len(notes) != 0 {
		t.Fatalf("at 30 min: %s, notes %v", c.State, notes)
	}
	h.clk.Advance(9*time.Hour + 30*time.Minute)
	c, _ := h.sim.Car(testVIN)
	if len(notes) != 2 || c.State != StateOnline || c.ChargingState != ChargingCharging || c.Latitude != 52.2297 {
		t.Fatalf("at 10h: %+v notes %v", c, notes)
	}
	h.clk.Advance(time.Hour + 10*time.Minute)
	c, _ = h.sim.Car(testVIN)
	if len(notes) != 3 || c.State != StateOnline || c.BatteryLevel != 80 || c.ChargingState != ChargingComplete {
		t.Fatalf("at 11h10: %+v notes %v", c, notes)
	}
	h.clk.Advance(5 * time.Minute)
	if c, _ = h.sim.Car(testVIN); c.State != StateAsleep {
		t.Fatalf("at 11h15: %s, want asleep", c.State)
	}
}
