package fleetsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})

	// Create a car, then update one field.
	if st, body := h.api(http.MethodPut, "/sim/cars/"+testVIN, "", map[string]any{"state": "asleep", "latitude": 50.06, "longitude": 19.94}); st != 200 || body["state"] != "asleep" || body["conn_charge_cable"] != CableUnplugged {
		t.Fatalf("create car: %d %v", st, body)
	}
	if st, body := h.api(http.MethodPut, "/sim/cars/"+testVIN, "", map[string]any{"conn_charge_cable": "IEC", "charging_state": "Stopped"}); st != 200 || body["latitude"] != 50.06 || body["conn_charge_cable"] != "IEC" {
		t.Fatalf("update car: %d %v", st, body)
	}
	if st, _ := h.api(http.MethodPut, "/sim/cars/"+testVIN, "", `{"battery_level":"lots"}`); st != 400 {
		t.Errorf("bad field type: %d", st)
	}
	st, data := h.apiRaw(http.MethodGet, "/sim/cars", "", nil)
	var cars []CarState
	if err := json.Unmarshal(data, &cars); err != nil || st != 200 || len(cars) != 1 || cars[0].ChargingState != ChargingStopped || cars[0].State != StateAsleep {
		t.Fatalf("list cars: %d %s", st, data)
	}

	// Seed tokens, check the chain.
	st, data = h.apiRaw(http.MethodPost, "/sim/login", "", nil)
	var pair TokenPair
	if err := json.Unmarshal(data, &pair); err != nil || st != 200 || pair.AccessToken == "" || pair.ExpiresIn != 28800 {
		t.Fatalf("login: %d %s", st, data)
	}
	if _, body := h.api(http.MethodPost, "/sim/chain-valid", "", map[string]any{"refresh_tokens": []string{"x", pair.RefreshToken}}); body["valid"] != true {
		t.Errorf("chain-valid: %v", body)
	}
	h.mustRefresh(pair.RefreshToken)
	h.mustRefresh(h.sim.NewestRefreshToken())
	if _, body := h.api(http.MethodPost, "/sim/chain-valid", "", map[string]any{"refresh_tokens": []string{pair.RefreshToken}}); body["valid"] != false {
		t.Errorf("chain-valid after two rotations: %v", body)
	}

	// Faults and latency.
	if st, _ := h.api(http.MethodPost, "/sim/faults", "", map[string]any{"endpoint": "vehicles", "status": 429, "retry_after": "60", "times": 1}); st != 204 {
		t.Fatalf("inject: %d", st)
	}
	if st, _ := h.api(http.MethodGet, "/api/1/vehicles", pair.AccessToken, nil); st != 429 {
		t.Errorf("injected fault not applied: %d", st)
	}
	if st, _ := h.api(http.MethodPost, "/sim/faults", "", map[string]any{"endpoint": "nope", "status": 500}); st != 400 {
		t.Errorf("unknown endpoint: %d", st)
	}
	h.api(http.MethodPost, "/sim/faults", "", map[string]any{"endpoint": "*", "status": 500, "times": 5})
	if st, _ := h.api(http.MethodDelete, "/sim/faults", "", nil); st != 204 {
		t.Errorf("clear: %d", st)
	}
	if st, _ := h.api(http.MethodGet, "/api/1/vehicles", pair.AccessToken, nil); st != 200 {
		t.Errorf("after clearing: %d", st)
	}
	if st, _ := h.api(http.MethodPost, "/sim/latency", "", map[string]any{"endpoint": "token", "latency_ms": 0}); st != 204 {
		t.Errorf("latency: %d", st)
	}

	// Clock.
	if st, body := h.api(http.MethodPost, "/sim/clock", "", map[string]any{"advance": "15m"}); st != 200 || body["now"] != simStart.Add(15*time.Minute).Format(time.RFC3339Nano) {
		t.Errorf("advance: %d %v", st, body)
	}
	target := simStart.Add(48 * time.Hour)
	h.api(http.MethodPost, "/sim/clock", "", map[string]any{"set": target.Format(time.RFC3339)})
	if _, body := h.api(http.MethodGet, "/sim/clock", "", nil); body["now"] != target.Format(time.RFC3339Nano) || body["manual"] != true {
		t.Errorf("clock: %v", body)
	}
	if st, _ := h.api(http.MethodPost, "/sim/clock", "", map[string]any{"advance": "soon"}); st != 400 {
		t.Errorf("bad duration: %d", st)
	}

	// Counters.
	_, body := h.api(http.MethodGet, "/sim/counters", "", nil)
	if obj(t, body, "token_exchanges")["refresh_ok"] != 2.0 || obj(t, body, "fleet", "")["other"] != 2.0 {
		t.Errorf("counters: %v", body)
	}
	h.api(http.MethodPost, "/sim/counters/reset", "", nil)
	if c := h.sim.Counters(); len(c.TokenExchanges) != 0 || len(c.Fleet) != 0 || c.Unauthorized != 0 {
		t.Errorf("after reset: %+v", c)
	}
}

func TestAdminClockNeedsManualClock(t *testing.T) {
	t.Parallel()
	sim := New(Options{}) // real clock
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/sim/clock", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusConflict {
		t.Fatalf("status %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/sim/clock", jsonReader(`{"advance":"1m"}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("advance on the real clock: %d, want 409", resp.StatusCode)
	}
}

func TestHandlerWithoutStartUsesRequestHost(t *testing.T) {
	t.Parallel()
	sim := New(Options{})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	p := sim.Login()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/1/users/region", nil)
	req.Header.Set("Authorization", "Bearer "+p.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Response struct {
			FleetAPIBaseURL string `json:"fleet_api_base_url"`
		} `json:"response"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Response.FleetAPIBaseURL != srv.URL {
		t.Fatalf("region base url %q (%v), want %s", body.Response.FleetAPIBaseURL, err, srv.URL)
	}
}
