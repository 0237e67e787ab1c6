package faults

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/devstack"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// YearReport is what the simulated year counts. `make bench` runs the test
// with FAULTS_YEAR_REPORT=<file> and prints the counters it finds there.
type YearReport struct {
	Seed                uint64 `json:"seed"`
	Ticks               int    `json:"ticks"`
	Refreshes           int    `json:"refreshes"`             // pairs Tesla issued (refresh_ok + grace_reuse)
	GraceReuses         int    `json:"grace_reuses"`          // of which spent a stored token again inside the grace
	Relogins            int    `json:"relogins"`              // times no stored token was accepted any more: a person had to log in
	LostRotations       int    `json:"lost_rotations"`        // ticks after which fleet-tokens/latest held a token Tesla rejects
	Arrivals            int    `json:"arrivals"`              // plug-ins at home
	MissedArrivals      int    `json:"missed_arrivals"`       // no cycle within two reachable ticks
	UnservableArrivals  int    `json:"unservable_arrivals"`   // the car left again before anything was reachable
	HiddenArrivals      int    `json:"hidden_arrivals"`       // the whole trip fell into an outage: the scout never saw the car leave
	Cycles              int    `json:"cycles"`                // charging cycles the worker ran for the scout
	ScoutWakes          int    `json:"scout_wakes"`           // wakes in ticks without a cycle
	FailedTicks         int    `json:"failed_ticks"`          // ticks that observed nothing
	WorkerInstances     int    `json:"worker_instances"`      // instances started (restarts, deploys, replacements)
	Kills               int    `json:"kills"`                 // instances killed (lease left held, memory lost)
	CrashesBeforeStore  int    `json:"crashes_before_store"`  // instances that died between Tesla's answer and the write
	Deploys             int    `json:"deploys"`               // two instances overlapping
	TokenOutageHours    int    `json:"token_outage_hours"`    // token endpoint failing
	SecretOutageHours   int    `json:"secret_outage_hours"`   // Secret Manager failing
	WorkerDownHours     int    `json:"worker_down_hours"`     // worker unreachable
	RateLimits          int    `json:"rate_limits"`           // Fleet 429s with a long Retry-After
	FleetFaults         int    `json:"fleet_faults"`          // one-off Fleet 401/408/5xx
	FleetBilledData     int    `json:"fleet_billed_data"`     // billed vehicle_data over the year
	SecretVersionsAdded int    `json:"secret_versions_added"` // fleet-tokens versions written
	ActiveVersionsAtEnd int    `json:"active_versions_at_end"`
}

// window is a stretch of simulated time during which something is broken.
type window struct{ from, to time.Time }

func (w window) on(t time.Time) bool { return !t.Before(w.from) && t.Before(w.to) }

// arrival is a plug-in at home, served by a cycle before the car leaves.
type arrival struct {
	departed   time.Time // the unplug that started the trip it ends
	at, leaves time.Time
	reachable  int // reachable ticks seen since
	classified bool
	done       bool
}

// TestSimulatedYear runs a year of operation — a tick every 15 simulated
// minutes, 35,040 of them — with the real worker (behind HTTP) and the real
// scout code, a car with a weekly routine, and seeded faults throughout:
// token endpoint and Secret Manager outages of minutes to hours, instance
// restarts and kills (some between Tesla's answer and the store write), two
// worker instances overlapping during deploys, the worker unreachable, and
// Fleet 429s with long Retry-After. It asserts 0 re-logins, 0 lost
// rotations, 0 wakes by the scout, and that every arrival home is followed
// by a cycle within two ticks of everything being reachable again (the
// services up and the car online: the scout may not wake it to look).
func TestSimulatedYear(t *testing.T) {
	t.Parallel()
	seed := randomSeed(t, 2027)
	rep, problems := runYear(t, seed, 365)
	defer func() {
		if t.Failed() && len(problems) > 0 {
			t.Logf("seed %d, first problems:\n%s", seed, strings.Join(problems, "\n"))
		}
	}()
	out, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("simulated year, seed %d (FAULTS_SEED=%d replays):\n%s", seed, seed, out)
	if path := os.Getenv("FAULTS_YEAR_REPORT"); path != "" {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Error(err)
		}
	}
	if rep.Relogins != 0 {
		t.Errorf("re-logins needed: %d", rep.Relogins)
	}
	if rep.LostRotations != 0 {
		t.Errorf("ticks with a lost rotation: %d", rep.LostRotations)
	}
	if rep.ScoutWakes != 0 {
		t.Errorf("wakes by the scout: %d", rep.ScoutWakes)
	}
	if rep.MissedArrivals != 0 {
		t.Errorf("arrivals without a cycle within two reachable ticks: %d of %d", rep.MissedArrivals, rep.Arrivals)
	}
	if rep.Arrivals < 250 || rep.Cycles < rep.Arrivals/2 || rep.Refreshes < 365*2 {
		t.Errorf("the year was too quiet to mean anything: %+v", rep)
	}
}

// runYear plays days of the year and returns its counters and the first
// problems it saw, in words.
func runYear(t *testing.T, seed uint64, days int) (YearReport, []string) {
	r := newRig(t, rigOptions{quiet: true, upstreamTimeout: 300 * time.Millisecond})
	r.seed()
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	loc, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		t.Fatal(err)
	}
	start := r.clock.Now()
	steps, arrivals := weeklyRoutine(rng, start, days, loc)
	r.sim.RunScript(start, steps)
	rep := YearReport{Seed: seed, Arrivals: len(arrivals)}
	var failures []string
	fail := func(format string, a ...any) {
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, a...))
		}
	}

	var tokenOut, secretOut, workerDown, rateLimited window
	var tokenFault fleetsim.Fault
	var deployEnds time.Time
	versionsAtStart := r.versionCount()
	next := 0                  // first arrival not yet settled
	var seenNotReady time.Time // last tick the scout saw the car away or unplugged
	ticks := days * 96

	for i := 0; i < ticks; i++ {
		// Every random number of the tick is drawn up front, so the fault
		// schedule is the seed's alone, whatever the system does.
		d := struct {
			tokenStart, secretStart, workerStart, rate, fleet, restart, kill, crash, deploy, cold, side float64
			tokenKind, tokenLen, secretKind, secretLen, workerLen, rateLen, rateEP, fleetKind           int
		}{rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64(),
			rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64(),
			rng.IntN(3), rng.IntN(6), rng.IntN(4), rng.IntN(5), rng.IntN(4), rng.IntN(6), rng.IntN(2), rng.IntN(5)}

		// Instances come and go between ticks (a killed instance's lease
		// runs out before the next tick, as it would in 15 real minutes).
		live := r.live()
		switch {
		case d.kill < 0.0005:
			r.kill(live[0])
			rep.Kills++
		case d.crash < 0.001:
			live[len(live)-1].crashOnNextWrite()
		case d.restart < 0.05 && len(live) == 1:
			r.stopWorker(live[0])
			r.startWorker()
		}
		if len(r.live()) == 0 {
			r.startWorker()
		}
		if len(r.live()) == 1 && d.deploy < 0.0007 {
			r.startWorker()
			deployEnds = r.clock.Now().Add(time.Duration(4+int(d.side*8)) * 15 * time.Minute)
			rep.Deploys++
		} else if live := r.live(); len(live) > 1 && !r.clock.Now().Before(deployEnds) {
			r.stopWorker(live[0])
		}
		if d.cold < 0.2 {
			r.restartScout()
		}

		r.advance(15 * time.Minute)
		now := r.clock.Now()

		// Outages of minutes to hours.
		if !tokenOut.on(now) && d.tokenStart < 0.0008 {
			tokenOut = window{now, now.Add([]time.Duration{5 * time.Minute, 20 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour}[d.tokenLen])}
			tokenFault = []fleetsim.Fault{{Status: 503, RetryAfter: "120"}, {HoldAfterCommit: 5 * time.Second}, {Malformed: true}}[d.tokenKind]
			tokenFault.Times = 1 << 20
			rep.TokenOutageHours += int(tokenOut.to.Sub(tokenOut.from).Round(time.Hour) / time.Hour)
		}
		if !secretOut.on(now) && d.secretStart < 0.0008 {
			secretOut = window{now, now.Add([]time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour}[d.secretLen])}
			ops := [][]string{nil, nil, {secrets.OpAdd}, {secrets.OpLatest, secrets.OpGet}}[d.secretKind]
			r.store.outage(secrets.ErrUnavailable, secretOut.to, ops...)
			rep.SecretOutageHours += int(secretOut.to.Sub(secretOut.from).Round(time.Hour) / time.Hour)
		}
		if !workerDown.on(now) && d.workerStart < 0.00035 {
			workerDown = window{now, now.Add([]time.Duration{15 * time.Minute, 45 * time.Minute, 90 * time.Minute, 3 * time.Hour}[d.workerLen])}
			rep.WorkerDownHours += int(workerDown.to.Sub(workerDown.from).Round(time.Hour) / time.Hour)
		}
		r.gate.down.Store(workerDown.on(now))

		r.sim.ClearFaults()
		if tokenOut.on(now) {
			r.sim.InjectFault(fleetsim.EndpointToken, tokenFault)
		}
		fleetFault := false
		if !rateLimited.on(now) && d.rate < 0.00035 {
			ra := []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 5 * time.Hour, 6 * time.Hour}[d.rateLen]
			ep := []fleetsim.Endpoint{fleetsim.EndpointVehicles, fleetsim.EndpointVehicleData}[d.rateEP]
			r.sim.InjectFault(ep, fleetsim.Fault{Status: 429, RetryAfter: fmt.Sprint(int(ra / time.Second))})
			rateLimited = window{now, now.Add(ra + 15*time.Minute)}
			rep.RateLimits++
		} else if d.fleet < 0.006 {
			faults := []struct {
				ep fleetsim.Endpoint
				f  fleetsim.Fault
			}{
				{fleetsim.EndpointVehicles, fleetsim.Fault{Status: 500, Body: `{"response":null,"error":"internal error"}`}},
				{fleetsim.EndpointVehicleData, fleetsim.Fault{Status: 503, Body: `{"response":null,"error":"upstream internal error"}`}},
				{fleetsim.EndpointVehicleData, fleetsim.Fault{Status: 408, Body: `{"response":null,"error":"vehicle unavailable: vehicle is offline or asleep"}`}},
				{fleetsim.EndpointVehicleData, fleetsim.Fault{Status: 401, Body: `{"response":null,"error":"token expired (401)"}`}},
				{fleetsim.EndpointVehicles, fleetsim.Fault{Status: 401, Body: `{"response":null,"error":"token expired (401)"}`}},
			}
			f := faults[d.fleetKind]
			r.sim.InjectFault(f.ep, f.f)
			fleetFault = f.f.Status != 401 // a 401 is healed inside the tick
			rep.FleetFaults++
		}

		car, _ := r.sim.Car(vin)
		reachable := !tokenOut.on(now) && !secretOut.on(now) && !workerDown.on(now) && !rateLimited.on(now) &&
			!fleetFault && car.State == fleetsim.StateOnline

		// The tick, and during a deploy someone calling the old instance too.
		cyclesBefore, _ := r.gate.Calls("/run-cycle")
		wakes := r.wakes()
		var wg sync.WaitGroup
		if live := r.live(); len(live) > 1 && d.side < 0.3 {
			wg.Add(1)
			go func(in *instance) {
				defer wg.Done()
				postJSON(in.srv.URL+"/refresh-tokens", map[string]any{"reason": "deploy overlap"})
			}(live[0])
		}
		report, err := r.tick()
		wg.Wait()
		v, _ := vehicleReport(report)
		if err != nil {
			rep.FailedTicks++
		}
		cyclesAfter, _ := r.gate.Calls("/run-cycle")
		if r.wakes() > wakes && cyclesAfter == cyclesBefore {
			rep.ScoutWakes++
			fail("%s: the car was woken in a tick without a cycle", now.Format(time.RFC3339))
		}
		served := v.Action == scout.ActionTriggered && v.AtHome && v.Ready
		if v.BatteryLevel != nil && !(v.AtHome && v.Ready) {
			seenNotReady = now
		}
		if v.Action == scout.ActionTriggered {
			rep.Cycles++
		}

		// Arrivals: served by a cycle, missed, or out of reach.
		for j := next; j < len(arrivals) && !arrivals[j].at.After(now); j++ {
			a := &arrivals[j]
			if !a.classified {
				// A trip the scout never saw (it left and came back inside
				// an outage) looks like no change at all: nothing to trigger.
				a.classified = true
				if !a.departed.IsZero() && seenNotReady.Before(a.departed) && !served {
					a.done = true
					rep.HiddenArrivals++
				}
			}
			switch {
			case a.done:
			case served:
				a.done = true
			case !now.Before(a.leaves):
				a.done = true
				rep.UnservableArrivals++
			case reachable:
				a.reachable++
				if a.reachable >= 2 {
					a.done = true
					rep.MissedArrivals++
					fail("%s: arrival at %s not served after two reachable ticks (last: %s %s %s)",
						now.Format(time.RFC3339), a.at.Format(time.RFC3339), v.Action, v.Reason, v.Error)
				}
			}
		}
		for next < len(arrivals) && arrivals[next].done {
			next++
		}

		// The chain.
		dead := r.reapDead()
		rep.CrashesBeforeStore += dead
		if msg := r.lostRotation(false); msg != "" {
			rep.LostRotations++
			fail("%s: %s", now.Format(time.RFC3339), msg)
			if !r.recoverable() {
				rep.Relogins++
				r.relogin()
			}
		}
	}
	rep.CrashesBeforeStore -= rep.Kills
	rep.Ticks = ticks
	c := r.sim.Counters()
	rep.Refreshes = c.TokenExchanges[fleetsim.OutcomeRefreshOK] + c.TokenExchanges[fleetsim.OutcomeGraceReuse]
	rep.GraceReuses = c.TokenExchanges[fleetsim.OutcomeGraceReuse]
	rep.FleetBilledData = r.sim.BilledRequests(vin, fleetsim.CategoryData)
	rep.SecretVersionsAdded = r.versionCount() - versionsAtStart
	rep.ActiveVersionsAtEnd = r.mem.ActiveVersions("fleet-tokens")
	rep.WorkerInstances = r.nextID
	return rep, failures
}

// relogin is what a person does when the chain is dead: `fleetctl login`
// (a new chain, stored as a new version). The year goes on from there.
func (r *rig) relogin() {
	p := r.sim.Login()
	now := r.clock.Now()
	payload, err := tokens.Pair{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, ExpiresAt: p.ExpiresAt,
		RefreshTokenCreatedAt: now, UpdatedAt: now, Source: "login"}.Marshal()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.mem.Add(r.ctx, "fleet-tokens", payload); err != nil {
		r.t.Fatal(err)
	}
}

// weeklyRoutine scripts a year of one car's life from start (a Tuesday,
// 06:00 in Warsaw): commutes on weekdays with the odd evening errand, a
// shopping trip on Saturdays, Sundays at home; plugged in whenever it is
// home for the night, charging in the cheap window from 22:00. It returns
// the steps and every plug-in at home (an arrival the worker must serve).
func weeklyRoutine(rng *rand.Rand, start time.Time, days int, loc *time.Location) ([]fleetsim.TripStep, []arrival) {
	var steps []fleetsim.TripStep
	var plugIns []time.Time
	var unplugs []time.Time
	first := start.In(loc)
	at := func(day, hh, mm int) time.Time {
		return time.Date(first.Year(), first.Month(), first.Day()+day, hh, mm, 0, 0, loc)
	}
	add := func(t time.Time, note string, f func(*fleetsim.CarState)) {
		if t.Before(start) {
			return
		}
		steps = append(steps, fleetsim.TripStep{At: t.Sub(start), VIN: vin, Note: note, Apply: f})
	}
	online := func(f func(*fleetsim.CarState)) func(*fleetsim.CarState) {
		return func(c *fleetsim.CarState) { c.State = fleetsim.StateOnline; f(c) }
	}
	unplug := func(t time.Time) {
		unplugs = append(unplugs, t)
		add(t, "unplugged", online(func(c *fleetsim.CarState) {
			c.ConnChargeCable, c.ChargingState = fleetsim.CableUnplugged, fleetsim.ChargingDisconnected
		}))
	}
	drive := func(t time.Time, lat, lon float64) {
		add(t, "driving", online(func(c *fleetsim.CarState) { c.Latitude, c.Longitude = lat, lon }))
	}
	arriveAndPlug := func(t time.Time) {
		drive(t, devstack.Home.Lat, devstack.Home.Lon)
		plug := t.Add(time.Duration(5+rng.IntN(20)) * time.Minute)
		plugIns = append(plugIns, plug)
		add(plug, "plugged in at home", online(func(c *fleetsim.CarState) {
			c.ConnChargeCable, c.ChargingState = fleetsim.CableIEC, fleetsim.ChargingStopped
		}))
	}
	night := func(day int) {
		add(at(day, 22, 0), "charging", online(func(c *fleetsim.CarState) {
			if c.ConnChargeCable == fleetsim.CableIEC {
				c.ChargingState = fleetsim.ChargingCharging
			}
		}))
		add(at(day+1, 1, 15+rng.IntN(60)), "charged", func(c *fleetsim.CarState) {
			if c.ChargingState == fleetsim.ChargingCharging {
				c.ChargingState = fleetsim.ChargingComplete
			}
		})
	}
	mid := func(a, b float64) float64 { return (a + b) / 2 }
	for day := 0; day < days; day++ {
		switch at(day, 12, 0).Weekday() {
		case time.Saturday:
			out := at(day, 9+rng.IntN(3), rng.IntN(60))
			unplug(out)
			drive(out.Add(2*time.Minute), mid(devstack.Home.Lat, devstack.Work.Lat), devstack.Home.Lon+0.03)
			arriveAndPlug(out.Add(time.Duration(90+rng.IntN(120)) * time.Minute))
		case time.Sunday:
			// At home, plugged in, asleep most of the day.
		default:
			leave := at(day, 7, 15+rng.IntN(25))
			unplug(leave.Add(-10 * time.Minute))
			drive(leave, mid(devstack.Home.Lat, devstack.Work.Lat), mid(devstack.Home.Lon, devstack.Work.Lon))
			drive(leave.Add(30*time.Minute), devstack.Work.Lat, devstack.Work.Lon)
			back := at(day, 16, 20+rng.IntN(90))
			drive(back, mid(devstack.Home.Lat, devstack.Work.Lat), mid(devstack.Home.Lon, devstack.Work.Lon))
			home := back.Add(time.Duration(25+rng.IntN(20)) * time.Minute)
			arriveAndPlug(home)
			if rng.IntN(5) == 0 { // an evening errand
				out := at(day, 19, rng.IntN(40))
				unplug(out)
				drive(out.Add(5*time.Minute), devstack.Home.Lat+0.02, devstack.Home.Lon)
				arriveAndPlug(out.Add(time.Duration(40+rng.IntN(60)) * time.Minute))
			}
		}
		night(day)
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At < steps[j].At })
	sort.Slice(unplugs, func(i, j int) bool { return unplugs[i].Before(unplugs[j]) })
	arrivals := make([]arrival, 0, len(plugIns))
	for _, p := range plugIns {
		a := arrival{at: p, leaves: start.AddDate(0, 0, days+1)}
		k := sort.Search(len(unplugs), func(i int) bool { return unplugs[i].After(p) })
		if k < len(unplugs) {
			a.leaves = unplugs[k]
		}
		if k > 0 {
			a.departed = unplugs[k-1]
		}
		arrivals = append(arrivals, a)
	}
	sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].at.Before(arrivals[j].at) })
	return steps, arrivals
}
