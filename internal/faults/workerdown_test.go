package faults

import (
	"context"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/devstack"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
)

// The worker is unreachable for hours while the scout keeps ticking (the
// production stack from devstack: file stores, real HTTP everywhere). The
// car comes home and is plugged in meanwhile; its access token runs into
// the refresh window and then expires. The scout keeps the trigger pending,
// tries the worker once per tick, never calls Tesla's token endpoint itself
// (only the worker may rotate), makes at most one billed data call per tick
// and never wakes the car. When the worker is back, the next tick runs the
// cycle and the token is refreshed once.
func TestWorkerDownWhileTheScoutTicks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := devstack.Start(ctx, devstack.Options{Dir: t.TempDir(), Clock: clock.NewManual(devstack.StoryStart)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SeedTokens(ctx); err != nil {
		t.Fatal(err)
	}
	tick := func(mod func(*fleetsim.CarState)) (devstack.TickResult, patrol.VehicleReport) {
		t.Helper()
		st.Clock.Advance(15 * time.Minute)
		if err := st.SetCar(devstack.VIN, func(c *fleetsim.CarState) { c.State = fleetsim.StateOnline; mod(c) }); err != nil {
			t.Fatal(err)
		}
		res, err := st.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range res.Body.Vehicles {
			return res, v
		}
		return res, patrol.VehicleReport{}
	}
	if _, v := tick(away); v.Action != patrol.ActionTriggered {
		t.Fatalf("first sighting: %+v", v)
	}

	st.SetWorkerDown(true)
	calls, exchanges := st.WorkerCalls(), len(st.Sim.Counters().TokenExchanges)
	data := st.Sim.BilledRequests(devstack.VIN, fleetsim.CategoryData)
	// 36 ticks = 9 hours, past the 8 h access token's refresh window and
	// expiry: 4 hours away, then at home and plugged in — less than the 6 h
	// a pending trigger is kept.
	ticks, pending, failed, observed := 36, 0, 0, 0
	for i := 0; i < ticks; i++ {
		where := away
		if i >= 16 {
			where = homePlugged
		}
		res, v := tick(where)
		switch {
		case res.Status != 200:
			failed++ // the token expired and nobody can refresh it
		case i < 16 && v.Action == patrol.ActionNone:
			observed++
		case i >= 16 && v.Action == patrol.ActionPending:
			pending++
		default:
			t.Fatalf("tick %d with the worker down: %d %+v", i, res.Status, v)
		}
	}
	if pending == 0 || failed == 0 || observed+pending+failed != ticks {
		t.Errorf("observed %d, pending %d, failed %d of %d ticks", observed, pending, failed, ticks)
	}
	if got := len(st.Sim.Counters().TokenExchanges); got != exchanges {
		t.Errorf("token requests while the worker was down: %v", st.Sim.Counters().TokenExchanges)
	}
	if got := st.Sim.BilledRequests(devstack.VIN, fleetsim.CategoryData) - data; got != observed+pending {
		t.Errorf("billed data calls = %d over %d observing ticks: want one per tick", got, observed+pending)
	}
	if got := st.WorkerCalls() - calls; got < int64(pending+failed) {
		t.Errorf("scout → worker calls = %d: a pending trigger or a refresh should be tried each of %d ticks", got, pending+failed)
	}
	if w := st.Sim.FleetRequests(devstack.VIN, fleetsim.CategoryWake); w != 0 {
		t.Errorf("wakes = %d", w)
	}

	st.SetWorkerDown(false)
	res, v := tick(homePlugged)
	if res.Status != 200 || v.Action != patrol.ActionTriggered || v.Reason != patrol.ReasonArrivedHomeReady {
		t.Fatalf("first tick with the worker back: %d %+v", res.Status, v)
	}
	if got := st.Sim.TokenExchanges(fleetsim.OutcomeRefreshOK); got != 1 {
		t.Errorf("refreshes once the worker is back = %d, want 1", got)
	}
	if len(st.Sim.Schedules(devstack.VIN)) == 0 {
		t.Error("the cycle left no charge schedule")
	}
	p, _, err := st.StoredPair(ctx)
	if err != nil || !st.Sim.RefreshTokenAccepted(p.RefreshToken) || p.RefreshToken != st.Sim.NewestRefreshToken() {
		t.Errorf("chain after the outage: %v", err)
	}
}
