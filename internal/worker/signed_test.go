package worker_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

// The worker's signed path end to end: the real library's signer, our
// connector and Fleet client, the simulated car verifying every message.

func TestCycleSignsAndReusesTheSessionAcrossRestarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	e.addCar(nil)
	a := e.cycle()
	added := int(a.body["commands"].(map[string]any)["added"].(float64))
	if a.status != 200 || added == 0 || a.body["commands"].(map[string]any)["path"] != "signed" {
		t.Fatalf("cycle: %d %s", a.status, a.raw)
	}
	c := e.sim.SignedRequests(testVIN)
	if c.Handshakes != 1 || c.Commands != added || c.Outcomes[fleetsim.OutcomeVerified] != added+1 {
		t.Fatalf("car saw %+v for %d schedules: want one handshake and one verified command each", c, added)
	}
	if ours(e.sim.Schedules(testVIN)) != added {
		t.Errorf("car has %d of our schedules, want %d", ours(e.sim.Schedules(testVIN)), added)
	}
	h := e.do("GET", "/health", "", nil)
	cmds, _ := h.body["commands"].(map[string]any)
	if cmds["mode"] != "sign" || cmds["signing"] != "ok" || cmds["public_key_sha256"] != e.key.Fingerprint {
		t.Errorf("health: %s", h.raw)
	}

	// A new instance (deploy, cold start) resumes the stored session: the
	// charged car's stale plan schedules go (the standing ones stay)
	// without a new handshake.
	planned := added - standing(e.sim.Schedules(testVIN))
	e.start()
	if err := e.sim.SetCar(testVIN, func(c *fleetsim.CarState) { c.BatteryLevel = 85 }); err != nil {
		t.Fatal(err)
	}
	a = e.cycle()
	if a.status != 200 || int(a.body["commands"].(map[string]any)["removed"].(float64)) != planned {
		t.Fatalf("after the restart: %d %s", a.status, a.raw)
	}
	if c2 := e.sim.SignedRequests(testVIN); c2.Handshakes != 1 || c2.Commands != added+planned {
		t.Errorf("after the restart the car saw %+v, want no new handshake", c2)
	}
	assertNoKeyMaterial(t, e, a.raw, h.raw)
}

func TestUnpairedKeyIsNamedAndNotRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	e.addCar(nil)
	if err := e.sim.UnpairKey(testVIN, e.key.Public); err != nil {
		t.Fatal(err)
	}
	a := e.cycle()
	if a.status != 409 || errCode(a) != "key_not_paired" || !strings.Contains(a.raw, "tesla.com/_ak/") || a.header.Get("Retry-After") != "" {
		t.Fatalf("unpaired: %d %s", a.status, a.raw)
	}
	if c := e.sim.SignedRequests(testVIN); c.Handshakes != 1 || c.Commands != 0 || c.Outcomes["KEY_NOT_ON_WHITELIST"]+c.Outcomes["UNKNOWN_KEY_ID"] != 1 {
		t.Errorf("car saw %+v: want one refused handshake and nothing else", c)
	}
	assertNoKeyMaterial(t, e, a.raw)
}

func TestMissingOrMalformedKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, pem, state, code, hint string
	}{
		{"missing", "", "key_missing", "key_missing", "fleetctl keygen"},
		{"malformed", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n", "key_invalid", "key_invalid", "PEM P-256"},
		{"not PEM", "secret-but-not-a-key", "key_invalid", "key_invalid", "PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvKey(t, nil, fleetsim.Options{}, []byte(tc.pem))
			e.seed(8 * time.Hour)
			e.addCar(nil)
			h := e.do("GET", "/health", "", nil)
			if cmds, _ := h.body["commands"].(map[string]any); h.status != 200 || cmds["signing"] != tc.state {
				t.Errorf("health: %d %s", h.status, h.raw)
			}
			a := e.cycle()
			if a.status != 409 || errCode(a) != tc.code || !strings.Contains(a.raw, tc.hint) {
				t.Errorf("cycle: %d %s", a.status, a.raw)
			}
			if c := e.sim.SignedRequests(testVIN); c.Handshakes+c.Commands != 0 {
				t.Errorf("sent %+v without a key", c)
			}
			if tc.pem != "" && strings.Contains(e.logBuf.String()+a.raw+h.raw, tc.pem[len(tc.pem)/2:]) {
				t.Error("the stored secret's text reached a log line or an answer")
			}
		})
	}
}

func TestLegacyCarGetsRESTAndRestModeNamesTheProblem(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	e.addCar(func(c *fleetsim.CarState) { c.CommandSigning = fleetsim.CommandSigningOff })
	a := e.cycle()
	if a.status != 200 || a.body["commands"].(map[string]any)["path"] != "rest" || ours(e.sim.Schedules(testVIN)) == 0 {
		t.Fatalf("legacy car: %d %s", a.status, a.raw)
	}
	if c := e.sim.SignedRequests(testVIN); c.Handshakes+c.Commands != 0 {
		t.Errorf("the legacy car got signed messages: %+v", c)
	}

	r := newEnv(t, map[string]string{"TESLA_COMMAND_MODE": "rest"}, fleetsim.Options{})
	r.seed(8 * time.Hour)
	r.addCar(nil)
	a = r.cycle()
	if a.status != 409 || errCode(a) != "signing_disabled" || !strings.Contains(a.raw, "TESLA_COMMAND_MODE") {
		t.Fatalf("rest mode, car needs signing: %d %s", a.status, a.raw)
	}
}

// assertNoKeyMaterial checks that neither the private key's PEM body nor
// any line of it reached the logs or the answers.
func assertNoKeyMaterial(t *testing.T, e *env, answers ...string) {
	t.Helper()
	all := e.logBuf.String() + strings.Join(answers, "\n")
	for _, line := range strings.Split(string(e.keyPEM), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(all, line) {
			t.Fatalf("a line of the private key's PEM appeared in a log or an answer")
		}
	}
}

func TestTwoCarsCyclesAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	e.addCar(nil)
	other := "5YJ3E7EB0KF000009"
	e.sim.AddCar(fleetsim.CarState{VIN: other, State: fleetsim.StateOnline, Latitude: homeLat, Longitude: homeLon,
		BatteryLevel: 35, ChargingState: fleetsim.ChargingStopped, ConnChargeCable: fleetsim.CableIEC, ChargeLimitSOC: 90})
	if err := e.sim.PairKey(other, e.key.Public); err != nil {
		t.Fatal(err)
	}
	e.sim.SetLatency(fleetsim.EndpointSignedCommand, 10*time.Millisecond)
	var wg sync.WaitGroup
	answers := map[string]answer{}
	var mu sync.Mutex
	for _, vin := range []string{testVIN, other} {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := e.do("POST", "/run-cycle", `{"vin":"`+vin+`"}`, nil)
				mu.Lock()
				defer mu.Unlock()
				if a.status == 200 {
					answers[vin] = a
				} else if errCode(a) != "busy" {
					t.Errorf("%s: %d %s", vin, a.status, a.raw)
				}
			}()
		}
	}
	wg.Wait()
	for _, vin := range []string{testVIN, other} {
		c := e.sim.SignedRequests(vin)
		if _, ok := answers[vin]; !ok || c.Handshakes != 1 || ours(e.sim.Schedules(vin)) != c.Commands || c.Commands == 0 {
			t.Errorf("%s: answered %v, car saw %+v and has %d of our schedules", vin, ok, c, ours(e.sim.Schedules(vin)))
		}
	}
}
