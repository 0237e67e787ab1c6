package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestHeaders(t *testing.T) {
	t.Parallel()
	fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/command/") {
			answer(w, 200, `{"response":{"result":true,"reason":""}}`)
			return
		}
		answer(w, 200, `{"response":{"id":1,"vin":"`+testVIN+`","state":"online"}}`)
	})
	c := New(fake.URL(), staticToken(testToken), WithUserAgent(UserAgent("test", "9")))
	if _, err := c.Vehicle(context.Background(), testVIN); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveChargeSchedule(context.Background(), testVIN, 5); err != nil {
		t.Fatal(err)
	}
	reqs := fake.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("%s %s: Authorization = %q", r.Method, r.Path, got)
		}
		if got := r.Header.Get("Accept"); got != "application/json" {
			t.Errorf("%s %s: Accept = %q", r.Method, r.Path, got)
		}
		if got := r.Header.Get("User-Agent"); got != "offpeak-test/9" {
			t.Errorf("%s %s: User-Agent = %q", r.Method, r.Path, got)
		}
	}
	if got := reqs[0].Header.Get("Content-Type"); got != "" {
		t.Errorf("GET carries Content-Type %q", got)
	}
	if got := reqs[1].Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("command Content-Type = %q, want application/json", got)
	}
}

func TestUserAgent(t *testing.T) {
	t.Parallel()
	if got := UserAgent("worker", "1.4.0"); got != "offpeak-worker/1.4.0" {
		t.Errorf("UserAgent = %q", got)
	}
	if got := UserAgent("scout", ""); got != "offpeak-scout/dev" {
		t.Errorf("UserAgent without a version = %q", got)
	}
}

func TestVehiclesPagination(t *testing.T) {
	t.Parallel()
	const total = 250
	vehicle := func(i int) string {
		return fmt.Sprintf(`{"id":%d,"id_s":"%d","vin":"VIN%05d","display_name":"car %d","state":"asleep"}`, 1000+i, 1000+i, i, i)
	}
	page := func(r *http.Request) (int, []string) {
		p, _ := strconv.Atoi(r.URL.Query().Get("page"))
		var items []string
		for i := (p - 1) * 100; i < p*100 && i < total; i++ {
			items = append(items, vehicle(i))
		}
		return p, items
	}

	tests := []struct {
		name     string
		handle   http.HandlerFunc
		want     int
		requests int
	}{
		{"pagination block with next", func(w http.ResponseWriter, r *http.Request) {
			p, items := page(r)
			next := "null"
			if p < 3 {
				next = strconv.Itoa(p + 1)
			}
			answer(w, 200, fmt.Sprintf(`{"response":[%s],"pagination":{"previous":null,"next":%s,"current":%d,"per_page":100,"count":%d,"pages":3},"count":%d}`,
				strings.Join(items, ","), next, p, total, total))
		}, total, 3},
		{"pagination block with pages only", func(w http.ResponseWriter, r *http.Request) {
			p, items := page(r)
			answer(w, 200, fmt.Sprintf(`{"response":[%s],"pagination":{"current":%d,"pages":3}}`, strings.Join(items, ","), p))
		}, total, 3},
		{"no pagination block: stop at a short page", func(w http.ResponseWriter, r *http.Request) {
			_, items := page(r)
			answer(w, 200, `{"response":[`+strings.Join(items, ",")+`]}`)
		}, total, 3},
		{"single page", func(w http.ResponseWriter, r *http.Request) {
			answer(w, 200, `{"response":[`+vehicle(0)+`],"pagination":{"previous":null,"next":null,"current":1,"per_page":2,"count":1,"pages":1},"count":1}`)
		}, 1, 1},
		{"no vehicles", func(w http.ResponseWriter, r *http.Request) {
			answer(w, 200, `{"response":[],"count":0}`)
		}, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeTesla(t, tc.handle)
			got, err := New(fake.URL(), staticToken(testToken)).Vehicles(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("%d vehicles, want %d", len(got), tc.want)
			}
			for i, v := range got {
				want := Vehicle{ID: int64(1000 + i), VIN: fmt.Sprintf("VIN%05d", i), DisplayName: fmt.Sprintf("car %d", i), State: StateAsleep}
				if v != want {
					t.Fatalf("vehicle %d = %+v, want %+v", i, v, want)
				}
			}
			reqs := fake.requests()
			if len(reqs) != tc.requests {
				t.Fatalf("%d requests, want %d", len(reqs), tc.requests)
			}
			for i, r := range reqs {
				if r.Method != http.MethodGet || r.Path != "/api/1/vehicles" {
					t.Errorf("request %d: %s %s", i, r.Method, r.Path)
				}
				if want := fmt.Sprintf("page=%d&per_page=100", i+1); r.RawQuery != want {
					t.Errorf("request %d query %q, want %q", i, r.RawQuery, want)
				}
			}
		})
	}
}

func TestVehiclesPaginationThatNeverEnds(t *testing.T) {
	t.Parallel()
	fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
		p, _ := strconv.Atoi(r.URL.Query().Get("page"))
		answer(w, 200, fmt.Sprintf(`{"response":[{"id":%d}],"pagination":{"next":%d}}`, p, p+1))
	})
	_, err := New(fake.URL(), staticToken(testToken)).Vehicles(context.Background())
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if n := len(fake.requests()); n != maxVehiclePages {
		t.Errorf("%d requests, want %d", n, maxVehiclePages)
	}
}

func TestVehicleNeverWakes(t *testing.T) {
	t.Parallel()
	fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"response":{"id":100021,"vin":"`+testVIN+`","display_name":"Blue","state":"asleep","in_service":false}}`)
	})
	v, err := New(fake.URL(), staticToken(testToken)).Vehicle(context.Background(), testVIN)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Vehicle{ID: 100021, VIN: testVIN, DisplayName: "Blue", State: StateAsleep}); v != want {
		t.Errorf("Vehicle = %+v, want %+v", v, want)
	}
	reqs := fake.requests()
	if len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].Path != "/api/1/vehicles/"+testVIN || reqs[0].RawQuery != "" {
		t.Errorf("requests = %+v, want one GET /api/1/vehicles/%s", reqs, testVIN)
	}
}

func TestVehicleDataOneRequest(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile("testdata/vehicle_data_online.json")
	if err != nil {
		t.Fatal(err)
	}
	fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 200, string(body)) })
	c := New(fake.URL(), staticToken(testToken))
	vd, err := c.VehicleData(context.Background(), testVIN,
		EndpointChargeState, EndpointLocationData, EndpointChargeScheduleData, EndpointVehicleConfig)
	if err != nil {
		t.Fatal(err)
	}
	reqs := fake.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want exactly 1", len(reqs))
	}
	if want := "/api/1/vehicles/" + testVIN + "/vehicle_data"; reqs[0].Path != want || reqs[0].Method != http.MethodGet {
		t.Errorf("request %s %s, want GET %s", reqs[0].Method, reqs[0].Path, want)
	}
	if want := "endpoints=charge_state%3Blocation_data%3Bcharge_schedule_data%3Bvehicle_config"; reqs[0].RawQuery != want {
		t.Errorf("raw query %q, want %q", reqs[0].RawQuery, want)
	}
	// What a Go server (our simulator) reads with url.Query: a raw ';' would
	// make it drop the parameter.
	q, err := url.ParseQuery(reqs[0].RawQuery)
	if want := "charge_state;location_data;charge_schedule_data;vehicle_config"; err != nil || q.Get("endpoints") != want {
		t.Errorf("server reads endpoints %q (%v), want %q", q.Get("endpoints"), err, want)
	}
	if vd.VIN != testVIN || vd.State != StateOnline || vd.ID != 100021 {
		t.Errorf("identity = %d %q %q", vd.ID, vd.VIN, vd.State)
	}
	if vd.Charge == nil || vd.Charge.BatteryLevel != 42 || !vd.Charge.CablePlugged() || vd.Charge.ChargingState != "Charging" {
		t.Errorf("charge = %+v", vd.Charge)
	}
	if vd.Location == nil || vd.Location.Latitude != 52.2296756 || vd.Location.Longitude != 21.0122287 {
		t.Errorf("location = %+v", vd.Location)
	}
	if vd.UTCOffset == nil || *vd.UTCOffset != 3600 {
		t.Errorf("utc offset = %v", vd.UTCOffset)
	}
	if vd.Schedules == nil || len(vd.Schedules.Schedules) != 2 || vd.Schedules.MaxNumChargeSchedules != 10 {
		t.Fatalf("schedules = %+v", vd.Schedules)
	}
}

func TestVehicleDataRequestShapes(t *testing.T) {
	t.Parallel()
	fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 200, `{"response":{"state":"online"}}`) })
	c := New(fake.URL()+"/", staticToken(testToken)) // a trailing slash on the base URL is fine

	if _, err := c.VehicleData(context.Background(), testVIN); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"charge_state;x"}, {"charge_state&endpoints=x"}, {""}, {"Charge_State"}} {
		if _, err := c.VehicleData(context.Background(), testVIN, bad...); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("endpoints %q: err = %v, want ErrInvalidRequest", bad, err)
		}
	}
	if _, err := c.VehicleData(context.Background(), " "); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("empty VIN: err = %v, want ErrInvalidRequest", err)
	}
	if _, err := c.Vehicle(context.Background(), "A/B?c"); err != nil {
		t.Fatal(err)
	}
	reqs := fake.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (invalid ones are not sent)", len(reqs))
	}
	if reqs[0].RawQuery != "" || reqs[0].Path != "/api/1/vehicles/"+testVIN+"/vehicle_data" {
		t.Errorf("no endpoints: %s?%s", reqs[0].Path, reqs[0].RawQuery)
	}
	if reqs[1].Path != "/api/1/vehicles/A%2FB%3Fc" {
		t.Errorf("VIN not escaped: %s", reqs[1].Path)
	}
}

func TestWakeUpGoesToFleetAPI(t *testing.T) {
	t.Parallel()
	fleetAPI := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"response":{"id":1,"vin":"`+testVIN+`","state":"asleep"}}`)
	})
	proxy := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 500, "") })
	c := New(fleetAPI.URL(), staticToken(testToken), WithCommandURL(proxy.URL()))
	v, err := c.WakeUp(context.Background(), testVIN)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != StateAsleep || v.VIN != testVIN {
		t.Errorf("WakeUp = %+v", v)
	}
	reqs := fleetAPI.requests()
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].Path != "/api/1/vehicles/"+testVIN+"/wake_up" {
		t.Errorf("fleet API saw %+v, want one POST …/wake_up", reqs)
	}
	if n := len(proxy.requests()); n != 0 {
		t.Errorf("proxy saw %d requests, want 0", n)
	}
}

func TestRegion(t *testing.T) {
	t.Parallel()
	fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/1/users/region" {
			answer(w, 404, "")
			return
		}
		answer(w, 200, `{"response":{"region":"eu","fleet_api_base_url":"https://fleet-api.prd.eu.vn.cloud.tesla.com"}}`)
	})
	reg, err := New(fake.URL(), staticToken(testToken)).Region(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Region{Region: "eu", FleetAPIBaseURL: "https://fleet-api.prd.eu.vn.cloud.tesla.com"}); reg != want {
		t.Errorf("Region = %+v, want %+v", reg, want)
	}

	empty := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 200, `{"response":{"region":"eu"}}`) })
	if _, err := New(empty.URL(), staticToken(testToken)).Region(context.Background()); !errors.Is(err, ErrMalformed) {
		t.Errorf("region without base URL: err = %v, want ErrMalformed", err)
	}
}

func TestMalformedSuccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
	}{
		{"not json", "<html>hello</html>"},
		{"truncated", `{"response":{"id":1,`},
		{"null response", `{"response":null}`},
		{"array response", `{"response":[]}`},
		{"over the size bound", `{"response":{"pad":"` + strings.Repeat("a", maxBodyBytes) + `"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 200, tc.body) })
			c := New(fake.URL(), staticToken(testToken))
			_, err := c.VehicleData(context.Background(), testVIN, EndpointChargeState)
			if !errors.Is(err, ErrMalformed) || IsTransient(err) {
				t.Errorf("VehicleData: err = %v, want ErrMalformed", err)
			}
			if _, err := c.Vehicle(context.Background(), testVIN); !errors.Is(err, ErrMalformed) {
				t.Errorf("Vehicle: err = %v, want ErrMalformed", err)
			}
		})
	}
}

type failingTokens struct{ calls int }

func (f *failingTokens) AccessToken(context.Context) (string, error) {
	f.calls++
	return "", errors.New("token store unavailable")
}

func TestTokenSourceFailures(t *testing.T) {
	t.Parallel()
	fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 200, `{"response":{}}`) })
	tokens := &failingTokens{}
	_, err := New(fake.URL(), tokens).Vehicle(context.Background(), testVIN)
	if err == nil || !strings.Contains(err.Error(), "token store unavailable") {
		t.Errorf("err = %v, want the token source's error", err)
	}
	if _, err := New(fake.URL(), staticToken("")).Vehicle(context.Background(), testVIN); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("empty token: err = %v, want ErrInvalidRequest", err)
	}
	if n := len(fake.requests()); n != 0 || tokens.calls != 1 {
		t.Errorf("%d requests, %d token calls; want 0 and 1", n, tokens.calls)
	}
}

func TestCommandsGoToCommandURL(t *testing.T) {
	t.Parallel()
	fleetAPI := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 403, teslaError(signingRequiredBody)) })
	proxy := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"response":{"result":true,"reason":""}}`)
	})
	c := New(fleetAPI.URL(), staticToken(testToken), WithCommandURL(proxy.URL()+"/"))
	req := ScheduleRequest{ID: 1735686000, DaysOfWeek: "All", Enabled: true, StartEnabled: true, EndEnabled: true,
		StartTime: 22 * 60, EndTime: 6 * 60, Lat: 52.2297, Lon: 21.0122}
	if err := c.AddChargeSchedule(context.Background(), testVIN, req); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveChargeSchedule(context.Background(), testVIN, 1735686000); err != nil {
		t.Fatal(err)
	}
	if n := len(fleetAPI.requests()); n != 0 {
		t.Errorf("Fleet API saw %d commands, want 0", n)
	}
	reqs := proxy.requests()
	if len(reqs) != 2 {
		t.Fatalf("proxy saw %d requests, want 2", len(reqs))
	}
	for i, name := range []string{"add_charge_schedule", "remove_charge_schedule"} {
		if want := "/api/1/vehicles/" + testVIN + "/command/" + name; reqs[i].Method != http.MethodPost || reqs[i].Path != want {
			t.Errorf("request %d: %s %s, want POST %s", i, reqs[i].Method, reqs[i].Path, want)
		}
	}
	var removed map[string]any
	if err := json.Unmarshal(reqs[1].Body, &removed); err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed["id"] != float64(1735686000) {
		t.Errorf("remove body = %s, want {\"id\":1735686000}", reqs[1].Body)
	}

	// Without WithCommandURL commands go to the base URL, and a car that
	// wants signed commands answers 403 there: not a scope problem.
	err := New(fleetAPI.URL(), staticToken(testToken)).RemoveChargeSchedule(context.Background(), testVIN, 1)
	if !errors.Is(err, ErrSigningRequired) || errors.Is(err, ErrForbidden) {
		t.Errorf("err = %v, want ErrSigningRequired (and not ErrForbidden)", err)
	}
}

func TestCommandResults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		body    string
		want    error
		mention string
	}{
		{"result true", 200, `{"response":{"result":true,"reason":""}}`, nil, ""},
		{"result false", 200, `{"response":{"result":false,"reason":"charging_schedule_not_at_location"}}`, ErrCommandFailed, "charging_schedule_not_at_location"},
		{"result false without reason", 200, `{"response":{"result":false}}`, ErrCommandFailed, "no reason given"},
		{"hardlocked", 200, `{"response":{"result":false,"reason":"unsigned_cmds_hardlocked"}}`, ErrSigningRequired, "unsigned_cmds_hardlocked"},
		{"result missing", 200, `{"response":{"reason":"ok?"}}`, ErrMalformed, "result"},
		{"result not a bool", 200, `{"response":{"result":"true"}}`, ErrMalformed, "result"},
		{"response null", 200, `{"response":null}`, ErrMalformed, ""},
		{"proxy rejects a parameter", 400, teslaError("invalid days_of_week param"), ErrBadRequest, "invalid days_of_week param"},
		{"proxy: car asleep", 500, teslaError("vehicle unavailable: vehicle is offline or asleep"), ErrAsleep, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, tc.status, tc.body) })
			c := New("http://fleet.invalid", staticToken(testToken), WithCommandURL(proxy.URL()))
			err := c.AddChargeSchedule(context.Background(), testVIN, ScheduleRequest{ID: 9, DaysOfWeek: "Weekdays", Lat: 1, Lon: 2})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if got := kindsOf(err); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("err = %v, kinds %v, want %v", err, got, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("err %q does not mention %q", err, tc.mention)
			}
			if IsTransient(err) {
				t.Errorf("err %v is transient", err)
			}
		})
	}
}
