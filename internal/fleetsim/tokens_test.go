package fleetsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRotationAndGrace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	p0 := h.sim.Login()

	_, rt1 := h.mustRefresh(p0.RefreshToken) // p0 used: the last used token
	if got := h.sim.TokenExchanges(OutcomeRefreshOK); got != 1 {
		t.Fatalf("refresh_ok = %d, want 1", got)
	}
	_, rt2 := h.mustRefresh(rt1) // rt1 now the last used; p0 cycled out

	if status, body := h.refresh(p0.RefreshToken); status != http.StatusUnauthorized || body["error"] != "login_required" {
		t.Fatalf("older token: status %d body %v, want 401 login_required", status, body)
	}

	h.clk.Advance(23 * time.Hour)
	_, rt3 := h.mustRefresh(rt1) // reuse inside grace: new pair, rt2 cycled out
	if got := h.sim.TokenExchanges(OutcomeGraceReuse); got != 1 {
		t.Fatalf("grace_reuse = %d, want 1", got)
	}
	if h.sim.RefreshTokenAccepted(rt2) {
		t.Fatal("the previous newest token survived a grace reuse")
	}
	if !h.sim.RefreshTokenAccepted(rt3) || !h.sim.RefreshTokenAccepted(rt1) {
		t.Fatal("the newest token and the last used one (inside grace) must be accepted")
	}

	// Grace counts from the first use, not from the reuse.
	h.clk.Advance(time.Hour)
	if status, body := h.refresh(rt1); status != http.StatusUnauthorized || body["error"] != "login_required" {
		t.Fatalf("reuse after grace: status %d body %v, want 401 login_required", status, body)
	}
	if !h.sim.ChainValid("garbage", rt1, rt3) {
		t.Fatal("the chain is valid while rt3 is unused")
	}
	h.mustRefresh(rt3)
	if got := h.sim.TokenExchanges(OutcomeLoginRequired); got != 2 {
		t.Fatalf("login_required = %d, want 2", got)
	}
}

func TestRefreshTokenExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{RefreshTokenTTL: 90 * 24 * time.Hour})
	p := h.sim.Login()
	h.clk.Advance(90*24*time.Hour - time.Second)
	if !h.sim.RefreshTokenAccepted(p.RefreshToken) {
		t.Fatal("token rejected before its TTL")
	}
	h.clk.Advance(time.Second)
	if status, body := h.refresh(p.RefreshToken); status != http.StatusUnauthorized || body["error"] != "login_required" {
		t.Fatalf("expired token: status %d body %v", status, body)
	}
}

func TestLoginStartsNewChain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	p0 := h.sim.Login()
	_, rt1 := h.mustRefresh(p0.RefreshToken)
	q := h.sim.Login()
	for name, rt := range map[string]string{"last used": p0.RefreshToken, "newest": rt1} {
		if h.sim.RefreshTokenAccepted(rt) {
			t.Errorf("%s token of the old chain still accepted", name)
		}
	}
	if h.sim.ChainValid(p0.RefreshToken, rt1) {
		t.Error("ChainValid with only old-chain tokens")
	}
	if !h.sim.ChainValid(q.RefreshToken) {
		t.Error("new login's token not accepted")
	}
	if h.sim.NewestRefreshToken() != q.RefreshToken {
		t.Error("NewestRefreshToken is not the login's token")
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	rt := h.sim.Login().RefreshToken
	cases := []struct {
		name    string
		form    url.Values
		status  int
		errCode string
		outcome string
	}{
		{"wrong client_id", url.Values{"grant_type": {"refresh_token"}, "client_id": {"x"}, "refresh_token": {rt}}, 401, "invalid_client", OutcomeInvalidClient},
		{"missing client_id", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, 401, "invalid_client", OutcomeInvalidClient},
		{"wrong secret", url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID}, "client_secret": {"nope"}, "refresh_token": {rt}}, 401, "invalid_client", OutcomeInvalidClient},
		{"missing grant", url.Values{"client_id": {DefaultClientID}, "refresh_token": {rt}}, 400, "invalid_request", OutcomeBadRequest},
		{"unknown grant", url.Values{"grant_type": {"password"}, "client_id": {DefaultClientID}}, 400, "invalid_request", OutcomeBadRequest},
		{"missing refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID}}, 400, "invalid_request", OutcomeBadRequest},
		{"unknown refresh token", refreshForm("EU_0000"), 401, "login_required", OutcomeLoginRequired},
	}
	for _, tc := range cases {
		status, body := h.postForm("/oauth2/v3/token", tc.form)
		if status != tc.status || body["error"] != tc.errCode {
			t.Errorf("%s: status %d body %v, want %d %s", tc.name, status, body, tc.status, tc.errCode)
		}
	}
	c := h.sim.Counters()
	if c.TokenExchanges[OutcomeInvalidClient] != 3 || c.TokenExchanges[OutcomeBadRequest] != 3 || c.TokenExchanges[OutcomeLoginRequired] != 1 {
		t.Errorf("counters %v", c.TokenExchanges)
	}
	// None of the failures used the token up; extra fields are ignored and the right secret is fine.
	form := refreshForm(rt)
	form.Set("client_secret", DefaultClientSecret)
	form.Set("scope", "openid")
	form.Set("audience", "https://example")
	if status, body := h.postForm("/oauth2/v3/token", form); status != 200 || body["token_type"] != "Bearer" || body["expires_in"] != 28800.0 || body["id_token"] == "" {
		t.Fatalf("refresh with secret: %d %v", status, body)
	}

	status, _ := h.apiRaw(http.MethodGet, "/oauth2/v3/token", "", nil)
	if status != http.StatusMethodNotAllowed {
		t.Errorf("GET token endpoint: %d, want 405", status)
	}
}

func TestAuthorizationCodeFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	old := h.sim.Login()
	redirect := "http://127.0.0.1:9999/callback"

	authorize := func(q url.Values) (int, *url.URL) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.url+"/oauth2/v3/authorize?"+q.Encode(), nil)
		resp, _ := h.do(req)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return resp.StatusCode, loc
	}
	q := url.Values{"response_type": {"code"}, "client_id": {DefaultClientID}, "redirect_uri": {redirect},
		"scope": {"openid offline_access vehicle_device_data"}, "state": {"xyz-123"}}
	status, loc := authorize(q)
	if status != http.StatusFound {
		t.Fatalf("authorize: %d", status)
	}
	code := loc.Query().Get("code")
	if loc.Query().Get("state") != "xyz-123" || code == "" || loc.Host != "127.0.0.1:9999" || loc.Path != "/callback" {
		t.Fatalf("redirect %s lacks the code or state", loc)
	}

	exchange := func(code, redirect, secret string) (int, map[string]any) {
		f := url.Values{"grant_type": {"authorization_code"}, "client_id": {DefaultClientID}, "code": {code},
			"redirect_uri": {redirect}, "audience": {h.url}}
		if secret != "" {
			f.Set("client_secret", secret)
		}
		return h.postForm("/oauth2/v3/token", f)
	}
	if st, body := exchange(code, redirect, ""); st != 401 || body["error"] != "invalid_client" {
		t.Errorf("without secret: %d %v", st, body)
	}
	if st, body := exchange(code, "http://127.0.0.1:9999/other", DefaultClientSecret); st != 400 || body["error"] != "invalid_auth_code" {
		t.Errorf("wrong redirect_uri: %d %v", st, body)
	}
	st, body := exchange(code, redirect, DefaultClientSecret)
	if st != 200 || body["scope"] != "openid offline_access vehicle_device_data" {
		t.Fatalf("exchange: %d %v", st, body)
	}
	if !strings.HasPrefix(body["refresh_token"].(string), "EU_") {
		t.Errorf("refresh token %q lacks the region prefix", body["refresh_token"])
	}
	if st, body := exchange(code, redirect, DefaultClientSecret); st != 400 || body["error"] != "invalid_auth_code" {
		t.Errorf("code reuse: %d %v", st, body)
	}
	if h.sim.RefreshTokenAccepted(old.RefreshToken) {
		t.Error("a code exchange must start a new chain")
	}
	if !h.sim.RefreshTokenAccepted(body["refresh_token"].(string)) {
		t.Error("the exchanged refresh token is not accepted")
	}

	_, loc = authorize(q)
	h.clk.Advance(10 * time.Minute)
	if st, body := exchange(loc.Query().Get("code"), redirect, DefaultClientSecret); st != 400 || body["error"] != "invalid_auth_code" {
		t.Errorf("expired code: %d %v", st, body)
	}
	if got := h.sim.TokenExchanges(OutcomeAuthCodeOK); got != 1 {
		t.Errorf("auth_code_ok = %d", got)
	}
	if got := h.sim.TokenExchanges(OutcomeInvalidAuthCode); got != 3 {
		t.Errorf("invalid_auth_code = %d", got)
	}

	for name, mod := range map[string]func(url.Values){
		"wrong client_id":      func(v url.Values) { v.Set("client_id", "nope") },
		"missing redirect_uri": func(v url.Values) { v.Del("redirect_uri") },
		"relative redirect":    func(v url.Values) { v.Set("redirect_uri", "/callback") },
	} {
		v := url.Values{}
		for k, vals := range q {
			v[k] = slices.Clone(vals)
		}
		mod(v)
		if st, _ := authorize(v); st != http.StatusBadRequest {
			t.Errorf("authorize with %s: %d, want 400", name, st)
		}
	}
}

func TestAuthorizeRedirectAllowList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{RedirectURIs: []string{"http://localhost:8080/cb"}})
	for uri, want := range map[string]int{"http://localhost:8080/cb": 302, "http://localhost:8080/evil": 400} {
		q := url.Values{"client_id": {DefaultClientID}, "redirect_uri": {uri}, "response_type": {"code"}}
		req, _ := http.NewRequest(http.MethodGet, h.url+"/oauth2/v3/authorize?"+q.Encode(), nil)
		if resp, _ := h.do(req); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", uri, resp.StatusCode, want)
		}
	}
}

func TestJWTClaims(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Region: "NA", AccessTokenTTL: time.Hour})
	p := h.sim.Login()
	if p.ExpiresIn != 3600 || !p.ExpiresAt.Equal(simStart.Add(time.Hour)) {
		t.Errorf("pair lifetime %d %v", p.ExpiresIn, p.ExpiresAt)
	}
	if !regexp.MustCompile(`^NA_[0-9a-f]{64}$`).MatchString(p.RefreshToken) {
		t.Errorf("refresh token shape %q", p.RefreshToken)
	}
	parts := strings.Split(p.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("access token has %d parts", len(parts))
	}
	var header map[string]any
	var claims struct {
		Iss    string   `json:"iss"`
		Sub    string   `json:"sub"`
		Aud    []string `json:"aud"`
		Scp    []string `json:"scp"`
		Exp    int64    `json:"exp"`
		Iat    int64    `json:"iat"`
		OuCode string   `json:"ou_code"`
	}
	for i, dst := range []any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	if header["alg"] != "RS256" || header["typ"] != "JWT" {
		t.Errorf("header %v", header)
	}
	if claims.Iss != h.url || claims.Sub != UserID || !slices.Contains(claims.Aud, h.url) || claims.OuCode != "NA" ||
		!slices.Contains(claims.Scp, "vehicle_device_data") || claims.Iat != simStart.Unix() || claims.Exp != simStart.Add(time.Hour).Unix() {
		t.Errorf("claims %+v", claims)
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		t.Errorf("signature: %v", err)
	}
}

// Tesla keeps the last used token valid for a day, so callers racing with one
// token all get pairs: one rotation, the rest grace reuses.
func TestConcurrentRefreshSameToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	p := h.sim.Login()
	const n = 200
	var wg sync.WaitGroup
	results := make([]string, n)
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, h.url+"/oauth2/v3/token", strings.NewReader(refreshForm(p.RefreshToken).Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := h.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			statuses[i] = resp.StatusCode
			results[i], _ = body["refresh_token"].(string)
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Fatalf("request %d: status %d", i, st)
		}
	}
	if ok, grace := h.sim.TokenExchanges(OutcomeRefreshOK), h.sim.TokenExchanges(OutcomeGraceReuse); ok != 1 || grace != n-1 {
		t.Fatalf("refresh_ok %d grace_reuse %d, want 1 and %d", ok, grace, n-1)
	}
	accepted := 0
	seen := map[string]bool{}
	for _, rt := range results {
		seen[rt] = true
		if h.sim.RefreshTokenAccepted(rt) {
			accepted++
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct refresh tokens, want %d", len(seen), n)
	}
	if accepted != 1 || !h.sim.RefreshTokenAccepted(p.RefreshToken) {
		t.Errorf("%d issued tokens accepted, want exactly the newest (plus the original in grace)", accepted)
	}
}
