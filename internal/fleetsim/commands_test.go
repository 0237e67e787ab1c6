package fleetsim

import (
	"maps"
	"net/http"
	"testing"
	"time"
)

func validSchedule() map[string]any {
	return map[string]any{
		"days_of_week": "All", "enabled": true, "start_enabled": true, "end_enabled": true,
		"lat": 52.2297, "lon": 21.0122, "start_time": 1320, "end_time": 360, "one_time": false, "id": 101,
	}
}

func TestAddChargeScheduleValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addLegacyCar(legacyVIN)
	tok := h.token()
	path := "/api/1/vehicles/" + legacyVIN + "/command/add_charge_schedule"

	cases := []struct {
		name     string
		mod      func(map[string]any)
		status   int
		err      string
		wantDays int
	}{
		{"ALL", func(m map[string]any) {}, 200, "", DaysAll},
		{"weekdays lower case", func(m map[string]any) { m["days_of_week"] = "weekdays" }, 200, "", DaysWeekdays},
		{"full names", func(m map[string]any) { m["days_of_week"] = "Monday,Tuesday" }, 200, "", DayMonday | DayTuesday},
		{"short names", func(m map[string]any) { m["days_of_week"] = "SUN, TUES,THURS ,sat" }, 200, "", DaySunday | DayTuesday | DayThursday | DaySaturday},
		{"TUE", func(m map[string]any) { m["days_of_week"] = "MON,TUE" }, 400, "invalid days_of_week param", 0},
		{"THU", func(m map[string]any) { m["days_of_week"] = "THU" }, 400, "invalid days_of_week param", 0},
		{"integer days", func(m map[string]any) { m["days_of_week"] = 127 }, 400, "invalid days_of_week param", 0},
		{"missing days", func(m map[string]any) { delete(m, "days_of_week") }, 400, "invalid days_of_week param", 0},
		{"enabled as string", func(m map[string]any) { m["enabled"] = "true" }, 400, "invalid enabled param", 0},
		{"start_enabled missing", func(m map[string]any) { delete(m, "start_enabled") }, 400, "invalid start_enabled param", 0},
		{"end_enabled as number", func(m map[string]any) { m["end_enabled"] = 1 }, 400, "invalid end_enabled param", 0},
		{"lat missing", func(m map[string]any) { delete(m, "lat") }, 400, "invalid lat param", 0},
		{"lon as string", func(m map[string]any) { m["lon"] = "21.0" }, 400, "invalid lon param", 0},
		{"start_time too big", func(m map[string]any) { m["start_time"] = 1440 }, 400, "invalid start_time param", 0},
		{"end_time negative", func(m map[string]any) { m["end_time"] = -1 }, 400, "invalid end_time param", 0},
		{"one_time as string", func(m map[string]any) { m["one_time"] = "no" }, 400, "invalid one_time param", 0},
	}
	for _, tc := range cases {
		body := validSchedule()
		tc.mod(body)
		st, resp := h.api(http.MethodPost, path, tok, body)
		if st != tc.status {
			t.Errorf("%s: status %d body %v, want %d", tc.name, st, resp, tc.status)
			continue
		}
		if tc.status != 200 {
			if resp["error"] != tc.err || resp["response"] != nil {
				t.Errorf("%s: body %v, want error %q", tc.name, resp, tc.err)
			}
			continue
		}
		if r := obj(t, resp, "response"); r["result"] != true || r["reason"] != "" {
			t.Errorf("%s: %v", tc.name, resp)
		}
		if got := h.sim.Schedules(legacyVIN); len(got) != 1 || got[0].DaysOfWeek != tc.wantDays {
			t.Errorf("%s: stored %+v, want days %d", tc.name, got, tc.wantDays)
		}
	}
	if got := h.sim.FleetRequests(legacyVIN, CategoryCommand); got != len(cases) {
		t.Errorf("command requests %d, want %d", got, len(cases))
	}
}

func TestChargeScheduleStorageAndReadback(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.sim.AddCar(CarState{VIN: legacyVIN, MaxNumChargeSchedules: 2, CommandSigning: CommandSigningOff})
	tok := h.token()
	cmd := func(name string, body any) (int, map[string]any) {
		return h.api(http.MethodPost, "/api/1/vehicles/"+legacyVIN+"/command/"+name, tok, body)
	}
	result := func(resp map[string]any) any { return obj(t, resp, "response")["result"] }

	noID := validSchedule()
	delete(noID, "id")
	if st, resp := cmd("add_charge_schedule", noID); st != 200 || result(resp) != true {
		t.Fatalf("add without id: %d %v", st, resp)
	}
	withID := validSchedule()
	withID["id"] = 7
	withID["lat"] = 52.123456789
	cmd("add_charge_schedule", withID)
	got := h.sim.Schedules(legacyVIN)
	if len(got) != 2 || got[0].ID != simStart.Unix() || got[1].ID != 7 {
		t.Fatalf("ids %+v, want the clock's Unix time then 7", got)
	}
	if want := float64(float32(52.123456789)); got[1].Latitude != want || got[1].Latitude == 52.123456789 {
		t.Errorf("latitude %v, want float32-rounded %v", got[1].Latitude, want)
	}

	// Modifying an existing id works even when full; a third new one does not fit.
	mod := maps.Clone(withID)
	mod["start_time"] = 60
	if _, resp := cmd("add_charge_schedule", mod); result(resp) != true {
		t.Errorf("modify: %v", resp)
	}
	third := validSchedule()
	third["id"] = 8
	if _, resp := cmd("add_charge_schedule", third); result(resp) != false || obj(t, resp, "response")["reason"] != "max schedules reached" {
		t.Errorf("third schedule: %v", resp)
	}
	if got := h.sim.Schedules(legacyVIN); len(got) != 2 || got[1].StartTime != 60 {
		t.Errorf("after modify: %+v", got)
	}

	st, resp := h.api(http.MethodGet, "/api/1/vehicles/"+legacyVIN+"/vehicle_data?endpoints=charge_schedule_data", tok, nil)
	csd := obj(t, resp, "response", "charge_schedule_data")
	list, _ := csd["charge_schedules"].([]any)
	if st != 200 || len(list) != 2 || csd["max_num_charge_schedules"] != 2.0 || csd["next_schedule"] != false {
		t.Fatalf("readback: %d %v", st, resp)
	}
	s := list[1].(map[string]any)
	if s["id"] != 7.0 || s["days_of_week"] != 127.0 || s["start_time"] != 60.0 || s["end_time"] != 360.0 ||
		s["latitude"] != float64(float32(52.123456789)) || s["enabled"] != true || s["one_time"] != false {
		t.Errorf("schedule shape %v", s)
	}
	for _, k := range []string{"start_enabled", "end_enabled", "longitude", "name"} {
		if _, ok := s[k]; !ok {
			t.Errorf("schedule lacks %s", k)
		}
	}

	if _, resp := cmd("remove_charge_schedule", map[string]any{"id": 7}); result(resp) != true {
		t.Errorf("remove: %v", resp)
	}
	if _, resp := cmd("remove_charge_schedule", map[string]any{"id": 7}); result(resp) != true {
		t.Errorf("remove unknown id must succeed like the car: %v", resp)
	}
	if st, _ := cmd("remove_charge_schedule", map[string]any{}); st != 400 {
		t.Errorf("remove without id: %d", st)
	}
	if len(h.sim.Schedules(legacyVIN)) != 1 {
		t.Errorf("after remove: %+v", h.sim.Schedules(legacyVIN))
	}

	for _, name := range []string{"batch_remove_charge_schedules", "honk_horn"} {
		if st, resp := cmd(name, map[string]any{}); st != 400 || resp["error"] != "invalid_command" {
			t.Errorf("%s: %d %v", name, st, resp)
		}
	}

	if _, resp := cmd("set_charge_limit", map[string]any{"percent": 90}); result(resp) != true {
		t.Errorf("set_charge_limit: %v", resp)
	}
	if c, _ := h.sim.Car(legacyVIN); c.ChargeLimitSOC != 90 {
		t.Errorf("limit %d", c.ChargeLimitSOC)
	}
}

func TestCommandToSleepingCar(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.sim.AddCar(CarState{VIN: legacyVIN, State: StateAsleep, CommandSigning: CommandSigningOff})
	tok := h.token()
	st, resp := h.api(http.MethodPost, "/api/1/vehicles/"+legacyVIN+"/command/add_charge_schedule", tok, validSchedule())
	if st != http.StatusInternalServerError || resp["error"] != "vehicle unavailable: vehicle is offline or asleep" {
		t.Fatalf("asleep: %d %v", st, resp)
	}
	if len(h.sim.Schedules(legacyVIN)) != 0 {
		t.Error("a sleeping car stored a schedule")
	}
	if h.sim.FleetRequests(legacyVIN, CategoryCommand) != 1 || h.sim.BilledRequests(legacyVIN, CategoryCommand) != 0 {
		t.Errorf("counters %+v", h.sim.Counters())
	}
}

func TestCommandsKeepCarAwake(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{SleepAfter: 15 * time.Minute})
	h.addLegacyCar(legacyVIN)
	tok := h.token()
	h.clk.Advance(14 * time.Minute)
	h.api(http.MethodPost, "/api/1/vehicles/"+legacyVIN+"/command/set_charge_limit", tok, map[string]any{"percent": 80})
	h.clk.Advance(14 * time.Minute)
	if c, _ := h.sim.Car(legacyVIN); c.State != StateOnline {
		t.Errorf("state %s 14 min after a command", c.State)
	}
}
