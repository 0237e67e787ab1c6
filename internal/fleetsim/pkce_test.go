package fleetsim

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// PKCE (RFC 7636): a code bound to a challenge is exchanged only with its
// verifier, and a wrong verifier spends the code.
func TestAuthorizationCodeWithPKCE(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	verifier := strings.Repeat("v", 50)
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	authorize := func(method string) (int, string) {
		q := url.Values{"client_id": {DefaultClientID}, "redirect_uri": {"https://app.example.com/cb"}, "response_type": {"code"},
			"code_challenge": {challenge}, "code_challenge_method": {method}, "state": {"s"}}
		req, _ := http.NewRequest(http.MethodGet, h.url+"/oauth2/v3/authorize?"+q.Encode(), nil)
		resp, _ := h.do(req)
		loc, _ := resp.Location()
		if loc == nil {
			return resp.StatusCode, ""
		}
		return resp.StatusCode, loc.Query().Get("code")
	}
	if st, _ := authorize("plain"); st != http.StatusBadRequest {
		t.Errorf("plain challenge: %d, want 400", st)
	}
	exchange := func(code, verifier string) (int, map[string]any) {
		f := url.Values{"grant_type": {"authorization_code"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
			"code": {code}, "redirect_uri": {"https://app.example.com/cb"}}
		if verifier != "" {
			f.Set("code_verifier", verifier)
		}
		return h.postForm("/oauth2/v3/token", f)
	}
	_, code := authorize("S256")
	if st, body := exchange(code, strings.Repeat("w", 50)); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("wrong verifier: %d %v", st, body)
	}
	if st, _ := exchange(code, verifier); st != http.StatusBadRequest {
		t.Errorf("the code survived a wrong verifier: %d", st)
	}
	_, code = authorize("S256")
	if st, _ := exchange(code, ""); st != http.StatusBadRequest {
		t.Errorf("no verifier: %d, want 400", st)
	}
	_, code = authorize("S256")
	if st, body := exchange(code, verifier); st != http.StatusOK || body["refresh_token"] == nil {
		t.Errorf("right verifier: %d %v", st, body)
	}
}
