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
	"sync"
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
	tr := h.transcript(t)
	tr.name(workerURL, "http://worker.test")
	// Only the Scheduler check needs Google: off Google it says "not checked".
	code, out, errOut := tr.run("", "doctor", "--worker-url", workerURL)
	if code != ExitOK {
		t.Errorf("exit %d, want %d", code, ExitOK)
	}
	tr.check("doctor_healthy")
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
		tr := h.transcript(t)
		if code, _, _ := tr.run("", "doctor"); code != ExitFailure {
			t.Errorf("exit %d, want %d", code, ExitFailure)
		}
		tr.check("doctor_wrong_region")
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
	tr := h.transcript(t)
	tr.note("TESLA_CLIENT_ID_SECRET=missing-client-id, nothing stored in it; no login yet")
	if code, _, _ := tr.run("", "doctor"); code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	tr.check("doctor_finds_what_to_fix")

	// An expired token is a warning, and the Fleet API is not asked with it.
	a, _, _, workerURL := onboarded(t)
	a.clock.Advance(9 * time.Hour)
	a.sim.ResetCounters()
	tr = a.transcript(t)
	tr.name(workerURL, "http://worker.test")
	tr.note("an onboarded app, 9 hours after the login")
	if code, _, _ := tr.run("", "doctor", "--worker-url", workerURL); code != ExitOK {
		t.Errorf("exit %d, want %d", code, ExitOK)
	}
	tr.check("doctor_expired_token")
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
	tr := h.transcript(t)
	tr.note("SECRETS_BACKEND=s3 TOKEN_REFRESH_BEFORE=9h")
	if code, _, _ := tr.run("", "doctor"); code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	tr.check("doctor_configuration")
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
	}{
		{"secret files readable by others", func(h *appHarness) { _ = os.Chmod(h.dir, 0o755) }},
		{"no key", func(h *appHarness) { _ = h.store.Destroy(context.Background(), "tesla-private-key", "1") }},
		{"served key is not ours", func(h *appHarness) { h.host.set(h.otherKey()) }},
		{"not registered", func(h *appHarness) { h.sim.UnregisterPartner(appDomain) }},
		{"car not paired", func(h *appHarness) { _ = h.sim.UnpairKey(signVIN, h.sim.PairedKeys(signVIN)[0]) }},
		{"worker set not to sign", func(h *appHarness) { h.vars["TESLA_COMMAND_MODE"] = "rest" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, _, _, workerURL := onboarded(t)
			tc.break_(h)
			tr := h.transcript(t)
			tr.name(workerURL, "http://worker.test")
			tr.note("an onboarded app, then: %s", tc.name)
			if code, _, _ := tr.run("", "doctor", "--worker-url", workerURL); code != ExitFailure {
				t.Errorf("exit %d, want %d", code, ExitFailure)
			}
			tr.check("doctor_broken/" + strings.ReplaceAll(tc.name, " ", "_"))
		})
	}
}

// The worker's /health: one that cannot sign, one that is down, and a
// private one (Cloud Run's invoker check), for which doctor asks gcloud for
// an identity token and never prints it.
func TestDoctorChecksTheWorker(t *testing.T) {
	t.Parallel()
	h, _, _, _ := onboarded(t)
	tr := h.transcript(t)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok","tokens":{"state":"valid"},"commands":{"mode":"sign","signing":"key_invalid"}}`)
	}))
	defer bad.Close()
	tr.name(bad.URL, "http://worker.test")
	tr.note("a worker that cannot sign")
	if code, _, _ := tr.run("", "doctor", "--worker-url", bad.URL); code != ExitFailure {
		t.Errorf("worker with a bad key: exit %d", code)
	}
	bad.Close()
	tr.note("the worker is down")
	if code, _, _ := tr.run("", "doctor", "--worker-url", bad.URL); code != ExitFailure {
		t.Errorf("worker down: exit %d", code)
	}

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
	tr.name(private.URL, "http://private-worker.test")
	tr.name(gcloud, "/fake/gcloud")
	tr.note("a private worker; gcloud prints an identity token")
	code, out, errOut := tr.run("", "doctor", "--worker-url", private.URL, "--gcloud", gcloud)
	if code != ExitOK || strings.Contains(out+errOut, idToken) {
		t.Errorf("private worker: exit %d, or the identity token was printed", code)
	}
	tr.check("doctor_worker")
}

// agents records the User-Agent of each request that passes.
type agents struct {
	mu   sync.Mutex
	seen map[string]string // "METHOD path" → User-Agent
}

func (a *agents) RoundTrip(r *http.Request) (*http.Response, error) {
	a.mu.Lock()
	a.seen[r.Method+" "+r.URL.Path] = r.Header.Get("User-Agent")
	a.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// Tesla asks API clients to say who they are: doctor's Fleet API requests
// (user and partner token alike) carry offpeak-fleetctl/<version>.
func TestFleetRequestsCarryTheUserAgent(t *testing.T) {
	t.Parallel()
	h, _, _, workerURL := onboarded(t)
	rec := &agents{seen: map[string]string{}}
	h.runner.HTTPClient = &http.Client{Transport: rec, Timeout: 10 * time.Second}
	h.runner.Version = "1.2.3"
	if code, out, _ := h.run("", "doctor", "--worker-url", workerURL); code != ExitOK {
		t.Fatalf("exit %d\n%s", code, out)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	fleetCalls := 0
	for req, ua := range rec.seen {
		if !strings.Contains(req, " /api/1/") {
			continue
		}
		fleetCalls++
		if ua != "offpeak-fleetctl/1.2.3" {
			t.Errorf("%s: User-Agent %q, want offpeak-fleetctl/1.2.3", req, ua)
		}
	}
	if fleetCalls < 3 {
		t.Errorf("Fleet API requests seen: %v", rec.seen)
	}
}
