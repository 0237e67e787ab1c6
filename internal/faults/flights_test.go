package faults

import (
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// One worker instance gets a plain /refresh-tokens and a forced one at the
// same moment (the scout's expiring token and, say, a Fleet 401 from a
// concurrent cycle). Property 1 of the design: at most one refresh in
// flight per account — so the two must run one after the other, and no
// refresh token may be spent twice. Spending one twice issues two pairs of
// which only the later is valid; whichever write lands last decides whether
// the store keeps a dead token.
func TestOneInstanceSpendsEachRefreshTokenOnce(t *testing.T) {
	t.Parallel()
	r, w := expiredRig(t, rigOptions{})
	r.sim.SetLatency(fleetsim.EndpointToken, 150*time.Millisecond) // both flights reach Tesla together
	var wg sync.WaitGroup
	answers := make([]answer, 3)
	for i, body := range []map[string]any{{"force": false}, {"force": true}, {"force": false, "reason": "again"}} {
		wg.Add(1)
		go func(i int, body map[string]any) {
			defer wg.Done()
			answers[i] = postJSON(w.srv.URL+"/refresh-tokens", body)
		}(i, body)
	}
	wg.Wait()
	for i, a := range answers {
		if a.status != 200 {
			t.Errorf("caller %d: %d %s", i, a.status, a.body)
		}
	}
	if got := r.sim.TokenExchanges(fleetsim.OutcomeGraceReuse); got != 0 {
		t.Errorf("a refresh token was spent twice (%d grace reuses, exchanges %v): the plain and the forced flight ran at once",
			got, r.sim.Counters().TokenExchanges)
	}
	if msg := r.lostRotation(true); msg != "" {
		t.Error(msg)
	}
}

// Two instances overlap (a deploy) while Secret Manager refuses writes.
// Instance A refreshes: Tesla rotates, A cannot store and keeps the pair in
// memory. Instance B refreshes: it reads the same stored token and spends
// it again inside the grace, so Tesla cycles out A's pair; B cannot store
// either. When the store is back, A must not store its pair: Tesla no
// longer accepts it. Nothing in the store tells A that B spent the token,
// so a pair kept from an earlier lease hold can only be trusted if the
// lease proves nobody else held it since.
func TestAnUnstoredPairIsNotStoredAfterAnotherInstanceSpentTheToken(t *testing.T) {
	t.Parallel()
	r, a := expiredRig(t, rigOptions{})
	b := r.startWorker()
	r.store.outage(secrets.ErrUnavailable, r.clock.Now().Add(30*time.Minute), secrets.OpAdd)
	for _, in := range []*instance{a, b} {
		if ans := r.refresh(in, false); ans.status != 503 {
			t.Fatalf("%s during the outage: %d %s", in.name, ans.status, ans.body)
		}
	}
	if c := r.sim.Counters().TokenExchanges; c[fleetsim.OutcomeRefreshOK] != 1 || c[fleetsim.OutcomeGraceReuse] != 1 {
		t.Fatalf("exchanges %v; want A's refresh and B's grace reuse", c)
	}
	r.advance(30 * time.Minute)
	for _, in := range []*instance{a, b} {
		if ans := r.refresh(in, false); ans.status != 200 {
			t.Errorf("%s after the outage: %d %s", in.name, ans.status, ans.body)
		}
		if msg := r.lostRotation(false); msg != "" {
			t.Fatalf("after %s's refresh: %s", in.name, msg)
		}
	}
	if msg := r.lostRotation(true); msg != "" {
		t.Error(msg)
	}
}

// Issue 14 (1): instance A spends R1 and stalls (Tesla's answer is slow to
// reach it; on Cloud Run a throttled CPU does the same) for longer than its
// lease. B takes the lease, spends R1 again inside the grace and stores v2.
// When A's answer finally arrives A must not store it — Tesla cycled it out
// with B's exchange — so the store keeps B's pair and nobody logs in again.
func TestAStalledFlightDoesNotStoreAfterLosingTheLease(t *testing.T) {
	t.Parallel()
	r, a := expiredRig(t, rigOptions{upstreamTimeout: 5 * time.Second})
	b := r.startWorker()
	r.sim.InjectFault(fleetsim.EndpointToken, fleetsim.Fault{HoldAfterCommit: 500 * time.Millisecond}) // A's exchange only
	done := make(chan answer, 1)
	go func() { done <- r.refresh(a, false) }()
	waitExchanges(t, r, 1)                                                          // Tesla rotated for A; A waits for the answer
	r.advance(2*a.app.Tokens.Config().LeaseTTL + time.Minute)                       // A's lease runs out meanwhile
	if ans := r.refresh(b, false); ans.status != 200 || ans.action != "refreshed" { // B spends R1 again inside the grace
		t.Fatalf("B's refresh while A stalls: %d %s", ans.status, ans.body)
	}
	if ans := <-done; ans.status == 200 {
		t.Errorf("A reported success after losing its lease: %s", ans.body)
	}
	if c := r.sim.Counters().TokenExchanges; c[fleetsim.OutcomeRefreshOK] != 1 || c[fleetsim.OutcomeGraceReuse] != 1 {
		t.Fatalf("exchanges %v; want A's rotation and B's grace reuse", c)
	}
	if msg := r.lostRotation(true); msg != "" {
		t.Fatal(msg)
	}
	if got := r.versionCount(); got != 2 {
		t.Errorf("fleet-tokens versions = %d, want 2 (the seed and B's)", got)
	}
}

// Issue 14 (3): Secret Manager's latest lags (minutes, possibly hours). The
// instance that just stored v2 and another one taking the lease after it
// must not step back to v1 and spend its refresh token again; the scout,
// asking the worker to refresh, reads the version the answer names.
func TestLaggingLatestIsNeverSteppedBack(t *testing.T) {
	t.Parallel()
	r, a := expiredRig(t, rigOptions{})
	r.mem.SetLag(10 * time.Minute)
	if ans := r.refresh(a, false); ans.status != 200 || ans.action != "refreshed" {
		t.Fatalf("refresh: %d %s", ans.status, ans.body)
	}
	if v, _ := r.mem.Latest(r.ctx, "fleet-tokens"); v.ID != "1" {
		t.Fatalf("latest = %s: the store does not lag, the test proves nothing", v.ID)
	}
	b := r.startWorker()
	for _, in := range []*instance{a, b, a} {
		if ans := r.refresh(in, true); ans.status != 200 || ans.action != "refreshed" {
			t.Fatalf("%s's forced refresh: %d %s", in.name, ans.status, ans.body)
		}
	}
	if c := r.sim.Counters().TokenExchanges; c[fleetsim.OutcomeGraceReuse] != 0 || c[fleetsim.OutcomeRefreshOK] != 4 {
		t.Errorf("exchanges %v: a refresh token was spent again", c)
	}
	// The scout's cold read sees the seed (expired by now) through latest;
	// it asks the worker, whose answer names the newest version.
	r.advance(8 * time.Hour)
	r.mem.SetLag(24 * time.Hour)
	r.restartScout()
	if _, err := r.tick(); err != nil {
		t.Fatalf("tick after the worker's refresh: %v", err)
	}
	if c := r.sim.Counters().TokenExchanges; c[fleetsim.OutcomeGraceReuse] != 0 {
		t.Errorf("exchanges %v: a refresh token was spent again", c)
	}
	r.mem.SetLag(0)
	if msg := r.lostRotation(true); msg != "" {
		t.Error(msg)
	}
}
