package scout_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"go.uber.org/zap"
	"google.golang.org/api/option"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/devstack"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/geo"
	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
	"github.com/offpeak-charging/offpeak/internal/state/gcsstate"
)

var t0 = time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC) // 17:00 in Warsaw

func startStack(t *testing.T, opts devstack.Options) *devstack.Stack {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = clock.NewManual(t0)
	}
	opts.Dir = t.TempDir()
	st, err := devstack.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.SeedTokens(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

func tick(t *testing.T, st *devstack.Stack) patrol.VehicleReport {
	t.Helper()
	res, err := st.Tick(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK || len(res.Body.Vehicles) != 1 {
		t.Fatalf("tick: %d %s", res.Status, res.Raw)
	}
	return res.Body.Vehicles[0]
}

func setCar(t *testing.T, st *devstack.Stack, f func(*fleetsim.CarState)) {
	t.Helper()
	if err := st.SetCar(devstack.VIN, f); err != nil {
		t.Fatal(err)
	}
}

func plugInAtHome(c *fleetsim.CarState) {
	c.State, c.Latitude, c.Longitude = fleetsim.StateOnline, devstack.Home.Lat, devstack.Home.Lon
	c.ConnChargeCable, c.ChargingState = fleetsim.CableIEC, fleetsim.ChargingStopped
}

func TestTriggersFollowTheRules(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{})
	ctx := context.Background()

	// First sight: trigger.
	if r := tick(t, st); r.Action != patrol.ActionTriggered || r.Reason != patrol.ReasonFirstSeen {
		t.Fatalf("first tick = %+v", r)
	}
	// Nothing changed: nothing.
	st.Clock.Advance(5 * time.Minute)
	if r := tick(t, st); r.Action != patrol.ActionNone {
		t.Fatalf("second tick = %+v", r)
	}
	// Plugged in at home: trigger, and the worker put schedules on the car.
	setCar(t, st, plugInAtHome)
	if r := tick(t, st); r.Action != patrol.ActionTriggered || r.Reason != patrol.ReasonArrivedHomeReady || !r.AtHome || !r.Ready {
		t.Fatalf("plug-in tick = %+v", r)
	}
	if n := len(st.Sim.Schedules(devstack.VIN)); n == 0 {
		t.Error("the charging cycle should have added a schedule")
	}
	// Still plugged: nothing.
	st.Clock.Advance(5 * time.Minute)
	if r := tick(t, st); r.Action != patrol.ActionNone {
		t.Fatalf("still plugged = %+v", r)
	}
	// Unplugged at home: trigger.
	setCar(t, st, func(c *fleetsim.CarState) {
		c.State, c.ConnChargeCable, c.ChargingState = fleetsim.StateOnline, fleetsim.CableUnplugged, fleetsim.ChargingDisconnected
	})
	if r := tick(t, st); r.Action != patrol.ActionTriggered || r.Reason != patrol.ReasonUnpluggedAtHome {
		t.Fatalf("unplug tick = %+v", r)
	}
	if n := st.Sim.Counters().Fleet[devstack.VIN]["wake"]; n != 0 {
		t.Errorf("wakes = %d, the car was awake throughout", n)
	}
	_ = ctx
}

func TestAsleepCarCostsNoDataRequestAndIsNeverWoken(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{})
	tick(t, st) // first sight while online
	setCar(t, st, func(c *fleetsim.CarState) { c.State = fleetsim.StateAsleep })
	st.Sim.ResetCounters()
	for i := 0; i < 8; i++ {
		st.Clock.Advance(15 * time.Minute)
		if r := tick(t, st); r.Action != patrol.ActionAsleep || r.State != fleetsim.StateAsleep {
			t.Fatalf("tick %d = %+v", i, r)
		}
	}
	c := st.Sim.Counters().Fleet[devstack.VIN]
	if c["data"] != 0 || c["wake"] != 0 || c["command"] != 0 {
		t.Errorf("asleep car: %v, want no data, wake or command request", c)
	}
	if n := st.Sim.Counters().Fleet[""]["other"]; n != 8 {
		t.Errorf("vehicle list calls = %d, want one per tick (8)", n)
	}
}

func TestOneDataRequestPerOnlineCarPerTick(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{Sim: fleetsim.Options{SleepAfter: 24 * time.Hour}})
	tick(t, st)
	st.Sim.ResetCounters()
	for i := 0; i < 10; i++ {
		st.Clock.Advance(15 * time.Minute)
		tick(t, st)
	}
	c := st.Sim.Counters().Fleet[devstack.VIN]
	if c["data"] != 10 {
		t.Errorf("data requests = %d over 10 ticks, want 10", c["data"])
	}
}

func TestWarmTicksReadNoSecret(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{})
	tick(t, st)
	reads, _ := st.Scout.Tokens.Counts()
	for i := 0; i < 5; i++ {
		st.Clock.Advance(10 * time.Minute)
		tick(t, st)
	}
	after, refreshes := st.Scout.Tokens.Counts()
	if after != reads {
		t.Errorf("secret reads grew from %d to %d while the cached token was valid", reads, after)
	}
	if refreshes != 0 {
		t.Errorf("refresh calls = %d, want 0", refreshes)
	}
}

func TestExpiringTokenIsRefreshedByTheWorker(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{})
	tick(t, st)
	st.Clock.Advance(7*time.Hour + 45*time.Minute) // inside the 30 min margin of the 8 h token
	r := tick(t, st)
	if r.Action == patrol.ActionError {
		t.Fatalf("tick after expiry: %+v", r)
	}
	if n := st.Sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != 1 {
		t.Errorf("token exchanges = %d, want exactly 1 (by the worker)", n)
	}
	if _, refreshes := st.Scout.Tokens.Counts(); refreshes != 1 {
		t.Errorf("scout asked the worker %d times, want 1", refreshes)
	}
	p, _, err := st.StoredPair(context.Background())
	if err != nil || !st.Sim.RefreshTokenAccepted(p.RefreshToken) {
		t.Errorf("stored chain not valid after the refresh: %v", err)
	}
}

func TestFleet401RereadsTheTokenAndRetriesOnce(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{Sim: fleetsim.Options{RevokeAccessOnRotate: true}})
	tick(t, st) // caches the access token
	// The worker rotates (e.g. an operator's forced refresh): Tesla revokes
	// the access token the scout holds.
	if status, body, err := st.RefreshTokens(context.Background(), true); err != nil || status != 200 {
		t.Fatalf("forced refresh: %d %s %v", status, body, err)
	}
	exchanges := st.Sim.TokenExchanges(fleetsim.OutcomeRefreshOK)
	st.Clock.Advance(time.Minute)
	if r := tick(t, st); r.Action == patrol.ActionError {
		t.Fatalf("tick after revocation: %+v", r)
	}
	if n := st.Sim.Counters().Unauthorized; n != 1 {
		t.Errorf("401s = %d, want exactly 1 before the re-read", n)
	}
	if n := st.Sim.TokenExchanges(fleetsim.OutcomeRefreshOK); n != exchanges {
		t.Errorf("the re-read found the new token; no extra exchange expected (%d → %d)", exchanges, n)
	}
}

func TestWorkerDownKeepsTheTriggerPendingUntilItIsBack(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{Sim: fleetsim.Options{SleepAfter: 24 * time.Hour}})
	tick(t, st)
	st.SetWorkerDown(true)
	setCar(t, st, plugInAtHome)
	for i := 0; i < 3; i++ {
		st.Clock.Advance(15 * time.Minute)
		if r := tick(t, st); r.Action != patrol.ActionPending || r.Reason != patrol.ReasonArrivedHomeReady {
			t.Fatalf("tick %d with the worker down = %+v", i, r)
		}
	}
	st.SetWorkerDown(false)
	st.Clock.Advance(15 * time.Minute)
	if r := tick(t, st); r.Action != patrol.ActionTriggered || r.Reason != patrol.ReasonArrivedHomeReady {
		t.Fatalf("tick with the worker back = %+v", r)
	}
	st.Clock.Advance(15 * time.Minute)
	if r := tick(t, st); r.Action != patrol.ActionNone {
		t.Fatalf("after the confirmed trigger = %+v", r)
	}
}

func TestPendingTriggerIsDroppedAfterSixHours(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{Sim: fleetsim.Options{SleepAfter: 48 * time.Hour, AccessTokenTTL: 48 * time.Hour}})
	tick(t, st)
	st.SetWorkerDown(true)
	setCar(t, st, plugInAtHome)
	st.Clock.Advance(time.Minute)
	if r := tick(t, st); r.Action != patrol.ActionPending {
		t.Fatalf("first failure = %+v", r)
	}
	st.Clock.Advance(6*time.Hour + time.Minute)
	if r := tick(t, st); r.Action != patrol.ActionNone {
		t.Fatalf("after 6 h = %+v, want the pending trigger dropped", r)
	}
	st.SetWorkerDown(false)
	st.Clock.Advance(15 * time.Minute)
	calls := st.WorkerCalls()
	if r := tick(t, st); r.Action != patrol.ActionNone || st.WorkerCalls() != calls {
		t.Fatalf("a dropped trigger must not come back: %+v", r)
	}
}

func TestFleetRateLimitIsRemembered(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{Env: map[string]string{"VEHICLE_VINS": devstack.VIN}, Sim: fleetsim.Options{SleepAfter: 24 * time.Hour}})
	tick(t, st)
	st.Sim.InjectFault(fleetsim.EndpointVehicle, fleetsim.Fault{Status: 429, RetryAfter: "3600", Times: 1})
	st.Clock.Advance(15 * time.Minute)
	// The only car could not be observed: the tick fails so Scheduler sees it.
	if res, _ := st.Tick(context.Background()); res.Status != http.StatusServiceUnavailable || !strings.Contains(string(res.Raw), "429") {
		t.Fatalf("429 tick = %d %s", res.Status, res.Raw)
	}
	st.Sim.ResetCounters()
	st.Clock.Advance(15 * time.Minute)
	if res, _ := st.Tick(context.Background()); res.Status != http.StatusServiceUnavailable || !strings.Contains(string(res.Raw), "rate limited") {
		t.Fatalf("inside Retry-After = %d %s", res.Status, res.Raw)
	}
	if n := st.Sim.FleetRequests(devstack.VIN, fleetsim.CategoryOther) + st.Sim.FleetRequests(devstack.VIN, fleetsim.CategoryData); n != 0 {
		t.Errorf("requests inside Retry-After = %d, want 0", n)
	}
	st.Clock.Advance(time.Hour)
	if r := tick(t, st); r.Action == patrol.ActionError {
		t.Fatalf("after Retry-After = %+v", r)
	}
}

func TestWrongRegionNamesTheSetting(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{})
	st.Sim.InjectFault(fleetsim.EndpointVehicles, fleetsim.Fault{Status: 421, Times: 1})
	res, err := st.Tick(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusServiceUnavailable || !strings.Contains(string(res.Raw), "TESLA_FLEET_API_URL") {
		t.Errorf("421 answer = %d %s", res.Status, res.Raw)
	}
}

// Two overlapping ticks on GCS state: the generation match lets only one
// record the transition, so the worker is called once.
func TestConcurrentTicksOnGCSTriggerOnce(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{Sim: fleetsim.Options{SleepAfter: 24 * time.Hour}})
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Host: "127.0.0.1", Port: 0, Scheme: "http"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "scout-state"})
	newScout := func() *patrol.Patrol {
		client, err := storage.NewClient(context.Background(), option.WithEndpoint(srv.URL()+"/storage/v1/"), option.WithoutAuthentication(), storage.WithJSONReads())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		gcs := gcsstate.New(client, "scout-state", "")
		wc := &scout.WorkerClient{BaseURL: st.WorkerURL, HTTP: &http.Client{Transport: bearer{}}}
		tc := scout.NewTokenCache(st.Secrets, "fleet-tokens", wc, st.Clock, 30*time.Minute, zap.NewNop())
		fc := fleet.New(st.SimURL, tc)
		return scout.New(fc, tc, wc, gcs, st.Clock, patrol.Settings{
			Home: geo.Home{Lat: devstack.Home.Lat, Lon: devstack.Home.Lon, RadiusM: 100}, VINs: []string{devstack.VIN},
		}, zap.NewNop())
	}
	a, b := newScout(), newScout()
	for round, mutate := range []func(*fleetsim.CarState){nil, plugInAtHome} {
		if mutate != nil {
			setCar(t, st, mutate)
		}
		st.Clock.Advance(15 * time.Minute)
		before := st.Sim.Counters().Fleet[devstack.VIN]["data"]
		var wg sync.WaitGroup
		reports := make([]patrol.Report, 2)
		for i, s := range []*patrol.Patrol{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reports[i], _ = s.Tick(context.Background())
			}()
		}
		wg.Wait()
		triggered := 0
		for _, r := range reports {
			for _, v := range r.Vehicles {
				if v.Action == patrol.ActionTriggered {
					triggered++
				}
			}
		}
		if triggered != 1 {
			t.Errorf("round %d: %d ticks triggered (%+v), want exactly 1", round, triggered, reports)
		}
		// Two scout reads plus exactly one cycle read by the worker.
		if n := st.Sim.Counters().Fleet[devstack.VIN]["data"] - before; n != 3 {
			t.Errorf("round %d: %d data requests, want 3 (two ticks, one cycle)", round, n)
		}
	}
}

type bearer struct{}

func (bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+devstack.AuthToken)
	return http.DefaultTransport.RoundTrip(r)
}

func TestAccountLevelRateLimitSkipsTicks(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{})
	st.Sim.InjectFault(fleetsim.EndpointVehicles, fleetsim.Fault{Status: 429, RetryAfter: "1800", Times: 1})
	res, err := st.Tick(context.Background())
	if err != nil || res.Status != http.StatusServiceUnavailable {
		t.Fatalf("429 on the list: %d %s %v", res.Status, res.Raw, err)
	}
	st.Sim.ResetCounters()
	st.Clock.Advance(15 * time.Minute)
	if res, _ := st.Tick(context.Background()); res.Status != http.StatusServiceUnavailable {
		t.Errorf("inside Retry-After: %d %s", res.Status, res.Raw)
	}
	if n := st.Sim.Counters().Fleet[""]["other"]; n != 0 {
		t.Errorf("Fleet requests inside Retry-After = %d, want 0", n)
	}
	st.Clock.Advance(20 * time.Minute)
	if res, _ := st.Tick(context.Background()); res.Status != http.StatusOK {
		t.Errorf("after Retry-After: %d %s", res.Status, res.Raw)
	}
}

// A car whose key is not paired: the worker refuses with key_not_paired (no
// Retry-After); the scout keeps the trigger for a few ticks, in case the owner
// pairs meanwhile, then drops it instead of retrying every tick for hours.
func TestUnpairedKeyStopsRetryingAfterAFewTries(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{})
	if err := st.Sim.UnpairKey(devstack.VIN, st.Key.Public); err != nil {
		t.Fatal(err)
	}
	setCar(t, st, func(c *fleetsim.CarState) { plugInAtHome(c); c.BatteryLevel = 40 })
	tries := 0
	for i := range 8 {
		r := tick(t, st)
		if r.Action == patrol.ActionPending && strings.Contains(r.Error, "key_not_paired") {
			tries++
		} else if i < patrol.MaxOperatorFailures {
			t.Fatalf("tick %d: %+v, want a pending trigger refused for the key", i, r)
		}
		st.Clock.Advance(5 * time.Minute) // the car stays awake and plugged in
		setCar(t, st, func(c *fleetsim.CarState) { c.State = fleetsim.StateOnline })
	}
	if tries != patrol.MaxOperatorFailures {
		t.Errorf("the worker was asked %d times, want %d", tries, patrol.MaxOperatorFailures)
	}
	if c := st.Sim.SignedRequests(devstack.VIN); c.Handshakes != patrol.MaxOperatorFailures || c.Commands != 0 {
		t.Errorf("car saw %+v", c)
	}
	// Paired, the next arrival works as usual.
	if err := st.Sim.PairKey(devstack.VIN, st.Key.Public); err != nil {
		t.Fatal(err)
	}
	setCar(t, st, func(c *fleetsim.CarState) {
		c.ConnChargeCable, c.ChargingState = fleetsim.CableUnplugged, fleetsim.ChargingDisconnected
	})
	tick(t, st)
	st.Clock.Advance(5 * time.Minute)
	setCar(t, st, plugInAtHome)
	if r := tick(t, st); r.Action != patrol.ActionTriggered || r.Reason != patrol.ReasonArrivedHomeReady {
		t.Errorf("after pairing: %+v", r)
	}
	if len(st.Sim.Schedules(devstack.VIN)) == 0 {
		t.Error("no schedules after pairing")
	}
}

// TestCarWithoutPositionIsUnknownNotAway: a login without the
// vehicle_location scope gets cars with no position at all (Tesla leaves
// drive_state out). The scout says so and keeps its last answer instead of
// calling the car away, and the worker's answer names the fix.
func TestCarWithoutPositionIsUnknownNotAway(t *testing.T) {
	t.Parallel()
	st := startStack(t, devstack.Options{LoginScope: "openid offline_access user_data vehicle_device_data vehicle_cmds vehicle_charging_cmds"})
	setCar(t, st, plugInAtHome)
	r := tick(t, st)
	if !r.LocationMissing || r.AtHome || r.Action != patrol.ActionTriggered || r.Reason != patrol.ReasonFirstSeen {
		t.Fatalf("first tick = %+v, want a first-seen trigger with location_missing", r)
	}
	status, body, err := st.RunCycle(context.Background(), devstack.VIN)
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		LocationMissing bool   `json:"location_missing"`
		AtHome          bool   `json:"at_home"`
		Note            string `json:"note"`
		Plan            []any  `json:"plan"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || status != http.StatusOK {
		t.Fatalf("run-cycle: %d %s (%v)", status, body, err)
	}
	if !ans.LocationMissing || ans.AtHome || len(ans.Plan) != 0 || !strings.Contains(ans.Note, "vehicle_location") {
		t.Fatalf("run-cycle answer %s: want location_missing and a note naming the scope", body)
	}
	// The next tick has nothing new to tell: no invented departure.
	st.Clock.Advance(5 * time.Minute)
	if r := tick(t, st); r.Action != patrol.ActionNone || !r.LocationMissing {
		t.Fatalf("second tick = %+v, want nothing", r)
	}
}
