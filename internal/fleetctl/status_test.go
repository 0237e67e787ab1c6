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

	tr := h.transcript(t)
	tr.note("two logins 2 h apart, the second 1h48m ago; a legacy token stored")
	code, out, errOut := tr.run("", "status")
	if code != ExitOK {
		t.Errorf("exit %d, want %d", code, ExitOK)
	}
	tr.check("status")
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
	tr := h.transcript(t)
	if code, _, _ := tr.run("", "status"); code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	tr.check("status_without_tokens")

	// A corrupt latest is explained without quoting its payload.
	h.put("fleet-tokens", `{"access_token":"eyJsecret-looking","refresh_token":`)
	code, out, errOut := h.run("", "status", "--json")
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
