package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/svcauth"
	"github.com/offpeak-charging/offpeak/internal/tokens"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

const fuzzBearer = "fuzz-test-shared-token-000000001"

// fuzzEndpoint stands in for Tesla's token endpoint: every refresh succeeds
// with a new pair, so a forced refresh reaches the store and back.
type fuzzEndpoint struct{ n atomic.Int64 }

func (e *fuzzEndpoint) Refresh(context.Context, tokens.Client, string) (tokens.Issued, error) {
	n := e.n.Add(1)
	return tokens.Issued{AccessToken: fmt.Sprintf("fuzz-access-%d", n), RefreshToken: fmt.Sprintf("EU_fuzz-refresh-%d", n),
		TokenType: "Bearer", ExpiresIn: 8 * time.Hour}, nil
}

// fuzzCycle answers every run with an empty plan.
type fuzzCycle struct{}

func (fuzzCycle) Run(context.Context, string) (charging.Result, error) {
	return charging.Result{AtHome: true}, nil
}

// documented5xx are the only server errors the worker may answer with, by
// code: transient trouble upstream or in a store, each with Retry-After.
var documented5xx = map[string]bool{contract.CodeUpstreamUnavailable: true, contract.CodeStoreUnavailable: true}

// documented4xx are the client-error codes of the README's table.
var documented4xx = map[string]bool{
	contract.CodeBadRequest: true, contract.CodePayloadTooLarge: true, contract.CodeUnsupportedMedia: true,
	contract.CodeUnauthorized: true, contract.CodeForbidden: true, contract.CodeNotFound: true,
	contract.CodeMethodNotAllowed: true, contract.CodeReauthRequired: true, contract.CodeBusy: true,
}

// FuzzRefreshRequest feeds arbitrary bytes as the body of POST
// /refresh-tokens and POST /run-cycle through the worker's real routes
// (middleware, authentication, strict decoding, handlers, a real token
// manager on a memory store). Whatever the body: no panic, no 5xx outside
// the documented codes, and every error in the error shape.
func FuzzRefreshRequest(f *testing.F) {
	for _, seed := range []string{
		``, ` `, `{}`, `null`, `[]`, `""`, `0`, `true`,
		`{"reason":"scheduled","requested_by":"scout","force":false}`,
		`{"force":true}`, `{"force":"yes"}`, `{"force":1}`, `{"unknown":1}`,
		`{"reason":"a"}{"reason":"b"}`, `{"reason":"a"} trailing`, `{"reason":`, `{"reason":"\ud800"}`,
		"{\"reason\":\"\xff\xfe\"}", `{"reason":"` + strings.Repeat("x", 70<<10) + `"}`,
		`{"vin":"5YJ3E7EB0KF000001","reason":"arrived_home_ready","observed":{"at_home":true,"battery_level":41}}`,
		`{"vin":"5YJ3E7EB0KF00000I"}`, `{"vin":"` + strings.Repeat("A", 17) + `","observed":[1,2]}`, `{"vin":null}`,
		`{"vin":"5YJ3E7EB0KF000001","observed":{"a":{"b":{"c":{"d":[[[[[]]]]]}}}}}`,
		strings.Repeat(`[`, 10000), `{"reason":1e400}`, `{"REASON":"case"}`, `{"force":true,"force":false}`,
	} {
		f.Add([]byte(seed))
	}

	clk := clock.NewManual(time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC))
	store := secrets.NewMemory(clk)
	ctx := context.Background()
	for name, v := range map[string]string{"tesla-client-id": "fuzz-client", "tesla-client-secret": "fuzz-secret"} {
		if _, err := store.Add(ctx, name, []byte(v)); err != nil {
			f.Fatal(err)
		}
	}
	seedPair, err := tokens.Pair{AccessToken: "fuzz-access-0", RefreshToken: "EU_fuzz-refresh-0",
		ExpiresAt: clk.Now().Add(8 * time.Hour), RefreshTokenCreatedAt: clk.Now()}.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	if _, err := store.Add(ctx, "fleet-tokens", seedPair); err != nil {
		f.Fatal(err)
	}
	manager := tokens.New(store, &fuzzEndpoint{}, clk, nil, tokens.Config{Holder: "fuzz"})
	handler := worker.NewHandler(worker.Deps{
		Tokens: manager, Cycle: fuzzCycle{},
		Auth: svcauth.Policy{Mode: svcauth.ModeToken, Token: fuzzBearer},
	})

	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/refresh-tokens", "/run-cycle"} {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer "+fuzzBearer)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			checkAnswer(t, path, body, rec)
		}
	})
}

func checkAnswer(t *testing.T, path string, body []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	status := rec.Code
	if status < 400 {
		var ok struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ok); err != nil || ok.Status != "ok" {
			t.Fatalf("POST %s %q: %d with body %q", path, clip(body), status, rec.Body.String())
		}
		return
	}
	var e contract.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Status != "error" || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("POST %s %q: %d without the error shape: %q", path, clip(body), status, rec.Body.String())
	}
	switch {
	case status >= 500 && !documented5xx[e.Error.Code]:
		t.Fatalf("POST %s %q: undocumented %d %s: %s", path, clip(body), status, e.Error.Code, e.Error.Message)
	case status >= 500 && rec.Header().Get("Retry-After") == "":
		t.Fatalf("POST %s %q: %d without Retry-After", path, clip(body), status)
	case status < 500 && !documented4xx[e.Error.Code]:
		t.Fatalf("POST %s %q: undocumented %d code %q", path, clip(body), status, e.Error.Code)
	}
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
