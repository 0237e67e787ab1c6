package fleetctl

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pair := h.seedLogin()
	code, out, errOut := h.run("", "doctor")
	if code != ExitOK {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"ok    configuration:", "ok    secret tesla-client-id: readable", "ok    secret tesla-client-secret: readable",
		"ok    secret fleet-tokens: readable (version 1, written by login)", "ok    secret tesla-refresh-token: absent (optional)",
		"ok    access token: valid until 2026-07-21T18:00:00Z (in 8h)", "ok    fleet API: GET /api/1/users/region answered",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FAIL") || strings.Contains(out, "warn") {
		t.Errorf("unexpected findings:\n%s", out)
	}
	if n := h.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 0 {
		t.Errorf("doctor refreshed %d times; it must change nothing", n)
	}
	noLeak(t, []string{pair.AccessToken, pair.RefreshToken}, out, errOut)
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
		last := rep.Checks[len(rep.Checks)-1]
		if rep.OK || last.Check != "fleet API" || last.Level != levelFail ||
			!strings.HasPrefix(last.Fix, "set TESLA_FLEET_API_URL=https://fleet-api.prd.na.vn.cloud.tesla.com") {
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
	h = newHarness(t)
	h.seedLogin()
	h.clock.Advance(9 * time.Hour)
	code, out, _ = h.run("", "doctor")
	if code != ExitOK || !strings.Contains(out, "warn  access token: expired 1h ago") || !strings.Contains(out, "warn  fleet API: not checked: the access token has expired") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if n := h.sim.Counters(); len(n.Fleet) != 0 || n.Unauthorized != 0 {
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
