package fleetsim

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFaultStatusAndTimes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addCar(testVIN)
	tok := h.token()
	h.sim.InjectFault(EndpointVehicleData, Fault{Status: 429, RetryAfter: "3600", Times: 2})
	path := "/api/1/vehicles/" + testVIN + "/vehicle_data"
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, data := h.do(req)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3600" || !json.Valid(data) {
			t.Fatalf("call %d: %d %q %s", i, resp.StatusCode, resp.Header.Get("Retry-After"), data)
		}
	}
	if st, _ := h.api(http.MethodGet, path, tok, nil); st != 200 {
		t.Fatalf("third call: %d, want the fault used up", st)
	}
	if h.sim.FleetRequests(testVIN, CategoryData) != 3 || h.sim.BilledRequests(testVIN, CategoryData) != 3 {
		t.Errorf("counters %+v", h.sim.Counters())
	}

	// "*" covers every Fleet endpoint but not the token endpoint; a body is sent as given.
	h.sim.InjectFault(EndpointAllFleet, Fault{Status: 503, Body: `{"response":null,"error":"upstream"}`})
	if st, body := h.api(http.MethodGet, "/api/1/vehicles", tok, nil); st != 503 || body["error"] != "upstream" {
		t.Errorf("* fault: %d %v", st, body)
	}
	if h.sim.BilledRequests("", CategoryOther) != 0 || h.sim.FleetRequests("", CategoryOther) != 1 {
		t.Errorf("a 503 is counted but not billed: %+v", h.sim.Counters())
	}
	h.sim.InjectFault(EndpointToken, Fault{Status: 500})
	h.sim.InjectFault(EndpointAllFleet, Fault{Status: 500})
	if st, _ := h.refresh(h.sim.NewestRefreshToken()); st != 500 || h.sim.TokenExchanges(OutcomeFault) != 1 {
		t.Errorf("token fault: %d %v", st, h.sim.Counters().TokenExchanges)
	}
	h.sim.ClearFaults()
	if st, _ := h.api(http.MethodGet, "/api/1/vehicles", tok, nil); st != 200 {
		t.Errorf("after ClearFaults: %d", st)
	}
}

func TestFaultDropAndMalformed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.addCar(testVIN)
	tok := h.token()

	h.sim.InjectFault(EndpointVehicles, Fault{Drop: true})
	req, _ := http.NewRequest(http.MethodGet, h.url+"/api/1/vehicles", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := h.client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped connection answered %d", resp.StatusCode)
	}

	h.sim.InjectFault(EndpointToken, Fault{Malformed: true})
	req, _ = http.NewRequest(http.MethodPost, h.url+"/oauth2/v3/token", strings.NewReader(refreshForm(h.sim.NewestRefreshToken()).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, data := h.do(req)
	var v any
	if resp.StatusCode != 200 || json.Unmarshal(data, &v) == nil {
		t.Fatalf("malformed: %d %q", resp.StatusCode, data)
	}
	if h.sim.TokenExchanges(OutcomeFault) != 1 || h.sim.TokenExchanges(OutcomeRefreshOK) != 0 {
		t.Errorf("a malformed fault must not rotate: %v", h.sim.Counters().TokenExchanges)
	}
	if h.sim.FleetRequests("", CategoryOther) != 1 || h.sim.BilledRequests("", CategoryOther) != 0 {
		t.Errorf("dropped request counters %+v", h.sim.Counters())
	}

	// A latency-only fault delays a normal answer.
	h.sim.InjectFault(EndpointVehicles, Fault{Latency: time.Millisecond})
	if st, _ := h.api(http.MethodGet, "/api/1/vehicles", tok, nil); st != 200 {
		t.Errorf("latency-only fault: %d", st)
	}
	h.sim.SetLatency(EndpointAllFleet, time.Millisecond)
	if st, _ := h.api(http.MethodGet, "/api/1/vehicles", tok, nil); st != 200 {
		t.Errorf("with latency: %d", st)
	}
}

// HoldAfterCommit lets a test kill the caller after Tesla rotated the token
// but before the caller saw the answer; the old token then heals inside grace.
func TestHoldAfterCommitRotatesBeforeAnswering(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	p := h.sim.Login()
	h.sim.InjectFault(EndpointToken, Fault{HoldAfterCommit: time.Minute, Drop: true})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/oauth2/v3/token", strings.NewReader(refreshForm(p.RefreshToken).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := h.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for h.sim.TokenExchanges(OutcomeRefreshOK) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the held refresh never committed")
		}
		time.Sleep(time.Millisecond)
	}
	cancel() // the caller dies before it hears the answer
	if err := <-done; err == nil {
		t.Fatal("the held request answered")
	}
	undelivered := h.sim.NewestRefreshToken()
	if undelivered == p.RefreshToken || !h.sim.RefreshTokenAccepted(undelivered) {
		t.Fatal("the refresh did not rotate the chain")
	}
	_, rt := h.mustRefresh(p.RefreshToken) // the retry with the stored token
	if h.sim.TokenExchanges(OutcomeGraceReuse) != 1 || h.sim.RefreshTokenAccepted(undelivered) || !h.sim.RefreshTokenAccepted(rt) {
		t.Errorf("grace recovery: %v", h.sim.Counters().TokenExchanges)
	}
}

func TestHoldAfterCommitDeliversAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	p := h.sim.Login()
	h.sim.InjectFault(EndpointToken, Fault{HoldAfterCommit: time.Millisecond})
	_, rt := h.mustRefresh(p.RefreshToken)
	if rt != h.sim.NewestRefreshToken() || h.sim.TokenExchanges(OutcomeRefreshOK) != 1 {
		t.Error("held answer is not the committed pair")
	}
}
