package fleetctl

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// onboarded is a harness after every step of the Tesla side: a key stored
// and served at the domain, the domain registered, the car paired, a login;
// and a worker whose /health says it can sign.
func onboarded(t *testing.T) (*appHarness, tokens.Pair, []byte, string) {
	t.Helper()
	h := newAppHarness(t, fleetsim.Options{})
	k, private := h.storeKey()
	if err := h.sim.RegisterPartner(appDomain, k.Public); err != nil {
		t.Fatal(err)
	}
	h.put("tesla-domain", appDomain)
	if err := h.sim.PairKey(signVIN, k.Public); err != nil {
		t.Fatal(err)
	}
	pair := h.seedLogin()
	worker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok","tokens":{"state":"valid"},"commands":{"mode":"sign","signing":"ok"}}`)
	}))
	t.Cleanup(worker.Close)
	return h, pair, private, worker.URL
}

func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	h, pair, private, workerURL := onboarded(t)
	code, out, errOut := h.run("", "doctor", "--worker-url", workerURL)
	if code != ExitOK {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"ok    configuration:", "ok    secret files: only the owner", "ok    secret tesla-client-id: readable", "ok    secret tesla-client-secret: readable",
		"ok    secret fleet-tokens: readable (version 1, written by login)", "ok    secret tesla-refresh-token: absent (optional)",
		"ok    secret tesla-private-key: a P-256 key", "ok    access token: valid until 2026-07-21T18:00:00Z (in 8h)",
		"ok    fleet API: GET /api/1/users/region answered", "ok    domain: app.example.com (from secret tesla-domain)",
		"ok    public key: served at https://app.example.com/.well-known/appspecific/com.tesla.3p.public-key.pem and matches",
		"ok    registration: app.example.com registered", "ok    car " + signVIN + ": needs signed commands; our key is paired",
		"ok    car " + restVIN + ": takes plain REST commands", "ok    worker: healthy; tokens valid; commands sign, signing ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	// Only the Scheduler check needs Google: off Google it says "not checked".
	if strings.Contains(out, "FAIL") || strings.Count(out, "warn") != 1 || !strings.Contains(out, "warn  scheduler: not checked") {
		t.Errorf("unexpected findings:\n%s", out)
	}
	noPrivateKey(t, private, out, errOut)
	if n := h.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 0 {
		t.Errorf("doctor refreshed %d times; it must change nothing", n)
	}
	noLeak(t, []string{pair.AccessToken, pair.RefreshToken}, out, errOut)
}

// TestDoctorNamesAMissingLocationScope: without vehicle_location the cars
// send no position, so nothing is ever planned; the doctor fails and says
// which box to tick.
func TestDoctorNamesAMissingLocationScope(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.seedLoginWithScope("openid offline_access user_data vehicle_device_data vehicle_cmds vehicle_charging_cmds")
	code, out, _ := h.run("", "doctor")
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d:\n%s", code, ExitFailure, out)
	}
	for _, want := range []string{
		"warn  scopes: not granted: vehicle_location",
		"FAIL  location: without vehicle_location the cars report no position",
		"Fix: run fleetctl login and approve Vehicle Location",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}

func TestDoctorWrongRegion(t *testing.T) {
	t.Parallel()
	t.Run("421", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.seedLogin()
		h.sim.InjectFault(fleetsim.EndpointRegion, fleetsim.Fault{Status: 421, Times: 1})
		code, out, _ := h.run("", "doctor")
		if code != ExitFailure {
			t.Fatalf("exit %d, want %d:\n%s", code, ExitFailure, out)
		}
		if !strings.Contains(out, "FAIL  fleet API: HTTP 421") ||
			!strings.Contains(out, "Fix: wrong region: set TESLA_FLEET_API_URL to the account's region URL") {
			t.Errorf("stdout:\n%s", out)
		}
	})
	t.Run("other region's URL", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.seedLogin()
		h.sim.InjectFault(fleetsim.EndpointRegion, fleetsim.Fault{Status: 200, Times: 1,
			Body: `{"response":{"region":"na","fleet_api_base_url":"https://fleet-api.prd.na.vn.cloud.tesla.com"}}`})
		code, out, _ := h.run("", "doctor", "--json")
		if code != ExitFailure {
			t.Fatalf("exit %d, want %d:\n%s", code, ExitFailure, out)
		}
		var rep struct {
			OK     bool      `json:"ok"`
			Checks []finding `json:"checks"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
		}
		var fleetAPI finding
		for _, c := range rep.Checks {
			if c.Check == "fleet API" {
				fleetAPI = c
			}
		}
		if rep.OK || fleetAPI.Level != levelFail ||
			!strings.HasPrefix(fleetAPI.Fix, "set TESLA_FLEET_API_URL=https://fleet-api.prd.na.vn.cloud.tesla.com") {
			t.Errorf("report = %+v", rep)
		}
	})
}

func TestDoctorFindsWhatToFix(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.vars["TESLA_CLIENT_ID_SECRET"] = "missing-client-id"
	code, out, _ := h.run("", "doctor")
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d:\n%s", code, ExitFailure, out)
	}
	for _, want := range []string{
		"FAIL  secret missing-client-id: does not exist. Fix: store your Tesla app's client id in",
		"FAIL  secret fleet-tokens: has no version. Fix: run fleetctl login",
		"warn  fleet API: not checked",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}

	// An expired token is a warning, and the Fleet API is not asked with it.
	a, _, _, workerURL := onboarded(t)
	a.clock.Advance(9 * time.Hour)
	a.sim.ResetCounters()
	code, out, _ = a.run("", "doctor", "--worker-url", workerURL)
	if code != ExitOK || !strings.Contains(out, "warn  access token: expired 1h ago") || !strings.Contains(out, "warn  fleet API: not checked: the access token has expired") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	h = a.harness
	// Only the registration check's partner call (a partner token of its own).
	if n := h.sim.Counters(); len(n.Fleet) > 1 || n.Fleet[""]["other"] > 1 || n.Unauthorized != 0 {
		t.Errorf("fleet requests with an expired token: %+v, %d unauthorized", n.Fleet, n.Unauthorized)
	}
}

func TestDoctorReportsConfigurationProblems(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.vars["SECRETS_BACKEND"] = "s3"
	h.vars["TOKEN_REFRESH_BEFORE"] = "9h"
	code, out, _ := h.run("", "doctor")
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d:\n%s", code, ExitFailure, out)
	}
	for _, want := range []string{
		`FAIL  configuration: SECRETS_BACKEND (--backend): "s3" is not one of file, gcp`,
		"FAIL  configuration: TOKEN_REFRESH_BEFORE: 9h0m0s must be between 0 and 8h",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	// A flag overrides the environment.
	h.vars["TOKEN_REFRESH_BEFORE"] = "30m"
	if code, out, _ := h.run("", "doctor", "--backend", "file"); strings.Contains(out, "FAIL  configuration") {
		t.Errorf("--backend file did not override SECRETS_BACKEND: exit %d\n%s", code, out)
	}
}

// Each link of the chain broken in turn: doctor names it and its fix.
func TestDoctorFindsTheBrokenLink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		break_ func(h *appHarness)
		want   string
	}{
		{"secret files readable by others", func(h *appHarness) { _ = os.Chmod(h.dir, 0o755) }, "FAIL  secret files: readable by group or others"},
		{"no key", func(h *appHarness) { _ = h.store.Destroy(context.Background(), "tesla-private-key", "1") }, "FAIL  secret tesla-private-key: no command key"},
		{"served key is not ours", func(h *appHarness) { h.host.set(otherKeyPEM(t)) }, "FAIL  public key: https://app.example.com/"},
		{"not registered", func(h *appHarness) { h.sim.UnregisterPartner(appDomain) }, "FAIL  registration: app.example.com is not registered"},
		{"car not paired", func(h *appHarness) { _ = h.sim.UnpairKey(signVIN, h.sim.PairedKeys(signVIN)[0]) },
			"FAIL  car " + signVIN + ": needs signed commands and does not have this app's key. Fix: run fleetctl pair"},
		{"worker set not to sign", func(h *appHarness) { h.vars["TESLA_COMMAND_MODE"] = "rest" }, "FAIL  car " + signVIN + ": needs signed commands but TESLA_COMMAND_MODE=rest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, _, _, workerURL := onboarded(t)
			tc.break_(h)
			code, out, _ := h.run("", "doctor", "--worker-url", workerURL)
			if code != ExitFailure || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d and %q:\n%s", code, ExitFailure, tc.want, out)
			}
		})
	}
	// A worker that cannot sign, and one that is down.
	h, _, _, _ := onboarded(t)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok","tokens":{"state":"valid"},"commands":{"mode":"sign","signing":"key_invalid"}}`)
	}))
	defer bad.Close()
	if code, out, _ := h.run("", "doctor", "--worker-url", bad.URL); code != ExitFailure || !strings.Contains(out, "FAIL  worker: healthy; tokens valid; commands sign, signing key_invalid") {
		t.Errorf("worker with a bad key: exit %d:\n%s", code, out)
	}
	bad.Close()
	if code, out, _ := h.run("", "doctor", "--worker-url", bad.URL); code != ExitFailure || !strings.Contains(out, "FAIL  worker: unreachable") {
		t.Errorf("worker down: exit %d:\n%s", code, out)
	}

	// A private worker (Cloud Run's invoker check): doctor asks gcloud for
	// an identity token and never prints it.
	const idToken = "eyJ.fake-identity-token.sig"
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+idToken {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ok","tokens":{"state":"valid"},"commands":{"mode":"sign","signing":"ok"}}`)
	}))
	defer private.Close()
	gcloud := filepath.Join(t.TempDir(), "gcloud")
	if err := os.WriteFile(gcloud, []byte("#!/bin/sh\necho "+idToken+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := h.run("", "doctor", "--worker-url", private.URL, "--gcloud", gcloud)
	if !strings.Contains(out, "ok    worker: healthy") || strings.Contains(out+errOut, idToken) {
		t.Errorf("private worker: exit %d:\n%s", code, out)
	}
}
