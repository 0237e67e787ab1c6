package svcauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// forwardedIDToken builds what Cloud Run forwards after checking a Google ID
// token: a JWT whose signature was replaced.
func forwardedIDToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." + enc(claims) + ".SIGNATURE_REMOVED_BY_GOOGLE"
}

func TestParseModeNamesTheVariable(t *testing.T) {
	t.Parallel()
	if _, err := ParseMode("WORKER_AUTH", "open"); err == nil || !strings.Contains(err.Error(), "WORKER_AUTH") {
		t.Errorf("err = %v", err)
	}
	if m, err := ParseMode("WORKER_AUTH", " IAM "); err != nil || m != ModeIAM {
		t.Errorf("ParseMode(IAM) = %v, %v", m, err)
	}
}

func TestValidateRequiresEachModesSetting(t *testing.T) {
	t.Parallel()
	cases := []struct {
		p       Policy
		wantVar string
	}{
		{Policy{Mode: ModeIAM}, "ALLOWED_INVOKERS"},
		{Policy{Mode: ModeToken}, "WORKER_AUTH_TOKEN"},
		{Policy{Mode: ModeToken, Token: "short"}, "WORKER_AUTH_TOKEN"},
	}
	for _, tc := range cases {
		if err := tc.p.Validate("ALLOWED_INVOKERS", "WORKER_AUTH_TOKEN"); err == nil || !strings.Contains(err.Error(), tc.wantVar) {
			t.Errorf("Validate(%v) = %v, want it to name %s", tc.p.Mode, err, tc.wantVar)
		}
	}
	if err := (Policy{Mode: ModeNone}).Validate("A", "B"); err != nil {
		t.Errorf("none needs nothing: %v", err)
	}
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	const scout = "scout@proj.iam.gserviceaccount.com"
	iam := Policy{Mode: ModeIAM, AllowedInvokers: []string{scout}}
	tok := Policy{Mode: ModeToken, Token: "local-shared-secret-0123456789"}
	cases := []struct {
		name   string
		policy Policy
		header map[string]string
		status int
		caller string
	}{
		{"iam allowed", iam, map[string]string{"Authorization": "Bearer " + forwardedIDToken(t, map[string]any{"email": scout, "aud": "x"})}, 200, scout},
		{"iam allowed via X-Serverless-Authorization", iam, map[string]string{"X-Serverless-Authorization": "Bearer " + forwardedIDToken(t, map[string]any{"email": strings.ToUpper(scout)})}, 200, strings.ToUpper(scout)},
		{"iam email not on list", iam, map[string]string{"Authorization": "Bearer " + forwardedIDToken(t, map[string]any{"email": "intruder@evil.example"})}, 403, ""},
		{"iam no email claim", iam, map[string]string{"Authorization": "Bearer " + forwardedIDToken(t, map[string]any{"sub": "1"})}, 401, ""},
		{"iam garbage token", iam, map[string]string{"Authorization": "Bearer not-a-jwt"}, 401, ""},
		{"iam missing header", iam, nil, 401, ""},
		{"token right", tok, map[string]string{"Authorization": "Bearer local-shared-secret-0123456789"}, 200, "token"},
		{"token wrong", tok, map[string]string{"Authorization": "Bearer local-shared-secret-0123456780"}, 401, ""},
		{"token wrong scheme", tok, map[string]string{"Authorization": "Basic local-shared-secret-0123456789"}, 401, ""},
		{"token missing", tok, nil, 401, ""},
		{"none", Policy{Mode: ModeNone}, nil, 200, "anonymous"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var gotCaller string
			h := tc.policy.Middleware(zap.NewNop())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotCaller = Caller(r.Context())
			}))
			req := httptest.NewRequest("POST", "/refresh-tokens", nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				var body struct {
					Status string
					Error  struct{ Code string }
				}
				_ = json.Unmarshal(rec.Body.Bytes(), &body)
				want := map[int]string{401: "unauthorized", 403: "forbidden"}[tc.status]
				if body.Status != "error" || body.Error.Code != want {
					t.Errorf("body = %s, want code %s", rec.Body, want)
				}
				if strings.Contains(rec.Body.String(), "local-shared-secret") {
					t.Error("the response echoes the credential")
				}
			}
			if gotCaller != tc.caller {
				t.Errorf("caller = %q, want %q", gotCaller, tc.caller)
			}
		})
	}
}

func TestTokenClientSendsTheBearer(t *testing.T) {
	t.Parallel()
	p := Policy{Mode: ModeToken, Token: "local-shared-secret-0123456789"}
	srv := httptest.NewServer(p.Middleware(zap.NewNop())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer srv.Close()
	c, err := NewClient(context.Background(), p, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Post(srv.URL+"/x", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status = %d", resp.StatusCode)
	}
	if _, err := p.Check(httptest.NewRequest("GET", "/", nil)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("no header: %v", err)
	}
}
