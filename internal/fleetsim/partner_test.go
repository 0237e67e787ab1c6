package fleetsim

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

const testDomain = "app.example.com"

// newPoint makes a P-256 public key and returns its point and PEM.
func newPoint(t *testing.T) ([]byte, string) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := k.PublicKey().Bytes()
	return p, publicKeyPEM(p)
}

// keyServer serves a body at PublicKeyPath for every domain mapped to it.
type keyServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	body   string
	header map[string]string
	hits   int
}

func newKeyServer(t *testing.T, body string) *keyServer {
	t.Helper()
	ks := &keyServer{status: http.StatusOK, body: body}
	ks.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.mu.Lock()
		defer ks.mu.Unlock()
		ks.hits++
		if r.URL.Path != PublicKeyPath {
			http.NotFound(w, r)
			return
		}
		for k, v := range ks.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.WriteHeader(ks.status)
		_, _ = w.Write([]byte(ks.body))
	}))
	t.Cleanup(ks.srv.Close)
	return ks
}

func (ks *keyServer) set(status int, body string, header map[string]string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.status, ks.body, ks.header = status, body, header
}

// partnerHarness is a simulator whose domains' keys come from ks.
func newPartnerHarness(t *testing.T, opts Options, ks *keyServer) *harness {
	t.Helper()
	opts.DomainBaseURL = func(string) string { return ks.srv.URL }
	return newHarness(t, opts)
}

func partnerForm(audience string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
		"audience": {audience}, "scope": {"openid vehicle_device_data vehicle_cmds vehicle_charging_cmds"}}
}

// partnerToken gets a partner token for the harness's own region.
func (h *harness) partnerToken() string {
	h.t.Helper()
	status, body := h.postForm("/oauth2/v3/token", partnerForm(h.url))
	if status != http.StatusOK {
		h.t.Fatalf("partner token: %d %v", status, body)
	}
	return body["access_token"].(string)
}

func TestPartnerTokenGrant(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	for _, tc := range []struct {
		name   string
		edit   func(url.Values)
		status int
		code   string
	}{
		{"ok", func(url.Values) {}, http.StatusOK, ""},
		{"wrong secret", func(f url.Values) { f.Set("client_secret", "nope") }, http.StatusUnauthorized, "invalid_client"},
		{"no secret", func(f url.Values) { f.Del("client_secret") }, http.StatusUnauthorized, "invalid_client"},
		{"wrong client", func(f url.Values) { f.Set("client_id", "other") }, http.StatusUnauthorized, "invalid_client"},
		{"no audience", func(f url.Values) { f.Del("audience") }, http.StatusBadRequest, "invalid_audience"},
		{"other audience", func(f url.Values) { f.Set("audience", "https://fleet-api.prd.na.vn.cloud.tesla.com") }, http.StatusBadRequest, "invalid_audience"},
	} {
		f := partnerForm(h.url)
		tc.edit(f)
		status, body := h.postForm("/oauth2/v3/token", f)
		if status != tc.status || (tc.code != "" && body["error"] != tc.code) {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, body, tc.status, tc.code)
			continue
		}
		if tc.status != http.StatusOK {
			continue
		}
		if _, has := body["refresh_token"]; has {
			t.Errorf("a partner token answer carries a refresh token: %v", body)
		}
		if body["expires_in"] != float64(8*3600) || body["token_type"] != "Bearer" || len(strings.Split(body["access_token"].(string), ".")) != 3 {
			t.Errorf("answer %v", body)
		}
	}
	if n := h.sim.TokenExchanges(OutcomePartnerToken); n != 1 {
		t.Errorf("partner_token outcomes = %d, want 1", n)
	}
}

// A partner token works only on partner endpoints and a user token only on
// the others.
func TestPartnerAndUserTokensDoNotMix(t *testing.T) {
	t.Parallel()
	ks := newKeyServer(t, "")
	h := newPartnerHarness(t, Options{}, ks)
	h.addCar(testVIN)
	partner, user := h.partnerToken(), h.token()

	status, body := h.api(http.MethodGet, "/api/1/vehicles", partner, nil)
	if status != http.StatusUnauthorized || body["error"] != "upstream internal error" {
		t.Errorf("partner token on /vehicles: %d %v", status, body)
	}
	status, body = h.api(http.MethodGet, "/api/1/partner_accounts/public_key?domain="+testDomain, user, nil)
	if status != http.StatusForbidden || body["error"] != "Expected partner account" {
		t.Errorf("user token on public_key: %d %v", status, body)
	}
	status, _ = h.api(http.MethodPost, "/api/1/partner_accounts", "", map[string]string{"domain": testDomain})
	if status != http.StatusUnauthorized {
		t.Errorf("no token on partner_accounts: %d", status)
	}
	// Another app's simulator signs with other credentials.
	other := newHarness(t, Options{ClientSecret: "another-secret"})
	st, tb := other.postForm("/oauth2/v3/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID},
		"client_secret": {"another-secret"}, "audience": {other.url}})
	if st != http.StatusOK {
		t.Fatalf("other partner token: %d %v", st, tb)
	}
	if status, body := h.api(http.MethodGet, "/api/1/partner_accounts/public_key?domain="+testDomain, tb["access_token"].(string), nil); status != http.StatusUnauthorized {
		t.Errorf("a token of other credentials: %d %v", status, body)
	}
	// An expired partner token.
	h.clk.Advance(DefaultPartnerTokenTTL)
	if status, _ := h.api(http.MethodGet, "/api/1/partner_accounts/public_key?domain="+testDomain, partner, nil); status != http.StatusUnauthorized {
		t.Errorf("expired partner token: %d", status)
	}
}

// Two simulators play two regions of one app: the token endpoint of one
// issues a token for the other's audience, which only the other accepts.
func TestPartnerTokenForAnotherRegion(t *testing.T) {
	t.Parallel()
	p, pemText := newPoint(t)
	ks := newKeyServer(t, pemText)
	eu := newPartnerHarness(t, Options{Region: "EU"}, ks)
	na := newPartnerHarness(t, Options{Region: "NA", Clock: eu.clk}, ks)
	eu.sim.AllowAudience(na.url)

	status, body := eu.postForm("/oauth2/v3/token", partnerForm(na.url))
	if status != http.StatusOK {
		t.Fatalf("token for NA at EU's endpoint: %d %v", status, body)
	}
	tok := body["access_token"].(string)
	if status, body := na.api(http.MethodPost, "/api/1/partner_accounts", tok, map[string]string{"domain": testDomain}); status != http.StatusOK {
		t.Fatalf("register in NA: %d %v", status, body)
	}
	if status, body := eu.api(http.MethodPost, "/api/1/partner_accounts", tok, map[string]string{"domain": testDomain}); status != http.StatusUnauthorized {
		t.Errorf("NA's token in EU: %d %v", status, body)
	}
	if _, ok := eu.sim.Registered(); ok {
		t.Error("EU registered too")
	}
	if d, ok := na.sim.Registered(); !ok || d != testDomain || hex.EncodeToString(na.sim.AppPublicKey()) != hex.EncodeToString(p) {
		t.Errorf("NA: %q %v", d, ok)
	}
}

func TestRegisterPartner(t *testing.T) {
	t.Parallel()
	p1, pem1 := newPoint(t)
	ks := newKeyServer(t, pem1)
	h := newPartnerHarness(t, Options{}, ks)
	tok := h.partnerToken()

	status, body := h.api(http.MethodPost, "/api/1/partner_accounts", tok, map[string]string{"domain": testDomain})
	if status != http.StatusOK {
		t.Fatalf("register: %d %v", status, body)
	}
	resp := obj(t, body, "response")
	if resp["client_id"] != DefaultClientID || resp["domain"] != testDomain || resp["public_key"] != hex.EncodeToString(p1) {
		t.Errorf("registration %v", resp)
	}
	if got := h.sim.AppPublicKey(); hex.EncodeToString(got) != hex.EncodeToString(p1) {
		t.Errorf("app key %x, want the served key", got)
	}
	status, body = h.api(http.MethodGet, "/api/1/partner_accounts/public_key?domain="+testDomain, tok, nil)
	if status != http.StatusOK || obj(t, body, "response")["public_key"] != hex.EncodeToString(p1) {
		t.Errorf("public_key: %d %v", status, body)
	}

	// Again with the same key: the same registration.
	h.clk.Advance(3600e9)
	_, again := h.api(http.MethodPost, "/api/1/partner_accounts", tok, map[string]string{"domain": testDomain})
	if a := obj(t, again, "response"); a["created_at"] != resp["created_at"] || a["updated_at"] != resp["updated_at"] {
		t.Errorf("repeat changed the registration: %v vs %v", a, resp)
	}
	// A new key served: the app's own registration takes it.
	p2, pem2 := newPoint(t)
	ks.set(http.StatusOK, pem2, nil)
	status, body = h.api(http.MethodPost, "/api/1/partner_accounts", tok, map[string]string{"domain": testDomain})
	if status != http.StatusOK || obj(t, body, "response")["public_key"] != hex.EncodeToString(p2) || obj(t, body, "response")["updated_at"] == resp["updated_at"] {
		t.Errorf("new key: %d %v", status, body)
	}
	if got := h.sim.AppPublicKey(); hex.EncodeToString(got) != hex.EncodeToString(p2) {
		t.Errorf("app key not replaced")
	}
	// Unregistered domains answer 404 with Tesla's words.
	status, body = h.api(http.MethodGet, "/api/1/partner_accounts/public_key?domain=other.example.com", tok, nil)
	if status != http.StatusNotFound || body["error"] != "This account does not have access to other.example.com" {
		t.Errorf("unregistered: %d %v", status, body)
	}
}

func TestRegisterPartnerRefusals(t *testing.T) {
	t.Parallel()
	_, pemText := newPoint(t)
	otherPoint, otherPEM := newPoint(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	pem384 := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	for _, tc := range []struct {
		name   string
		domain string
		served func(*keyServer)
		setup  func(*Sim)
		status int
		err    string // expected error text (prefix)
	}{
		{name: "scheme", domain: "https://app.example.com", status: 400, err: "Invalid domain: https://app.example.com"},
		{name: "path", domain: "app.example.com/x", status: 400, err: "Invalid domain: app.example.com/x"},
		{name: "upper case", domain: "App.Example.com", status: 400, err: "Invalid domain: App.Example.com"},
		{name: "port", domain: "app.example.com:8443", status: 400, err: "Invalid domain: app.example.com:8443"},
		{name: "empty", domain: "", status: 400, err: "Invalid domain: "},
		{name: "not found", domain: testDomain, served: func(ks *keyServer) { ks.set(404, "nope", nil) }, status: 424,
			err: "Public key download failed for https://app.example.com/.well-known/appspecific/com.tesla.3p.public-key.pem, error: unexpected status 404"},
		{name: "redirect", domain: testDomain, served: func(ks *keyServer) {
			ks.set(302, "", map[string]string{"Location": "https://elsewhere.example.com/k.pem"})
		},
			status: 424, err: "Public key download failed for https://app.example.com/.well-known/appspecific/com.tesla.3p.public-key.pem, error: redirect"},
		{name: "too large", domain: testDomain, served: func(ks *keyServer) { ks.set(200, strings.Repeat(pemText, 8), nil) }, status: 424,
			err: "Public key download failed for https://app.example.com/.well-known/appspecific/com.tesla.3p.public-key.pem, error: too large"},
		{name: "not PEM", domain: testDomain, served: func(ks *keyServer) { ks.set(200, hex.EncodeToString(otherPoint), nil) }, status: 424, err: "Public key download failed"},
		{name: "P-384", domain: testDomain, served: func(ks *keyServer) { ks.set(200, pem384, nil) }, status: 424, err: "Public key download failed"},
		{name: "domain taken", domain: testDomain, setup: func(s *Sim) { _ = s.RegisterOtherApp("other-app", testDomain, []byte(otherPEM)) },
			status: 422, err: "Validation failed: Domain has already been taken"},
		{name: "key taken", domain: testDomain, setup: func(s *Sim) { _ = s.RegisterOtherApp("other-app", "other.example.com", []byte(pemText)) },
			status: 422, err: "Validation failed: Public key hash has already been taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ks := newKeyServer(t, pemText)
			h := newPartnerHarness(t, Options{}, ks)
			if tc.served != nil {
				tc.served(ks)
			}
			if tc.setup != nil {
				tc.setup(h.sim)
			}
			status, body := h.api(http.MethodPost, "/api/1/partner_accounts", h.partnerToken(), map[string]string{"domain": tc.domain})
			msg, _ := body["error"].(string)
			if status != tc.status || !strings.HasPrefix(msg, tc.err) || body["response"] != nil {
				t.Fatalf("%d %v, want %d %q", status, body, tc.status, tc.err)
			}
			if status == 424 && body["txid"] == nil {
				t.Errorf("424 without txid: %v", body)
			}
			if _, ok := h.sim.Registered(); ok {
				t.Error("registered anyway")
			}
		})
	}
}

// With RequireRegistration every user call answers 412 until the app registered.
func TestRequireRegistration(t *testing.T) {
	t.Parallel()
	_, pemText := newPoint(t)
	ks := newKeyServer(t, pemText)
	h := newPartnerHarness(t, Options{RequireRegistration: true}, ks)
	h.addCar(testVIN)
	user := h.token()
	want := "Account " + DefaultClientID + " must be registered in the current region " + h.url +
		"/, please see https://developer.tesla.com/docs/fleet-api/endpoints/partner-endpoints#register"
	for _, path := range []string{"/api/1/vehicles", "/api/1/users/region", "/api/1/vehicles/" + testVIN + "/vehicle_data"} {
		status, body := h.api(http.MethodGet, path, user, nil)
		if status != http.StatusPreconditionFailed || body["error"] != want || body["error_description"] != "" {
			t.Errorf("%s: %d %v", path, status, body)
		}
	}
	// A bad token is still a 401 first.
	if status, _ := h.api(http.MethodGet, "/api/1/vehicles", "bogus", nil); status != http.StatusUnauthorized {
		t.Errorf("bogus token: %d", status)
	}
	if status, body := h.api(http.MethodPost, "/api/1/partner_accounts", h.partnerToken(), map[string]string{"domain": testDomain}); status != http.StatusOK {
		t.Fatalf("register: %d %v", status, body)
	}
	if status, body := h.api(http.MethodGet, "/api/1/vehicles", user, nil); status != http.StatusOK {
		t.Errorf("after registering: %d %v", status, body)
	}
	// Another app's registration does not count.
	h2 := newPartnerHarness(t, Options{RequireRegistration: true}, ks)
	if err := h2.sim.RegisterOtherApp("other-app", "other.example.com", []byte(pemText)); err != nil {
		t.Fatal(err)
	}
	if status, _ := h2.api(http.MethodGet, "/api/1/vehicles", h2.token(), nil); status != http.StatusPreconditionFailed {
		t.Errorf("another app's registration let us in: %d", status)
	}
}

// Approving the pairing link installs the key the domain serves on the
// cars, which fleet_status then lists as paired.
func TestPairDomain(t *testing.T) {
	t.Parallel()
	p, pemText := newPoint(t)
	ks := newKeyServer(t, pemText)
	h := newPartnerHarness(t, Options{}, ks)
	h.addCar(testVIN)
	h.addCar(testVIN2)
	user := h.token()

	if status, body := h.api(http.MethodPost, "/sim/pair/"+testDomain, "", nil); status != http.StatusNotFound {
		t.Errorf("unregistered domain: %d %v", status, body)
	}
	if err := h.sim.RegisterPartner(testDomain, []byte(pemText)); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.SetCar(testVIN2, func(c *CarState) { c.State = StateAsleep }); err != nil {
		t.Fatal(err)
	}
	if status, body := h.api(http.MethodPost, "/sim/pair/"+testDomain, "", nil); status != http.StatusConflict {
		t.Errorf("an asleep car: %d %v", status, body)
	}
	if len(h.sim.PairedKeys(testVIN)) != 0 {
		t.Error("paired although a car was asleep")
	}
	status, body := h.api(http.MethodPost, "/sim/pair/"+testDomain+"?vin="+testVIN, "", nil)
	if status != http.StatusOK || obj(t, body, "public_key")["public_key"] != hex.EncodeToString(p) {
		t.Fatalf("pair one car: %d %v", status, body)
	}
	status, body = h.api(http.MethodPost, "/api/1/vehicles/fleet_status", user, map[string]any{"vins": []string{testVIN, testVIN2}})
	resp := obj(t, body, "response")
	if status != http.StatusOK || len(resp["key_paired_vins"].([]any)) != 1 || resp["key_paired_vins"].([]any)[0] != testVIN {
		t.Errorf("fleet_status: %d %v", status, body)
	}
	if status, body := h.api(http.MethodPost, "/sim/pair/"+testDomain, "", map[string]any{"vins": []string{"NOPE"}}); status != http.StatusNotFound {
		t.Errorf("unknown car: %d %v", status, body)
	}
	ks.set(http.StatusMovedPermanently, "", map[string]string{"Location": "https://x.example.com/"})
	if status, body := h.api(http.MethodPost, "/sim/pair/"+testDomain+"?vin="+testVIN, "", nil); status != http.StatusBadGateway {
		t.Errorf("key not served: %d %v", status, body)
	}
}

// The admin API lists, adds and removes registrations; faults reach the
// partner endpoints.
func TestPartnerAdminAndFaults(t *testing.T) {
	t.Parallel()
	_, pemText := newPoint(t)
	ks := newKeyServer(t, pemText)
	h := newPartnerHarness(t, Options{}, ks)
	status, _ := h.apiRaw(http.MethodPost, "/sim/partner-accounts", "", map[string]string{"domain": testDomain, "public_key": pemText})
	if status != http.StatusOK {
		t.Fatalf("admin register: %d", status)
	}
	if l := h.sim.PartnerAccounts(); len(l) != 1 || l[0].Domain != testDomain || l[0].ClientID != DefaultClientID {
		t.Errorf("accounts %+v", l)
	}
	if status, _ := h.apiRaw(http.MethodDelete, "/sim/partner-accounts/"+testDomain, "", nil); status != http.StatusNoContent {
		t.Errorf("delete: %d", status)
	}
	if _, ok := h.sim.Registered(); ok {
		t.Error("still registered")
	}
	if status, _ := h.apiRaw(http.MethodPost, "/sim/faults", "", map[string]any{"endpoint": "partner_accounts", "status": 403,
		"body": `{"response":null,"error":"account disabled: EXCEEDED_LIMIT","error_description":""}`}); status != http.StatusNoContent {
		t.Fatalf("inject: %d", status)
	}
	status, body := h.api(http.MethodPost, "/api/1/partner_accounts", h.partnerToken(), map[string]string{"domain": testDomain})
	if status != http.StatusForbidden || body["error"] != "account disabled: EXCEEDED_LIMIT" {
		t.Errorf("fault: %d %v", status, body)
	}
}
