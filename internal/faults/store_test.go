package faults

import (
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// Secret Manager cannot be read (Unavailable, or PermissionDenied after an
// IAM change): the worker answers 503 store_unavailable and spends no
// refresh token — it cannot store what Tesla would answer. Once the store
// is back one refresh does it.
func TestSecretManagerUnreadable(t *testing.T) {
	t.Parallel()
	for name, err := range map[string]error{"Unavailable": secrets.ErrUnavailable, "PermissionDenied": secrets.ErrPermissionDenied} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, w := expiredRig(t, rigOptions{})
			r.store.outage(err, r.clock.Now().Add(time.Hour))
			for i := 0; i < 2; i++ {
				a := r.refresh(w, false)
				if a.status != 503 || a.code != contract.CodeStoreUnavailable {
					t.Fatalf("refresh during the outage: %d %s, want 503 store_unavailable", a.status, a.body)
				}
			}
			if n := len(r.sim.Counters().TokenExchanges); n != 0 {
				t.Fatalf("token requests during the outage: %v, want none", r.sim.Counters().TokenExchanges)
			}
			r.advance(time.Hour)
			if a := r.refresh(w, false); a.status != 200 || r.exchanges() != 1 {
				t.Fatalf("after the outage: %d %s, pairs issued %d", a.status, a.body, r.exchanges())
			}
			if msg := r.lostRotation(true); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// A store write that fails a few times after Tesla rotated is retried
// within the request: one exchange, one version, success.
func TestStoreWriteRetriedAfterRotation(t *testing.T) {
	t.Parallel()
	r, w := expiredRig(t, rigOptions{})
	adds := r.mem.Calls(secrets.OpAdd)
	r.mem.FailNext(secrets.OpAdd, secrets.ErrUnavailable, 3)
	if a := r.refresh(w, false); a.status != 200 {
		t.Fatalf("refresh: %d %s", a.status, a.body)
	}
	if got := r.mem.Calls(secrets.OpAdd) - adds; got != 4 {
		t.Errorf("add calls = %d, want 4 (three failures, one success)", got)
	}
	if r.exchanges() != 1 || r.versionCount() != 2 {
		t.Errorf("pairs issued %d, versions %d; want 1 and 2", r.exchanges(), r.versionCount())
	}
	if msg := r.lostRotation(true); msg != "" {
		t.Error(msg)
	}
}

// The store write keeps failing after Tesla rotated (longer than the
// worker's retry budget). The worker never reports success and the old
// stored token stays valid inside Tesla's grace. Once the store is back one
// more call heals the chain: either by storing the pair the instance kept
// in memory, or — if the instance was replaced meanwhile, or does not keep
// unstored pairs — by spending the stored token again inside the grace.
// Either way at most one more pair is issued and the store ends at the head
// of Tesla's chain.
func TestStoreWriteFailsAfterRotation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		err     error
		restart bool
	}{
		{"Unavailable, same instance", secrets.ErrUnavailable, false},
		{"PermissionDenied, same instance", secrets.ErrPermissionDenied, false},
		{"Unavailable, instance replaced", secrets.ErrUnavailable, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, w := expiredRig(t, rigOptions{})
			r.store.outage(tc.err, r.clock.Now().Add(30*time.Minute), secrets.OpAdd)
			a := r.refresh(w, false)
			if a.status != 503 || a.code != contract.CodeStoreUnavailable {
				t.Fatalf("refresh with the write failing: %d %s, want 503 store_unavailable", a.status, a.body)
			}
			if r.sim.TokenExchanges(fleetsim.OutcomeRefreshOK) != 1 || r.versionCount() != 1 {
				t.Fatalf("Tesla rotated %d times, versions %d; want 1 and 1", r.sim.TokenExchanges(fleetsim.OutcomeRefreshOK), r.versionCount())
			}
			if msg := r.lostRotation(false); msg != "" {
				t.Fatal(msg)
			}
			if tc.restart {
				r.stopWorker(w)
				w = r.startWorker()
			}
			r.advance(30 * time.Minute)
			if a := r.refresh(w, false); a.status != 200 {
				t.Fatalf("after the outage: %d %s", a.status, a.body)
			}
			c := r.sim.Counters().TokenExchanges
			if c[fleetsim.OutcomeRefreshOK] != 1 || c[fleetsim.OutcomeGraceReuse] > 1 || (tc.restart && c[fleetsim.OutcomeGraceReuse] != 1) {
				t.Errorf("exchanges %v; want 1 refresh_ok and at most one grace_reuse (exactly one after a restart)", c)
			}
			if r.versionCount() != 2 {
				t.Errorf("versions = %d, want 2", r.versionCount())
			}
			if msg := r.lostRotation(true); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// The scout on a warm instance needs no secret read, so a Secret Manager
// outage does not stop its ticks while the cached token is valid; a cold
// scout during the outage fails the tick without calling Tesla at all.
func TestScoutDuringSecretManagerOutage(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.seed()
	if _, err := r.tick(); err != nil {
		t.Fatal(err)
	}
	r.store.outage(secrets.ErrUnavailable, r.clock.Now().Add(2*time.Hour))
	latest := r.mem.Calls(secrets.OpLatest)
	r.advance(15 * time.Minute)
	if _, err := r.tick(); err != nil {
		t.Errorf("warm tick during the outage: %v", err)
	}
	if got := r.mem.Calls(secrets.OpLatest) - latest; got != 0 {
		t.Errorf("warm tick read the store %d times", got)
	}
	r.restartScout()
	fleetBefore := r.sim.Counters().Fleet
	if _, err := r.tick(); err == nil {
		t.Error("a cold tick with the store down reported success")
	}
	if got := r.sim.Counters().Fleet; len(got) != len(fleetBefore) || got[""]["other"] != fleetBefore[""]["other"] {
		t.Errorf("a cold tick without a token called the Fleet API: %v → %v", fleetBefore, got)
	}
	if len(r.sim.Counters().TokenExchanges) != 0 {
		t.Errorf("token requests: %v, want none", r.sim.Counters().TokenExchanges)
	}
}
