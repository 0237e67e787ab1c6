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
