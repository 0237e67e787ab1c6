package faults

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// randomSeed is fixed so a failure replays; FAULTS_SEED=n tries another.
func randomSeed(t *testing.T, def uint64) uint64 {
	if s := os.Getenv("FAULTS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FAULTS_SEED: %v", err)
		}
		return n
	}
	return def
}

// 100 rounds, each with a few faults drawn from everything the suite knows
// — Tesla's token endpoint, Secret Manager (outages, writes that fail after
// they committed, latest and the listing lagging behind), the Fleet API,
// the worker unreachable, restarted, killed mid-refresh, deployed next to
// another instance or started with its clock off, a flight stalled past its
// lease while another instance refreshes, a cold scout — while the car comes
// and goes and time jumps across token expiries; the scout ticks and, now
// and then, someone calls /refresh-tokens at the same time. After every
// round: no rotated refresh token lost (rig.lostRotation), so no re-login
// ever needed, no wake without a charging cycle, at most one data call per
// tick outside a cycle (two after an injected 401). At the end, with the
// faults gone, one refresh puts Tesla's newest token in the store and a
// tick sees the car.
func TestRandomFaults(t *testing.T) {
	t.Parallel()
	seed := randomSeed(t, 20261201)
	rng := rand.New(rand.NewPCG(seed, seed))
	r := newRig(t, rigOptions{upstreamTimeout: 300 * time.Millisecond, clientLeases: true})
	r.seed()
	var history []string
	stalls := 0
	defer func() {
		if t.Failed() {
			t.Logf("seed %d (replay with FAULTS_SEED=%d); rounds:\n%s", seed, seed, strings.Join(history, "\n"))
		}
	}()

	for round := 1; round <= 100; round++ {
		cycles, _ := r.gate.Calls("/run-cycle")
		wakes, data := r.wakes(), r.data()
		plan := r.randomRound(rng)
		if plan.stall != nil && r.stallRound(plan) {
			stalls++
		}
		r.gate.down.Store(plan.workerDown)
		var wg sync.WaitGroup
		if plan.sideRefresh != nil {
			wg.Add(1)
			go func(in *instance, force bool) {
				defer wg.Done()
				postJSON(in.srv.URL+"/refresh-tokens", map[string]any{"reason": "side", "force": force})
			}(plan.sideRefresh, plan.sideForce)
		}
		rep, err := r.tick()
		wg.Wait()
		v, _ := vehicleReport(rep)
		history = append(history, fmt.Sprintf("%3d %s → %s %s %v", round, plan, v.Action, v.Reason, errText(err)))

		r.gate.down.Store(false)
		r.sim.ClearFaults()
		r.mem.FailNext(secrets.OpAdd, nil, 0)
		r.mem.FailNextAfterCommit(secrets.OpAdd, nil, 0)
		r.mem.SetLag(0) // the checks read the store as it is
		r.reapDead()

		if msg := r.lostRotation(false); msg != "" {
			t.Fatalf("round %d: %s", round, msg)
		}
		cyclesNow, _ := r.gate.Calls("/run-cycle")
		if r.wakes() > wakes && cyclesNow == cycles {
			t.Fatalf("round %d: the car was woken without a charging cycle: the scout woke it", round)
		}
		maxData := 1
		if plan.fleet401 {
			maxData = 2
		}
		if cyclesNow == cycles && r.data()-data > maxData {
			t.Fatalf("round %d: %d data calls in one tick", round, r.data()-data)
		}
	}

	// Heal: no faults, a refresh, a tick.
	r.store.outage(nil, time.Time{})
	for _, in := range r.live() {
		in.store.crashOnAdd.Store(false)
	}
	r.advance(15 * time.Minute)
	in := r.live()[len(r.live())-1]
	if a := r.refresh(in, true); a.status != 200 {
		t.Fatalf("healing refresh: %d %s", a.status, a.body)
	}
	if msg := r.lostRotation(true); msg != "" {
		t.Fatal(msg)
	}
	r.advance(2 * time.Hour) // past any Retry-After drawn above
	r.setCar(func(*fleetsim.CarState) {})
	if _, err := r.tick(); err != nil {
		t.Errorf("tick after the faults: %v", err)
	}
	if r.wakes() != 0 {
		t.Errorf("wakes = %d: no cycle in this run had a reason to wake the car", r.wakes())
	}
	c := r.sim.Counters().TokenExchanges
	t.Logf("seed %d: %d refreshes, %d grace reuses, %d token faults, %d login_required; fleet-tokens versions %d; instances started %d; %d lease stalls",
		seed, c[fleetsim.OutcomeRefreshOK], c[fleetsim.OutcomeGraceReuse], c[fleetsim.OutcomeFault], c[fleetsim.OutcomeLoginRequired], r.versionCount(), r.nextID, stalls)
}

// stallRound stalls one instance's refresh past its lease: Tesla rotates,
// its answer is held while the clock jumps beyond the lease's life (the
// instance's renewals do not come: it is starved), and another instance
// refreshes meanwhile, spending the same token again inside the grace. The
// stalled instance must then store nothing. It reports whether the stalled
// refresh did reach Tesla.
func (r *rig) stallRound(p roundPlan) bool {
	r.t.Helper()
	before := r.tokenRequests()
	r.sim.InjectFault(fleetsim.EndpointToken, fleetsim.Fault{HoldAfterCommit: 300 * time.Millisecond})
	done := make(chan struct{})
	go func() {
		defer close(done)
		postJSON(p.stall.srv.URL+"/refresh-tokens", map[string]any{"reason": "stalled", "force": true})
	}()
	// Until Tesla got the request (or the instance gave up before it).
	deadline := time.Now().Add(2 * time.Second)
	for r.tokenRequests() == before && time.Now().Before(deadline) {
		select {
		case <-done:
			deadline = time.Now()
		case <-time.After(2 * time.Millisecond):
		}
	}
	reached := r.tokenRequests() > before
	r.clock.Advance(2*p.stall.app.Tokens.Config().LeaseTTL + time.Minute)
	postJSON(p.stallOther.srv.URL+"/refresh-tokens", map[string]any{"reason": "while another stalls", "force": true})
	<-done
	return reached
}

// tokenRequests is every request the token endpoint has answered.
func (r *rig) tokenRequests() int {
	n := 0
	for _, v := range r.sim.Counters().TokenExchanges {
		n += v
	}
	return n
}

// skewedClock is an instance's clock that is off by a constant.
type skewedClock struct {
	c clock.Clock
	d time.Duration
}

func (s skewedClock) Now() time.Time { return s.c.Now().Add(s.d) }

func errText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 90 {
		s = s[:90] + "…"
	}
	return "error: " + s
}

// roundPlan is what one round does; String is its line in the history.
type roundPlan struct {
	step        time.Duration
	workerDown  bool
	fleet401    bool
	sideRefresh *instance
	sideForce   bool
	stall       *instance // its refresh stalls past its lease…
	stallOther  *instance // …while this one refreshes
	notes       []string
}

func (p roundPlan) String() string {
	return fmt.Sprintf("+%-5s %s", p.step, strings.Join(p.notes, ", "))
}

// randomRound draws and applies one round's car change and faults.
func (r *rig) randomRound(rng *rand.Rand) roundPlan {
	p := roundPlan{step: []time.Duration{15 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour}[rng.IntN(5)]}
	note := func(format string, a ...any) { p.notes = append(p.notes, fmt.Sprintf(format, a...)) }
	r.advance(p.step)

	switch rng.IntN(6) {
	case 0:
		r.setCar(away)
		note("car away")
	case 1:
		r.setCar(homePlugged)
		note("car home, plugged in")
	case 2:
		r.setCar(func(c *fleetsim.CarState) {
			c.ConnChargeCable, c.ChargingState = fleetsim.CableUnplugged, fleetsim.ChargingDisconnected
		})
		note("car unplugged")
	case 3:
		r.setCar(func(*fleetsim.CarState) {})
		note("car awake")
	}

	if rng.IntN(3) == 0 {
		faults := []struct {
			name string
			f    fleetsim.Fault
		}{
			{"500", fleetsim.Fault{Status: 500}},
			{"503", fleetsim.Fault{Status: 503, RetryAfter: "60"}},
			{"malformed", fleetsim.Fault{Malformed: true}},
			{"malformed after rotating", fleetsim.Fault{HoldAfterCommit: time.Millisecond, Malformed: true}},
			{"dropped after rotating", fleetsim.Fault{HoldAfterCommit: time.Millisecond, Drop: true}},
			{"timeout after rotating", fleetsim.Fault{HoldAfterCommit: 5 * time.Second}},
			// Not here: a false 401 login_required for Tesla's newest token.
			// The worker rightly falls back to an older stored token (a real
			// rejection means the newest is dead), which cycles the newest
			// out; a crash right after leaves it as the stored one. That is
			// Tesla lying, not a failure mode; TestTokenEndpointLoginRequired
			// covers the answer itself.
		}
		f := faults[rng.IntN(len(faults))]
		f.f.Times = 1 + rng.IntN(2)
		r.sim.InjectFault(fleetsim.EndpointToken, f.f)
		note("token %s ×%d", f.name, f.f.Times)
	}
	if rng.IntN(4) == 0 {
		errs := []error{secrets.ErrUnavailable, secrets.ErrUnavailable, secrets.ErrPermissionDenied}
		opsets := [][]string{nil, {secrets.OpAdd}, {secrets.OpLatest}}
		err, ops := errs[rng.IntN(len(errs))], opsets[rng.IntN(len(opsets))]
		d := []time.Duration{5 * time.Minute, 30 * time.Minute, 2 * time.Hour}[rng.IntN(3)]
		r.store.outage(err, r.clock.Now().Add(d), ops...)
		note("secret store %v on %v for %s", err, ops, d)
	}
	if rng.IntN(6) == 0 {
		n := 1 + rng.IntN(3)
		r.mem.FailNext(secrets.OpAdd, secrets.ErrUnavailable, n)
		note("next %d secret writes fail", n)
	}
	if rng.IntN(6) == 0 {
		n := 1 + rng.IntN(2)
		r.mem.FailNextAfterCommit(secrets.OpAdd, secrets.ErrUnavailable, n)
		note("next %d secret writes fail after they committed", n)
	}
	if rng.IntN(4) == 0 {
		d := []time.Duration{time.Minute, 10 * time.Minute, 2 * time.Hour}[rng.IntN(3)]
		r.mem.SetLag(d)
		note("latest and the listing lag by %s", d)
	}
	if rng.IntN(3) == 0 {
		eps := []fleetsim.Endpoint{fleetsim.EndpointVehicles, fleetsim.EndpointVehicleData}
		ep := eps[rng.IntN(2)]
		faults := []fleetsim.Fault{
			{Status: 401, Body: `{"response":null,"error":"token expired (401)"}`},
			{Status: 408, Body: `{"response":null,"error":"vehicle unavailable: vehicle is offline or asleep"}`},
			{Status: 429, RetryAfter: strconv.Itoa(600 * (1 + rng.IntN(12)))},
			{Status: 500, Body: `{"response":null,"error":"internal error"}`},
			{Status: 503, Body: `{"response":null,"error":"upstream internal error"}`},
			{Status: 421, Body: `{"response":null,"error":"user out of region"}`},
		}
		f := faults[rng.IntN(len(faults))]
		r.sim.InjectFault(ep, f)
		p.fleet401 = f.Status == 401 && ep == fleetsim.EndpointVehicleData
		note("fleet %s %d %s", ep, f.Status, f.RetryAfter)
	}

	live := r.live()
	switch rng.IntN(12) {
	case 0:
		p.workerDown = true
		note("worker unreachable")
	case 1:
		r.stopWorker(live[0])
		r.startWorker()
		note("worker restarted")
	case 2:
		r.kill(live[0])
		r.startWorker()
		note("worker SIGKILLed")
	case 3:
		live[len(live)-1].crashOnNextWrite()
		note("worker dies at its next token write")
	case 4:
		if len(live) > 1 {
			r.stopWorker(live[0])
			note("deploy done: old instance stopped")
		} else {
			r.startWorker()
			note("deploy: a second instance")
		}
	case 5:
		r.restartScout()
		note("cold scout")
	case 6:
		r.nextSkew = []time.Duration{-90 * time.Second, -20 * time.Second, 20 * time.Second, 90 * time.Second}[rng.IntN(4)]
		note("deploy: a second instance, its clock off by %s", r.nextSkew)
		if len(live) > 1 {
			r.stopWorker(live[0])
		}
		r.startWorker()
	}
	if live = r.live(); rng.IntN(8) == 0 {
		if len(live) < 2 {
			r.startWorker()
			live = r.live()
		}
		i := rng.IntN(len(live))
		p.stall, p.stallOther = live[i], live[(i+1)%len(live)]
		note("%s's refresh stalls past its lease while %s refreshes", p.stall.name, p.stallOther.name)
	}
	if rng.IntN(4) == 0 {
		live = r.live()
		p.sideRefresh, p.sideForce = live[rng.IntN(len(live))], rng.IntN(3) == 0
		note("concurrent /refresh-tokens force=%v", p.sideForce)
	}
	return p
}
