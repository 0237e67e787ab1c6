package fleetsim

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Tesla's exact 403 for an unsigned REST command to a car that needs signing
// (vehicle-commands.md §1).
const want403 = `{"response":null,"error":"Tesla Vehicle Command Protocol required, please refer to the documentation here: https://developer.tesla.com/docs/fleet-api#2023-10-09-rest-api-vehicle-commands-endpoint-deprecation-warning","error_description":""}`

func TestRESTCommandToSigningCar(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addCar(testVIN)
	h.sim.AddCar(CarState{VIN: testVIN2, State: StateAsleep})
	tok := h.token()
	for _, tc := range []struct {
		vin, name string
		body      any
	}{
		{testVIN, "add_charge_schedule", validSchedule()},
		{testVIN, "set_charge_limit", map[string]any{"percent": 90}},
		{testVIN, "set_charge_limit", `{"percent":`}, // before parameters are looked at
		{testVIN, "honk_horn", nil},
		{testVIN2, "charge_start", nil}, // asleep: Tesla's server refuses without asking the car
	} {
		st, data := h.apiRaw(http.MethodPost, "/api/1/vehicles/"+tc.vin+"/command/"+tc.name, tok, tc.body)
		if st != http.StatusForbidden || strings.TrimSpace(string(data)) != want403 {
			t.Errorf("%s %s: %d %s", tc.vin, tc.name, st, data)
		}
	}
	if len(h.sim.Schedules(testVIN)) != 0 {
		t.Error("a refused command stored a schedule")
	}
	if c, _ := h.sim.Car(testVIN); c.ChargeLimitSOC != 80 {
		t.Errorf("limit %d", c.ChargeLimitSOC)
	}
	if h.sim.FleetRequests(testVIN, CategoryCommand) != 4 || h.sim.BilledRequests(testVIN, CategoryCommand) != 4 {
		t.Errorf("counters %+v", h.sim.Counters())
	}
	if c, _ := h.sim.Car(testVIN2); c.State != StateAsleep {
		t.Error("the refused command woke the car")
	}
}

func TestRESTCommandHardlocked(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.sim.AddCar(CarState{VIN: testVIN, UnsignedHardlocked: true})
	tok := h.token()
	st, resp := h.api(http.MethodPost, "/api/1/vehicles/"+testVIN+"/command/set_charge_limit", tok, map[string]any{"percent": 90})
	if r := obj(t, resp, "response"); st != 200 || r["result"] != false || r["reason"] != "unsigned_cmds_hardlocked" {
		t.Fatalf("hardlocked: %d %v", st, resp)
	}
	if c, _ := h.sim.Car(testVIN); c.ChargeLimitSOC != 80 {
		t.Errorf("limit %d", c.ChargeLimitSOC)
	}
	// Parameters are still checked first, and an asleep car is a 500, as for other REST commands.
	if st, _ := h.api(http.MethodPost, "/api/1/vehicles/"+testVIN+"/command/set_charge_limit", tok, map[string]any{}); st != 400 {
		t.Errorf("missing percent: %d", st)
	}
	_ = h.sim.SetCar(testVIN, func(c *CarState) { c.State = StateAsleep })
	if st, _ := h.api(http.MethodPost, "/api/1/vehicles/"+testVIN+"/command/set_charge_limit", tok, map[string]any{"percent": 90}); st != 500 {
		t.Errorf("asleep: %d", st)
	}
}

func TestRESTChargeStartStop(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addLegacyCar(legacyVIN)
	tok := h.token()
	cmd := func(name string) map[string]any {
		_, resp := h.api(http.MethodPost, "/api/1/vehicles/"+legacyVIN+"/command/"+name, tok, nil)
		return obj(t, resp, "response")
	}
	if r := cmd("charge_start"); r["result"] != false || r["reason"] != "disconnected" {
		t.Errorf("unplugged: %v", r)
	}
	_ = h.sim.SetCar(legacyVIN, func(c *CarState) { c.ConnChargeCable, c.ChargingState = CableIEC, ChargingStopped })
	if r := cmd("charge_start"); r["result"] != true {
		t.Errorf("start: %v", r)
	}
	if r := cmd("charge_start"); r["reason"] != "is_charging" {
		t.Errorf("start twice: %v", r)
	}
	if r := cmd("charge_stop"); r["result"] != true {
		t.Errorf("stop: %v", r)
	}
	if r := cmd("charge_stop"); r["reason"] != "not_charging" {
		t.Errorf("stop twice: %v", r)
	}
	_ = h.sim.SetCar(legacyVIN, func(c *CarState) { c.BatteryLevel = 80 })
	if r := cmd("charge_start"); r["reason"] != "complete" {
		t.Errorf("full: %v", r)
	}
	if c, _ := h.sim.Car(legacyVIN); c.ChargingState != ChargingComplete {
		t.Errorf("state %s", c.ChargingState)
	}
}

func TestSignedCommandHTTPErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addCar(testVIN)
	tok := h.token()
	path := "/api/1/vehicles/" + testVIN + "/signed_command"
	for _, tc := range []struct {
		name string
		body any
		want int
	}{
		{"malformed JSON", `{"routable_message":`, 400},
		{"not base64", `{"routable_message":"%%%"}`, 400},
		{"missing", `{}`, 400},
		{"not a RoutableMessage", map[string][]byte{"routable_message": {0xff, 0xff, 0xff}}, 400},
	} {
		st, data := h.apiRaw(http.MethodPost, path, tok, tc.body)
		var e teslaError
		if st != tc.want || json.Unmarshal(data, &e) != nil || e.Error == "" || !strings.HasPrefix(string(data), `{"response":null,"error":`) ||
			!strings.Contains(string(data), `"error_description":""`) {
			t.Errorf("%s: %d %s", tc.name, st, data)
		}
	}
	if st, _ := h.apiRaw(http.MethodPost, "/api/1/vehicles/NOPE/signed_command", tok, `{"routable_message":"AA=="}`); st != 404 {
		t.Errorf("unknown VIN: %d", st)
	}
	if st, _ := h.apiRaw(http.MethodPost, path, "", `{}`); st != 401 {
		t.Errorf("no token: %d", st)
	}
	if st, _ := h.apiRaw(http.MethodGet, path, tok, nil); st != 405 {
		t.Errorf("GET: %d", st)
	}
	if got := h.sim.FleetRequests(testVIN, CategoryCommand); got != 4 || h.sim.BilledRequests(testVIN, CategoryCommand) != 4 {
		t.Errorf("command requests %d, want 4 (401 and 405 are not counted)", got)
	}
}

func TestFleetStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	app, other := newClientKey(t), newClientKey(t)
	if err := h.sim.SetAppPublicKey([]byte(publicKeyPEM(app.PublicBytes()))); err != nil {
		t.Fatal(err)
	}
	h.addCar(testVIN)
	h.addCar(testVIN2)
	h.addLegacyCar(legacyVIN)
	_ = h.sim.PairKey(testVIN, app.PublicBytes())
	_ = h.sim.PairKey(testVIN, other.PublicBytes())
	_ = h.sim.PairKey(testVIN2, other.PublicBytes())
	tok := h.token()
	status := func() map[string]any {
		st, body := h.api(http.MethodPost, "/api/1/vehicles/fleet_status", tok, map[string]any{"vins": []string{testVIN, testVIN2, legacyVIN, "NOPE"}})
		if st != 200 {
			t.Fatalf("fleet_status: %d %v", st, body)
		}
		return obj(t, body, "response")
	}
	r := status()
	if got, _ := json.Marshal(r["key_paired_vins"]); string(got) != `["`+testVIN+`"]` {
		t.Errorf("key_paired_vins %s", got)
	}
	if got, _ := json.Marshal(r["unpaired_vins"]); string(got) != `["`+testVIN2+`","`+legacyVIN+`","NOPE"]` {
		t.Errorf("unpaired_vins %s", got)
	}
	info := obj(t, r, "vehicle_info")
	v1 := obj(t, info, testVIN)
	if v1["vehicle_command_protocol_required"] != true || v1["firmware_version"] != DefaultFirmwareVersion || v1["fleet_telemetry_version"] != "1.1.0" ||
		v1["total_number_of_keys"] != 2.0 || v1["discounted_device_data"] != false || len(v1) != 5 {
		t.Errorf("vehicle_info %v", v1)
	}
	if l := obj(t, info, legacyVIN); l["vehicle_command_protocol_required"] != false || l["total_number_of_keys"] != 0.0 {
		t.Errorf("legacy %v", l)
	}
	if _, ok := info["NOPE"]; ok {
		t.Error("vehicle_info for an unknown VIN")
	}
	// Without an app key, any paired key counts.
	_ = h.sim.SetAppPublicKey(nil)
	if got, _ := json.Marshal(status()["key_paired_vins"]); string(got) != `["`+testVIN+`","`+testVIN2+`"]` {
		t.Errorf("key_paired_vins without app key %s", got)
	}
	if st, _ := h.api(http.MethodPost, "/api/1/vehicles/fleet_status", tok, map[string]any{"vins": []string{}}); st != 400 {
		t.Errorf("no vins: %d", st)
	}
	if st, _ := h.api(http.MethodGet, "/api/1/vehicles/fleet_status", tok, nil); st != 405 {
		t.Errorf("GET fleet_status: %d", st)
	}
	if got := h.sim.FleetRequests("", CategoryOther); got != 3 { // a 405 is not counted
		t.Errorf("account-level requests %d", got)
	}
	// Options.AppPublicKey works as SetAppPublicKey.
	h2 := newHarness(t, Options{AppPublicKey: app.PublicBytes()})
	if got := h2.sim.AppPublicKey(); hex.EncodeToString(got) != hex.EncodeToString(app.PublicBytes()) {
		t.Errorf("Options.AppPublicKey %x", got)
	}
}

func TestVehiclesCommandSigning(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addCar(testVIN)
	h.addLegacyCar(legacyVIN)
	tok := h.token()
	_, body := h.api(http.MethodGet, "/api/1/vehicles", tok, nil)
	list := body["response"].([]any)
	if list[0].(map[string]any)["command_signing"] != "required" || list[1].(map[string]any)["command_signing"] != "off" {
		t.Errorf("vehicles %v", list)
	}
	_, body = h.api(http.MethodGet, "/api/1/vehicles/"+legacyVIN, tok, nil)
	if obj(t, body, "response")["command_signing"] != "off" {
		t.Errorf("vehicle %v", body)
	}
	_, body = h.api(http.MethodGet, "/api/1/vehicles/"+legacyVIN+"/vehicle_data?endpoints=vehicle_config;vehicle_state", tok, nil)
	if obj(t, body, "response", "vehicle_config")["car_type"] != "models" || obj(t, body, "response", "vehicle_state")["car_version"] != DefaultFirmwareVersion+" fleetsim" {
		t.Errorf("vehicle_data %v", body)
	}
	// The admin API validates and normalizes command_signing.
	if st, _ := h.api(http.MethodPut, "/sim/cars/"+testVIN, "", map[string]any{"command_signing": "sometimes"}); st != 400 {
		t.Errorf("bad command_signing: %d", st)
	}
	if st, c := h.api(http.MethodPut, "/sim/cars/"+testVIN, "", map[string]any{"command_signing": "legacy"}); st != 200 || c["command_signing"] != "off" {
		t.Errorf("legacy alias: %d %v", st, c)
	}
	if st, c := h.api(http.MethodPut, "/sim/cars/NEW0000000000000X", "", map[string]any{}); st != 200 || c["command_signing"] != "required" || c["firmware_version"] != DefaultFirmwareVersion {
		t.Errorf("new car defaults: %d %v", st, c)
	}
}

func TestAdminKeys(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addCar(testVIN)
	a, b := newClientKey(t), newClientKey(t)
	keysPath := "/sim/cars/" + testVIN + "/keys"

	// Pair A by PEM (what the app's .well-known file holds), B by hex.
	st, body := h.api(http.MethodPost, keysPath, "", map[string]any{"public_key": publicKeyPEM(a.PublicBytes())})
	if st != 200 || len(body["keys"].([]any)) != 1 {
		t.Fatalf("pair A: %d %v", st, body)
	}
	if st, body := h.api(http.MethodPost, keysPath, "", map[string]any{"public_key": hex.EncodeToString(b.PublicBytes())}); st != 200 || len(body["keys"].([]any)) != 2 {
		t.Fatalf("pair B: %d %v", st, body)
	}
	if st, _ := h.api(http.MethodPost, keysPath, "", map[string]any{"public_key": base64.StdEncoding.EncodeToString(b.PublicBytes())}); st != 200 {
		t.Errorf("re-pair B by base64: %d", st)
	}
	if st, _ := h.api(http.MethodPost, keysPath, "", map[string]any{"public_key": "nope"}); st != 400 {
		t.Errorf("bad key: %d", st)
	}
	if st, _ := h.api(http.MethodPost, "/sim/cars/NOPE/keys", "", map[string]any{"public_key": hex.EncodeToString(a.PublicBytes())}); st != 404 {
		t.Errorf("unknown car: %d", st)
	}
	_, body = h.api(http.MethodGet, keysPath, "", nil)
	keys := body["keys"].([]any)
	first := keys[0].(map[string]any)
	if len(keys) != 2 || first["public_key"] != hex.EncodeToString(a.PublicBytes()) || first["pem"] != publicKeyPEM(a.PublicBytes()) ||
		first["public_key_base64"] != base64.StdEncoding.EncodeToString(a.PublicBytes()) {
		t.Errorf("keys %v", body)
	}
	if vk := obj(t, body, "vehicle_public_key"); vk["public_key"] != hex.EncodeToString(h.sim.VehiclePublicKey(testVIN)) {
		t.Errorf("vehicle key %v", vk)
	}
	if got := h.sim.PairedKeys(testVIN); len(got) != 2 || hex.EncodeToString(got[1]) != hex.EncodeToString(b.PublicBytes()) {
		t.Errorf("PairedKeys %x", got)
	}

	// The paired key works with the library.
	v, _ := h.connectVehicle(testVIN, a, nil)
	startSession(t, v)

	// Unpair A by path, B by body.
	if st, _ := h.api(http.MethodDelete, keysPath+"/"+hex.EncodeToString(a.PublicBytes()), "", nil); st != 204 {
		t.Errorf("unpair A: %d", st)
	}
	if st, _ := h.api(http.MethodDelete, keysPath+"/"+hex.EncodeToString(a.PublicBytes()), "", nil); st != 404 {
		t.Errorf("unpair A twice: %d", st)
	}
	if st, _ := h.api(http.MethodDelete, keysPath, "", map[string]any{"public_key": publicKeyPEM(b.PublicBytes())}); st != 204 {
		t.Errorf("unpair B: %d", st)
	}
	if got := h.sim.PairedKeys(testVIN); len(got) != 0 {
		t.Errorf("still paired %x", got)
	}
	if h.sim.PairedKeys("NOPE") != nil {
		t.Error("PairedKeys of an unknown car")
	}

	// Keychain limit.
	for range MaxPairedKeys {
		if err := h.sim.PairKey(testVIN, newClientKey(t).PublicBytes()); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := h.api(http.MethodPost, keysPath, "", map[string]any{"public_key": hex.EncodeToString(a.PublicBytes())}); st != 409 {
		t.Errorf("keychain full: %d", st)
	}

	// Reboot, app key.
	h.sim.mu.Lock()
	before := h.sim.cars[testVIN].vcp.domains[domainInfotainment].epoch
	h.sim.mu.Unlock()
	if st, _ := h.api(http.MethodPost, "/sim/cars/"+testVIN+"/reboot", "", nil); st != 204 {
		t.Errorf("reboot: %d", st)
	}
	h.sim.mu.Lock()
	after := h.sim.cars[testVIN].vcp.domains[domainInfotainment].epoch
	h.sim.mu.Unlock()
	if before == after {
		t.Error("reboot kept the epoch")
	}
	if st, _ := h.api(http.MethodPost, "/sim/cars/NOPE/reboot", "", nil); st != 404 {
		t.Errorf("reboot unknown: %d", st)
	}
	if st, body := h.api(http.MethodPut, "/sim/app-key", "", map[string]any{"public_key": publicKeyPEM(a.PublicBytes())}); st != 200 || obj(t, body, "app_public_key")["public_key"] != hex.EncodeToString(a.PublicBytes()) {
		t.Errorf("app key: %d %v", st, body)
	}
	if st, _ := h.api(http.MethodPut, "/sim/app-key", "", map[string]any{"public_key": "x"}); st != 400 {
		t.Errorf("bad app key: %d", st)
	}
	if st, _ := h.api(http.MethodDelete, "/sim/app-key", "", nil); st != 204 || h.sim.AppPublicKey() != nil {
		t.Errorf("clear app key: %d", st)
	}
}

// The car's private key appears in no admin or Fleet answer.
func TestCarPrivateKeyNeverShown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.addSigningCar(testVIN, key)
	v, _ := h.connectVehicle(testVIN, key, nil)
	startSession(t, v)
	if err := v.ChangeChargeLimit(cmdCtx(t), 70); err != nil {
		t.Fatal(err)
	}
	h.sim.mu.Lock()
	secret := h.sim.cars[testVIN].vcp.key.Bytes()
	h.sim.mu.Unlock()
	forms := []string{hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)), base64.StdEncoding.EncodeToString(secret),
		base64.RawURLEncoding.EncodeToString(secret), "PRIVATE KEY"}
	tok := h.token()
	for _, p := range []struct{ path, token string }{
		{"/sim/cars", ""}, {"/sim/cars/" + testVIN, ""}, {"/sim/cars/" + testVIN + "/keys", ""}, {"/sim/counters", ""}, {"/sim/app-key", ""},
		{"/api/1/vehicles", tok}, {"/api/1/vehicles/" + testVIN, tok}, {"/api/1/vehicles/" + testVIN + "/vehicle_data", tok},
	} {
		_, data := h.apiRaw(http.MethodGet, p.path, p.token, nil)
		for _, f := range forms {
			if strings.Contains(string(data), f) {
				t.Errorf("%s shows the car's private key (%s)", p.path, f)
			}
		}
	}
	_, data := h.apiRaw(http.MethodPost, "/api/1/vehicles/fleet_status", tok, map[string]any{"vins": []string{testVIN}})
	if strings.Contains(string(data), hex.EncodeToString(secret)) {
		t.Error("fleet_status shows the private key")
	}
}

func TestSignedCountersInAdminAndReset(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newClientKey(t)
	h.addSigningCar(testVIN, key)
	v, _ := h.connectVehicle(testVIN, key, nil)
	startSession(t, v)
	if err := v.ChangeChargeLimit(cmdCtx(t), 70); err != nil {
		t.Fatal(err)
	}
	_, body := h.api(http.MethodGet, "/sim/counters", "", nil)
	total := obj(t, body, "signed", "total")
	per := obj(t, body, "signed", "by_vin", testVIN)
	if total["handshakes"] != 1.0 || total["commands"] != 1.0 || obj(t, total, "outcomes")[OutcomeVerified] != 2.0 ||
		obj(t, per, "command_outcomes")[OutcomeVerified] != 1.0 || obj(t, per, "handshake_outcomes")[OutcomeVerified] != 1.0 {
		t.Errorf("counters %v", body["signed"])
	}
	h.api(http.MethodPost, "/sim/counters/reset", "", nil)
	if sc := h.sim.SignedRequests(testVIN); sc.Handshakes != 0 || sc.Commands != 0 || len(sc.Outcomes) != 0 || sc.Outcomes == nil {
		t.Errorf("after reset %+v", sc)
	}
	if sc := h.sim.SignedRequests(""); sc.Handshakes != 0 || len(sc.Outcomes) != 0 {
		t.Errorf("total after reset %+v", sc)
	}
}
