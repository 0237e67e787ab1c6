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

	code, stdout, stderr := h.run("", "pair", "--domain", appDomain, "--vin", signVIN)
	if code != ExitFailure || !strings.Contains(stderr, "412") || !strings.Contains(stderr, "fleetctl register --domain") {
		t.Fatalf("before registering: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = h.run("", "register", "--domain", appDomain)
	if code != ExitOK {
		t.Fatalf("register: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	fp := fingerprint(key.Public)
	for _, want := range []string{
		"https://" + appDomain + "/.well-known/appspecific/com.tesla.3p.public-key.pem serves our public key (fingerprint " + fp + ")",
		"ok    " + h.url + ": " + appDomain + " registered; Tesla holds our key (fingerprint " + fp + ")",
		"stored the domain in tesla-domain",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
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
	if !rep.OK || rep.Domain != appDomain || rep.DomainStored || len(rep.Regions) != 1 || !rep.Regions[0].OK || rep.Fingerprint != fp {
		t.Errorf("report %+v", rep)
	}
	if vs, _ := h.store.Versions(t.Context(), "tesla-domain"); len(vs) != 1 {
		t.Errorf("tesla-domain has %d versions", len(vs))
	}

	// The user's calls work now; the car gets the key through the link.
	if _, err := h.sim.PairDomain(t.Context(), appDomain, signVIN); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := h.run("", "pair", "--vin", signVIN, "--no-qr"); code != ExitOK {
		t.Fatalf("after registering: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// The domain serves a key that is not ours: nothing is registered.
func TestRegisterRefusesAServedKeyThatIsNotOurs(t *testing.T) {
	t.Parallel()
	h := newAppHarness(t, fleetsim.Options{})
	key, private := h.storeKey()
	h.host.set(otherKeyPEM(t))
	code, stdout, stderr := h.run("", "register", "--domain", appDomain)
	if code != ExitFailure {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"serves a public key (fingerprint", "that is not the public half of tesla-private-key (fingerprint " + fingerprint(key.Public), "nothing was registered"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
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
	ours, theirs := key.PublicPEM(), otherKeyPEM(t)
	h.host.setServe(func(n int, w http.ResponseWriter) {
		if n == 1 { // fleetctl's own check
			_, _ = w.Write(ours)
			return
		}
		_, _ = w.Write(theirs)
	})
	code, stdout, stderr := h.run("", "register", "--domain", appDomain)
	if code != ExitFailure || !strings.Contains(stdout, "FAIL  "+h.url+": Tesla holds another key for "+appDomain) ||
		!strings.Contains(stdout, "serve the public half of tesla-private-key") || !strings.Contains(stderr, "failed in 1 of 1 regions") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestRegisterFailuresInOperatorWords(t *testing.T) {
	t.Parallel()
	disabled := `{"response":null,"error":"account disabled: EXCEEDED_LIMIT","error_description":""}`
	for _, tc := range []struct {
		name  string
		setup func(h *appHarness)
		args  []string
		code  int
		want  []string
	}{
		{name: "wrong client secret", setup: func(h *appHarness) { h.put("tesla-client-secret", "not-the-secret") },
			code: ExitFailure, want: []string{"rejected the app's client id or secret", "tesla-client-secret"}},
		{name: "no client id", setup: func(h *appHarness) { _ = h.store.Destroy(t.Context(), "tesla-client-id", "1") },
			code: ExitFailure, want: []string{"tesla-client-id is missing or empty"}},
		{name: "domain with scheme", args: []string{"--domain", "https://app.example.com/"},
			code: ExitUsage, want: []string{`give "app.example.com"`}},
		{name: "no domain", args: []string{}, code: ExitUsage, want: []string{"give --domain", "tesla-domain holds none"}},
		{name: "no key", setup: func(h *appHarness) { _ = h.store.Destroy(t.Context(), "tesla-private-key", "1") },
			code: ExitFailure, want: []string{"run fleetctl keygen"}},
		{name: "key not served", setup: func(h *appHarness) { h.host.set(nil) },
			code: ExitFailure, want: []string{"answers HTTP 404, not 200", "serve the public key there first"}},
		{name: "Tesla cannot fetch the key", setup: func(h *appHarness) { h.host.setServe(failAfterFirst(h)) },
			code: ExitFailure, want: []string{"Tesla could not fetch the key from https://app.example.com/.well-known/appspecific/com.tesla.3p.public-key.pem",
				"Public key download failed", "without a redirect"}},
		{name: "domain taken", setup: func(h *appHarness) { _ = h.sim.RegisterOtherApp("other-app", appDomain, otherKeyPEM(t)) },
			code: ExitFailure, want: []string{"app.example.com is registered by another Tesla app", "Domain has already been taken", "use that app's client id and secret"}},
		{name: "key taken", setup: func(h *appHarness) {
			_ = h.sim.RegisterOtherApp("other-app", "other.example.com", h.host.pem)
		}, code: ExitFailure, want: []string{"this public key is registered by another Tesla app", "fleetctl keygen --force"}},
		{name: "account disabled", setup: func(h *appHarness) {
			h.sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: http.StatusForbidden, Body: disabled})
		}, code: ExitFailure, want: []string{"Tesla has disabled the developer account", "EXCEEDED_LIMIT", "add a payment method"}},
		{name: "wrong region", setup: func(h *appHarness) {
			h.sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: http.StatusMisdirectedRequest,
				Body: `{"response":null,"error":"user out of region, use base URL: https://fleet-api.prd.na.vn.cloud.tesla.com","error_description":""}`})
		}, code: ExitFailure, want: []string{"answers 421", "set TESLA_FLEET_API_URL"}},
		{name: "partner token rejected", setup: func(h *appHarness) {
			h.sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: http.StatusUnauthorized})
		}, code: ExitFailure, want: []string{"Tesla rejected the partner token (401)"}},
		{name: "412", setup: func(h *appHarness) {
			h.sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: http.StatusPreconditionFailed})
		}, code: ExitFailure, want: []string{"not registered in " + "http://127.0.0.1", "(412)"}},
		{name: "Tesla down", setup: func(h *appHarness) {
			h.sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: http.StatusServiceUnavailable})
		}, code: ExitFailure, want: []string{"Tesla did not answer", "try again later"}},
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
			code, stdout, stderr := h.run("", append([]string{"register"}, args...)...)
			all := stdout + stderr
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
				}
			}
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

	code, stdout, stderr := h.run("", "register", "--domain", appDomain, "--all-regions")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if strings.Count(stdout, "ok    ") != 2 || !strings.Contains(stdout, "ok    "+naURL+": ") || !strings.Contains(stdout, "ok    "+h.url+": ") {
		t.Errorf("stdout:\n%s", stdout)
	}
	for _, s := range []*fleetsim.Sim{h.sim, na} {
		if d, ok := s.Registered(); !ok || d != appDomain || !bytes.Equal(s.AppPublicKey(), key.Public) {
			t.Errorf("a region is not registered: %v %q", ok, d)
		}
	}

	// A region the token endpoint issues no token for fails alone.
	h.runner.PartnerRegions = []string{naURL, "https://fleet-api.prd.cn.vn.cloud.tesla.cn"}
	code, stdout, stderr = h.run("", "register", "--domain", appDomain, "--all-regions")
	if code != ExitFailure || strings.Count(stdout, "ok    ") != 2 ||
		!strings.Contains(stdout, "FAIL  https://fleet-api.prd.cn.vn.cloud.tesla.cn: Tesla refused a partner token") ||
		!strings.Contains(stdout, "invalid_audience") || !strings.Contains(stderr, "failed in 1 of 3 regions") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
