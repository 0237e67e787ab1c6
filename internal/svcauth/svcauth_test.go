package svcauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
)

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
	keys := NewGoogleKeys("", nil)
	aud := []string{"https://offpeak-worker-1.europe-central2.run.app"}
	cases := []struct {
		p       Policy
		wantVar string
	}{
		{Policy{Mode: ModeIAM, Audiences: aud, Keys: keys}, "ALLOWED_INVOKERS"},
		{Policy{Mode: ModeIAM, AllowedInvokers: []string{"a@b.c"}, Keys: keys}, "SERVICE_URL"},
		{Policy{Mode: ModeIAM, AllowedInvokers: []string{"a@b.c"}, Audiences: []string{"http://worker.example"}, Keys: keys}, "SERVICE_URL"},
		{Policy{Mode: ModeIAM, AllowedInvokers: []string{"a@b.c"}, Audiences: aud}, "GOOGLE_CERTS_URL"},
		{Policy{Mode: ModeToken}, "WORKER_AUTH_TOKEN"},
		{Policy{Mode: ModeToken, Token: "short"}, "WORKER_AUTH_TOKEN"},
	}
	for _, tc := range cases {
		if err := tc.p.Validate("ALLOWED_INVOKERS", "WORKER_AUTH_TOKEN", "SERVICE_URL"); err == nil || !strings.Contains(err.Error(), tc.wantVar) {
			t.Errorf("Validate(%+v) = %v, want it to name %s", tc.p, err, tc.wantVar)
		}
	}
	for _, ok := range []Policy{
		{Mode: ModeNone},
		{Mode: ModeIAM, AllowedInvokers: []string{"a@b.c"}, Audiences: aud, Keys: keys},
		{Mode: ModeIAM, AllowedInvokers: []string{"a@b.c"}, Audiences: aud, OnCloudRun: true},
		{Mode: ModeIAM, AllowedInvokers: []string{"a@b.c"}, Audiences: []string{"http://127.0.0.1:8080"}, Keys: keys},
	} {
		if err := ok.Validate("A", "B", "C"); err != nil {
			t.Errorf("Validate(%+v) = %v", ok, err)
		}
	}
}

func TestTokenModeMiddleware(t *testing.T) {
	t.Parallel()
	tok := Policy{Mode: ModeToken, Token: "local-shared-secret-0123456789"}
	cases := []struct {
		name   string
		policy Policy
		header map[string]string
		status int
		caller string
	}{
		{"token right", tok, map[string]string{"Authorization": "Bearer local-shared-secret-0123456789"}, 200, "token"},
		{"token wrong", tok, map[string]string{"Authorization": "Bearer local-shared-secret-0123456780"}, 401, ""},
		{"token wrong scheme", tok, map[string]string{"Authorization": "Basic local-shared-secret-0123456789"}, 401, ""},
		{"token missing", tok, nil, 401, ""},
		{"none", Policy{Mode: ModeNone}, nil, 200, "anonymous"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkMiddleware(t, tc.policy, tc.header, tc.status, tc.caller)
		})
	}
}

// checkMiddleware sends one request with header through p's middleware and
// checks the status, the error shape and the caller the handler saw.
func checkMiddleware(t *testing.T, p Policy, header map[string]string, status int, caller string) {
	t.Helper()
	var gotCaller string
	h := p.Middleware(zap.NewNop())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotCaller = Caller(r.Context())
	}))
	req := httptest.NewRequest("POST", "/refresh-tokens", nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != status {
		t.Fatalf("status = %d, want %d (%s)", rec.Code, status, rec.Body)
	}
	if status != 200 {
		var body struct {
			Status string
			Error  struct{ Code string }
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		want := map[int]string{401: "unauthorized", 403: "forbidden", 503: "upstream_unavailable"}[status]
		if body.Status != "error" || body.Error.Code != want {
			t.Errorf("body = %s, want code %s", rec.Body, want)
		}
		if strings.Contains(rec.Body.String(), "local-shared-secret") {
			t.Error("the response echoes the credential")
		}
	}
	if gotCaller != caller {
		t.Errorf("caller = %q, want %q", gotCaller, caller)
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
