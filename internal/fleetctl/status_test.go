package fleetctl

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

func TestStatusHuman(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.seedLogin()
	h.clock.Advance(2 * time.Hour)
	h.seedLogin() // v2, two hours younger
	h.clock.Advance(108 * time.Minute)
	legacy := h.sim.Login().RefreshToken
	h.put("tesla-refresh-token", legacy)

	code, out, errOut := h.run("", "status")
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		"fleet-tokens: valid (version 2, written by login 1h48m ago)",
		"expires 2026-07-21T20:00:00Z (in 6h12m)",
		"scopes: openid offline_access user_data vehicle_device_data vehicle_location vehicle_cmds vehicle_charging_cmds",
		"region: EU",
		"subject: " + fleetsim.UserID,
		"versions: 2 active: v2 (1h48m old), v1 (3h48m old)",
		"legacy secret tesla-refresh-token: present (no stored version came from it",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	noLeak(t, h.storedTokens(), out, errOut)
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pair := h.seedLogin()
	h.clock.Advance(7*time.Hour + 45*time.Minute) // inside the 30 min refresh margin

	code, out, errOut := h.run("", "status", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	if !rep.OK || rep.State != "expiring" || rep.Version != "1" || rep.Region != "EU" || rep.Subject != fleetsim.UserID ||
		rep.ExpiresInSeconds == nil || *rep.ExpiresInSeconds != 15*60 || !rep.ExpiresAt.Equal(pair.ExpiresAt) ||
		len(rep.Scopes) != 7 || len(rep.MissingScopes) != 0 || rep.Source != "login" {
		t.Errorf("report = %+v", rep)
	}
	if len(rep.Versions) != 1 || rep.Versions[0].ID != "1" || rep.Versions[0].AgeSeconds == nil || *rep.Versions[0].AgeSeconds != int64((7*time.Hour+45*time.Minute)/time.Second) {
		t.Errorf("versions = %+v", rep.Versions)
	}
	if rep.Legacy.Present || rep.Legacy.Secret != "tesla-refresh-token" {
		t.Errorf("legacy = %+v, want absent", rep.Legacy)
	}
	noLeak(t, []string{pair.AccessToken, pair.RefreshToken}, out, errOut)
}

func TestStatusWithoutTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	code, out, errOut := h.run("", "status")
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d", code, ExitFailure)
	}
	if !strings.Contains(out, "fleet-tokens: missing: the secret has no version") || !strings.Contains(errOut, "fleetctl login") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, errOut)
	}

	// A corrupt latest is explained without quoting its payload.
	h.put("fleet-tokens", `{"access_token":"eyJsecret-looking","refresh_token":`)
	code, out, errOut = h.run("", "status", "--json")
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d", code, ExitFailure)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	if rep.OK || rep.State != "missing" || !strings.Contains(rep.Problem, "version 1") || !strings.Contains(rep.Problem, "corrupt") {
		t.Errorf("report = %+v", rep)
	}
	noLeak(t, []string{"eyJsecret-looking"}, out, errOut)
}
