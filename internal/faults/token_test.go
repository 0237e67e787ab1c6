package faults

import (
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// expiredRig is a rig whose stored pair has expired: the next
// /refresh-tokens must spend the stored refresh token.
func expiredRig(t *testing.T, opts rigOptions) (*rig, *instance) {
	t.Helper()
	r := newRig(t, opts)
	r.seed()
	r.advance(8 * time.Hour)
	return r, r.live()[0]
}

// waitExchanges waits until the simulator has answered n token requests in
// all: a request the worker gave up on may still be processed by Tesla
// after the worker answered, and the test must not race that late rotation.
func waitExchanges(t *testing.T, r *rig, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := r.sim.Counters().TokenExchanges
		total := 0
		for _, v := range c {
			total += v
		}
		if total >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the simulator answered %d token requests, want %d: %v", total, n, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Tesla's token endpoint fails in every way it can. Each time the worker
// answers 503 upstream_unavailable with Retry-After, writes nothing, keeps
// the chain, and the next call heals it with exactly one more exchange —
// a grace reuse of the stored token when Tesla had rotated before failing.
func TestTokenEndpointFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		fault     fleetsim.Fault
		committed bool // Tesla rotated although the worker saw a failure
	}{
		{"500", fleetsim.Fault{Status: 500}, false},
		{"503 with Retry-After", fleetsim.Fault{Status: 503, RetryAfter: "120"}, false},
		{"malformed JSON", fleetsim.Fault{Malformed: true}, false},
		{"malformed JSON after rotating", fleetsim.Fault{HoldAfterCommit: time.Millisecond, Malformed: true}, true},
		{"connection dropped after rotating", fleetsim.Fault{HoldAfterCommit: time.Millisecond, Drop: true}, true},
		{"timeout after rotating", fleetsim.Fault{HoldAfterCommit: 5 * time.Second}, true},
		{"timeout, processed late", fleetsim.Fault{Latency: 5 * time.Second}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, w := expiredRig(t, rigOptions{upstreamTimeout: 300 * time.Millisecond})
			_, before := r.stored()
			r.sim.InjectFault(fleetsim.EndpointToken, tc.fault)

			a := r.refresh(w, false)
			if a.status != 503 || a.code != contract.CodeUpstreamUnavailable {
				t.Fatalf("first refresh: %d %s, want 503 upstream_unavailable", a.status, a.body)
			}
			waitExchanges(t, r, 1)
			if _, id := r.stored(); id != before {
				t.Errorf("a failed exchange wrote fleet-tokens/%s", id)
			}
			if got := r.sim.TokenExchanges(fleetsim.OutcomeRefreshOK); got != b2i(tc.committed) {
				t.Errorf("rotations at Tesla = %d, want %d", got, b2i(tc.committed))
			}
			if msg := r.lostRotation(false); msg != "" {
				t.Fatal(msg)
			}

			a = r.refresh(w, false)
			if a.status != 200 || a.action != string(tokens.ActionRefreshed) {
				t.Fatalf("second refresh: %d %s", a.status, a.body)
			}
			if got := r.sim.TokenExchanges(fleetsim.OutcomeGraceReuse); got != b2i(tc.committed) {
				t.Errorf("grace reuses = %d, want %d", got, b2i(tc.committed))
			}
			if got := r.exchanges(); got != 1+b2i(tc.committed) {
				t.Errorf("pairs issued = %d, want %d", got, 1+b2i(tc.committed))
			}
			if got := r.versionCount(); got != 2 {
				t.Errorf("fleet-tokens versions = %d, want 2 (the seed and one refresh)", got)
			}
			if msg := r.lostRotation(true); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// A 401 login_required from Tesla for the stored token, with no other
// candidate left, is reauth_required (409, not retried by Scheduler) — and
// it spends nothing and writes nothing. When it was a one-off (Tesla's
// mistake), the next call refreshes normally.
func TestTokenEndpointLoginRequired(t *testing.T) {
	t.Parallel()
	r, w := expiredRig(t, rigOptions{})
	r.sim.InjectFault(fleetsim.EndpointToken, fleetsim.Fault{Status: 401, Body: `{"error":"login_required","error_description":"injected"}`})

	a := r.refresh(w, false)
	if a.status != 409 || a.code != contract.CodeReauthRequired {
		t.Fatalf("refresh: %d %s, want 409 reauth_required", a.status, a.body)
	}
	if got := w.app.Tokens.Status().State; got != tokens.StateReauthRequired {
		t.Errorf("health state = %s, want reauth_required", got)
	}
	if r.versionCount() != 1 || r.exchanges() != 0 {
		t.Errorf("versions %d, pairs issued %d: a rejected token must change nothing", r.versionCount(), r.exchanges())
	}
	if msg := r.lostRotation(true); msg != "" {
		t.Fatal(msg)
	}
	a = r.refresh(w, false)
	if a.status != 200 || r.exchanges() != 1 {
		t.Fatalf("after the one-off 401: %d %s, pairs issued %d", a.status, a.body, r.exchanges())
	}
	if got := w.app.Tokens.Status().State; got != tokens.StateValid {
		t.Errorf("health state = %s after a good refresh, want valid", got)
	}
}

// A chain Tesla really cut (a login elsewhere) makes the worker try each
// distinct stored refresh token once and then stop: repeated calls never
// loop on Tesla, and the scout reports the car unobservable without ever
// calling the token endpoint itself.
func TestDeadChainIsReportedNotHammered(t *testing.T) {
	t.Parallel()
	r, w := expiredRig(t, rigOptions{})
	r.sim.Login() // someone logged in elsewhere: our chain is cycled out
	for i := 0; i < 3; i++ {
		if a := r.refresh(w, false); a.status != 409 || a.code != contract.CodeReauthRequired {
			t.Fatalf("refresh %d: %d %s", i, a.status, a.body)
		}
	}
	if got := r.sim.TokenExchanges(fleetsim.OutcomeLoginRequired); got != 3 {
		t.Errorf("login_required answers = %d, want 3 (one stored token, one try per call)", got)
	}
	calls := r.sim.Counters().TokenExchanges
	if _, err := r.tick(); err == nil {
		t.Error("a tick with a dead chain reported success")
	}
	after := r.sim.Counters().TokenExchanges
	if after[fleetsim.OutcomeLoginRequired] != calls[fleetsim.OutcomeLoginRequired]+1 {
		t.Errorf("the tick made %d token requests, want exactly the worker's one",
			after[fleetsim.OutcomeLoginRequired]-calls[fleetsim.OutcomeLoginRequired])
	}
	if r.versionCount() != 1 || r.wakes() != 0 {
		t.Errorf("versions %d, wakes %d", r.versionCount(), r.wakes())
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Issue 14 (4): the worker serves its pair from memory; when the Fleet API
// refuses that access token (Tesla revoked it when another process
// rotated, or for its own reasons), the worker re-reads the store, refreshes
// only if the store still holds the refused token, and retries once — the
// path the scout has — instead of failing every cycle until the token would
// have expired.
func TestWorkerRereadsTheStoreAfterAFleet401(t *testing.T) {
	t.Parallel()
	cycle := func(r *rig, in *instance) answer {
		r.t.Helper()
		r.setCar(homePlugged)
		return r.post(in, "/run-cycle", map[string]any{"vin": vin, "reason": "faults"})
	}
	t.Run("another instance rotated", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{revokeOnRotate: true})
		r.seed()
		a := r.live()[0]
		if ans := cycle(r, a); ans.status != 200 {
			t.Fatalf("first cycle: %d %s", ans.status, ans.body)
		}
		// A deploy's second revision (or `fleetctl refresh --force`) rotates:
		// Tesla revokes the access token a still holds in memory.
		b := r.startWorker()
		if ans := r.refresh(b, true); ans.status != 200 {
			t.Fatalf("forced refresh on b: %d %s", ans.status, ans.body)
		}
		if ans := cycle(r, a); ans.status != 200 {
			t.Fatalf("cycle on a after b rotated: %d %s", ans.status, ans.body)
		}
		if got := r.exchanges(); got != 1 {
			t.Errorf("pairs issued = %d, want only b's (a found b's pair in the store)", got)
		}
		if msg := r.lostRotation(true); msg != "" {
			t.Error(msg)
		}
	})
	t.Run("the store still holds the refused token", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{})
		r.seed()
		a := r.live()[0]
		if ans := cycle(r, a); ans.status != 200 {
			t.Fatalf("first cycle: %d %s", ans.status, ans.body)
		}
		r.sim.InjectFault(fleetsim.EndpointVehicleData, fleetsim.Fault{Status: 401, Body: `{"response":null,"error":"token expired (401)"}`})
		data := r.data()
		if ans := cycle(r, a); ans.status != 200 {
			t.Fatalf("cycle after a 401: %d %s", ans.status, ans.body)
		}
		if got := r.exchanges(); got != 1 {
			t.Errorf("pairs issued = %d, want one refresh", got)
		}
		if got := r.data() - data; got != 2 {
			t.Errorf("data calls = %d, want the refused one and one retry", got)
		}
		if msg := r.lostRotation(true); msg != "" {
			t.Error(msg)
		}
	})
}
