package fleetctl

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

// From an unregistered app to a registered one: the simulator answers the
// user's calls 412 before and serves them after; register is idempotent
// and stores the domain for pair.
func TestRegisterEndToEnd(t *testing.T) {
	t.Parallel()
	h := newAppHarness(t, fleetsim.Options{RequireRegistration: true})
	key, private := h.storeKey()
	h.seedLogin()
	tr := h.transcript(t)
	tr.note("a key stored and served, a login; the app is not registered yet")

	code, stdout, stderr := tr.run("", "pair", "--domain", appDomain, "--vin", signVIN)
	if code != ExitFailure {
		t.Fatalf("before registering: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = tr.run("", "register", "--domain", appDomain)
	if code != ExitOK {
		t.Fatalf("register: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if d, ok := h.sim.Registered(); !ok || d != appDomain || !bytes.Equal(h.sim.AppPublicKey(), key.Public) {
		t.Fatalf("simulator: registered %v %q", ok, d)
	}
	if got := h.latestValue("tesla-domain"); got != appDomain {
		t.Errorf("tesla-domain = %q", got)
	}
	noPrivateKey(t, private, stdout, stderr)

	// Again: still fine, the domain secret is not written twice.
	code, stdout, stderr = h.run("", "register", "--json")
	if code != ExitOK {
		t.Fatalf("again: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var rep registerReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if !rep.OK || rep.Domain != appDomain || rep.DomainStored || len(rep.Regions) != 1 || !rep.Regions[0].OK || rep.Fingerprint != fingerprint(key.Public) {
		t.Errorf("report %+v", rep)
	}
	if vs, _ := h.store.Versions(t.Context(), "tesla-domain"); len(vs) != 1 {
		t.Errorf("tesla-domain has %d versions", len(vs))
	}

	// The user's calls work now; the car gets the key through the link.
	if _, err := h.sim.PairDomain(t.Context(), appDomain, signVIN); err != nil {
		t.Fatal(err)
	}
	tr.note("registered; the owner approved the link for %s", signVIN)
	if code, stdout, stderr := tr.run("", "pair", "--vin", signVIN, "--no-qr"); code != ExitOK {
		t.Fatalf("after registering: exit %d\n%s\n%s", code, stdout, stderr)
	}
	tr.check("register")
}

// The domain serves a key that is not ours: nothing is registered.
func TestRegisterRefusesAServedKeyThatIsNotOurs(t *testing.T) {
	t.Parallel()
	h := newAppHarness(t, fleetsim.Options{})
	_, private := h.storeKey()
	h.host.set(h.otherKey())
	tr := h.transcript(t)
	tr.note("the domain serves another key")
	code, stdout, stderr := tr.run("", "register", "--domain", appDomain)
	if code != ExitFailure {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	tr.check("register_served_key_not_ours")
	if _, ok := h.sim.Registered(); ok {
		t.Error("registered anyway")
	}
	noPrivateKey(t, private, stdout, stderr)
}

// Tesla fetched another key than fleetctl saw (a cache, a second host):
// the check after registering catches it.
func TestRegisterNoticesTeslaHoldsAnotherKey(t *testing.T) {
	t.Parallel()
	h := newAppHarness(t, fleetsim.Options{})
	key, _ := h.storeKey()
	ours, theirs := key.PublicPEM(), h.otherKey()
	h.host.setServe(func(n int, w http.ResponseWriter) {
		if n == 1 { // fleetctl's own check
			_, _ = w.Write(ours)
			return
		}
		_, _ = w.Write(theirs)
	})
	tr := h.transcript(t)
	tr.note("the domain serves our key to fleetctl, another key to Tesla")
	if code, _, _ := tr.run("", "register", "--domain", appDomain); code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	tr.check("register_tesla_holds_another_key")
}

func TestRegisterFailuresInOperatorWords(t *testing.T) {
	t.Parallel()
	disabled := `{"response":null,"error":"account disabled: EXCEEDED_LIMIT","error_description":""}`
	for _, tc := range []struct {
		name  string
		setup func(h *appHarness)
		args  []string
		code  int
	}{
		{name: "wrong client secret", setup: func(h *appHarness) { h.put("tesla-client-secret", "not-the-secret") },
			code: ExitFailure},
		{name: "no client id", setup: func(h *appHarness) { _ = h.store.Destroy(t.Context(), "tesla-client-id", "1") },
			code: ExitFailure},
		{name: "domain with scheme", args: []string{"--domain", "https://app.example.com/"},
			code: ExitUsage},
		{name: "no domain", args: []string{}, code: ExitUsage},
		{name: "no key", setup: func(h *appHarness) { _ = h.store.Destroy(t.Context(), "tesla-private-key", "1") },
			code: ExitFailure},
		{name: "key not served", setup: func(h *appHarness) { h.host.set(nil) },
			code: ExitFailure},
		{name: "Tesla cannot fetch the key", setup: func(h *appHarness) { h.host.setServe(failAfterFirst(h)) },
			code: ExitFailure},
		{name: "domain taken", setup: func(h *appHarness) { _ = h.sim.RegisterOtherApp("other-app", appDomain, h.otherKey()) },
			code: ExitFailure},
		{name: "key taken", setup: func(h *appHarness) {
			_ = h.sim.RegisterOtherApp("other-app", "other.example.com", h.host.pem)
		}, code: ExitFailure},
		{name: "account disabled", setup: func(h *appHarness) {
			h.sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: http.StatusForbidden, Body: disabled})
		}, code: ExitFailure},
		{name: "wrong region", setup: func(h *appHarness) {
			h.sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: http.StatusMisdirectedRequest,
				Body: `{"response":null,"error":"user out of region, use base URL: https://fleet-api.prd.na.vn.cloud.tesla.com","error_description":""}`})
		}, code: ExitFailure},
		{name: "partner token rejected", setup: func(h *appHarness) {
			h.sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: http.StatusUnauthorized})
		}, code: ExitFailure},
		{name: "412", setup: func(h *appHarness) {
			h.sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: http.StatusPreconditionFailed})
		}, code: ExitFailure},
		{name: "Tesla down", setup: func(h *appHarness) {
			h.sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: http.StatusServiceUnavailable})
		}, code: ExitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newAppHarness(t, fleetsim.Options{})
			_, private := h.storeKey()
			if tc.setup != nil {
				tc.setup(h)
			}
			args := tc.args
			if args == nil {
				args = []string{"--domain", appDomain}
			}
			tr := h.transcript(t)
			tr.note("%s", tc.name)
			code, stdout, stderr := tr.run("", append([]string{"register"}, args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			tr.check("register_fails/" + strings.ReplaceAll(tc.name, " ", "_"))
			noPrivateKey(t, private, stdout, stderr)
			if tc.code != ExitOK {
				if d, ok := h.sim.Registered(); ok && tc.name != "412" && tc.name != "Tesla down" {
					t.Errorf("registered %s", d)
				}
			}
		})
	}
}

// failAfterFirst serves our key to fleetctl's check (the first request) and
// then 404, so only Tesla's fetch fails.
func failAfterFirst(h *appHarness) func(int, http.ResponseWriter) {
	ours := h.host.pem
	return func(n int, w http.ResponseWriter) {
		if n == 1 {
			_, _ = w.Write(ours)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}
}

// --all-regions registers in every configured region: here a second
// simulator plays North America, and a third URL no token can be had for.
func TestRegisterAllRegions(t *testing.T) {
	t.Parallel()
	h := newAppHarness(t, fleetsim.Options{Region: "EU"})
	key, _ := h.storeKey()
	na := fleetsim.New(fleetsim.Options{Region: "NA", Clock: h.clock, DomainBaseURL: func(string) string { return h.host.srv.URL }})
	naURL, err := na.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = na.Close() })
	h.sim.AllowAudience(naURL) // one token endpoint serves every region
	h.runner.PartnerRegions = []string{naURL, h.url + "/"}
	tr := h.transcript(t)
	tr.name(naURL, "http://fleet-api-na.sim")
	tr.note("regions: TESLA_FLEET_API_URL (EU), %s and %s/", naURL, h.url)

	code, stdout, stderr := tr.run("", "register", "--domain", appDomain, "--all-regions")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, s := range []*fleetsim.Sim{h.sim, na} {
		if d, ok := s.Registered(); !ok || d != appDomain || !bytes.Equal(s.AppPublicKey(), key.Public) {
			t.Errorf("a region is not registered: %v %q", ok, d)
		}
	}

	// A region the token endpoint issues no token for fails alone.
	h.runner.PartnerRegions = []string{naURL, "https://fleet-api.prd.cn.vn.cloud.tesla.cn"}
	tr.note("regions: TESLA_FLEET_API_URL, %s and China, for which the token endpoint issues no token", naURL)
	if code, _, _ = tr.run("", "register", "--domain", appDomain, "--all-regions"); code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	tr.check("register_all_regions")
}
