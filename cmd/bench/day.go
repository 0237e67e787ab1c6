package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/devstack"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/geo"
	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

const dayTicks = 96

// dayCounts is one simulated day's bill of materials.
type dayCounts struct {
	fleetRequests int // every Fleet API request, billed or not
	billedData    int // vehicle_data answered below 500
	commands      int // billed commands
	wakes         int // billed wakes
	accesses      int // Secret Manager access operations
	versionsAdded int // fleet-tokens versions added
	activeAtEnd   int // active (not destroyed) versions of every secret at the end
}

// benchDay plays the scripted workday (devstack.WorkdaySteps) through our
// system and through a replay of the Python system's call pattern against
// the same simulator, and prices both.
func benchDay(ctx context.Context, b *bench) error {
	ours, standing, err := ourDay(ctx, filepath.Join(b.dir, "day"))
	if err != nil {
		return fmt.Errorf("our day: %w", err)
	}
	py, err := pythonDay(ctx, ours.commands, standing)
	if err != nil {
		return fmt.Errorf("python day: %w", err)
	}
	for _, d := range []struct {
		prefix, who string
		c           dayCounts
	}{{"", "ours", ours}, {"python_", "the Python system's call pattern, replayed", py}} {
		b.add(d.prefix+"daily_fleet_requests", float64(d.c.fleetRequests), "requests",
			fmt.Sprintf("%s: Fleet API requests in one simulated workday (96 ticks), billed or not", d.who))
		b.add(d.prefix+"daily_billed_data_requests", float64(d.c.billedData), "requests", d.who+": billed `vehicle_data` requests that day")
		b.add(d.prefix+"daily_secret_accesses", float64(d.c.accesses), "accesses", d.who+": Secret Manager access operations that day (a cold scout every tick)")
		b.add(d.prefix+"daily_secret_versions_added", float64(d.c.versionsAdded), "versions", d.who+": fleet-tokens versions added that day")
		b.add(d.prefix+"monthly_cost_usd", monthlyCost(d.c), "USD",
			d.who+": 30 such days at the published prices (Fleet API data, commands, wakes; Secret Manager versions and accesses beyond the free tier), before Tesla's $10 monthly credit")
	}
	b.note("%s", "Prices: Tesla Fleet API $1 per 500 data requests, $1 per 1,000 commands, $1 per 50 wakes, and a $10 monthly credit that is *not* subtracted above (with it, both patterns for one car cost nothing at Tesla); Secret Manager $0.06 per active version a month beyond 6 free, $0.03 per 10,000 accesses beyond 10,000 free a month, as published by Tesla and Google Cloud.")
	b.note("%s", "Not priced: `GET /api/1/vehicles` (whether Tesla bills it is unconfirmed; it is counted in `daily_fleet_requests`), and Cloud Run and Cloud Scheduler, assumed inside their free tiers (3 Scheduler jobs; Cloud Run's 2 million requests and 180,000 vCPU-seconds a month dwarf 96 short ticks a day).")
	b.note("%s", "The Python pattern is replayed by this benchmark against the same simulator and script, not switched on in the product: one secret read per (cold) tick, `vehicle_data` twice per online tick (`location_data`, then `charge_state`), a refresh when under 5 minutes are left that reads the token and the client registration and adds a version, keeping the newest 3; its cycles cost one secret read, one schedule read and the same commands as ours.")
	b.note("Active secret versions at the end of the day: ours %d, the Python pattern %d (the client id and secret count as one each; the Python system also keeps `tesla-refresh-token`).", ours.activeAtEnd, py.activeAtEnd)
	return nil
}

// monthlyCost prices 30 days like d.
func monthlyCost(d dayCounts) float64 {
	const days = 30
	fleetUSD := days * (float64(d.billedData)/500 + float64(d.commands)/1000 + float64(d.wakes)/50)
	versionsUSD := 0.06 * float64(max(0, d.activeAtEnd-6))
	accessUSD := 0.03 * float64(max(0, days*d.accesses-10000)) / 10000
	return float64(int64((fleetUSD+versionsUSD+accessUSD)*100+0.5)) / 100
}

// ourDay is devstack's scripted workday with Cloud Run's min-instances 0
// in mind: every tick reaches a cold scout instance (built afresh, nothing
// cached), calling the worker over HTTP. It also returns the schedules left
// on the car at the end (the standing ones).
func ourDay(ctx context.Context, dir string) (dayCounts, []fleetsim.ChargeSchedule, error) {
	st, mem, err := startStack(ctx, dir)
	if err != nil {
		return dayCounts{}, nil, err
	}
	defer st.Close()
	start := st.Clock.Now()
	st.Sim.RunScript(start, devstack.WorkdaySteps(devstack.VIN))
	_, firstVersion, err := st.StoredPair(ctx)
	if err != nil {
		return dayCounts{}, nil, err
	}
	fleetBefore, accBefore := st.Sim.Counters(), accesses(mem)
	for i := 0; i < dayTicks; i++ {
		app, err := scout.Build(ctx, st.Scout.Config, scout.Options{Clock: st.Clock, Secrets: st.Secrets, Version: "bench"})
		if err != nil {
			return dayCounts{}, nil, err
		}
		_, terr := app.Scout.Tick(ctx)
		_ = app.Close()
		if terr != nil {
			return dayCounts{}, nil, fmt.Errorf("tick %d: %w", i, terr)
		}
		st.Clock.Advance(15 * time.Minute)
		st.Sim.Tick()
	}
	after := st.Sim.Counters()
	_, lastVersion, err := st.StoredPair(ctx)
	if err != nil {
		return dayCounts{}, nil, err
	}
	return dayCounts{
		fleetRequests: fleetTotal(after) - fleetTotal(fleetBefore),
		billedData:    dataTotal(after.Billed) - dataTotal(fleetBefore.Billed),
		commands:      after.Billed[devstack.VIN][fleetsim.CategoryCommand] - fleetBefore.Billed[devstack.VIN][fleetsim.CategoryCommand],
		wakes:         after.Billed[devstack.VIN][fleetsim.CategoryWake] - fleetBefore.Billed[devstack.VIN][fleetsim.CategoryWake],
		accesses:      accesses(mem) - accBefore,
		versionsAdded: atoi(lastVersion) - atoi(firstVersion),
		activeAtEnd:   activeVersions(mem, "fleet-tokens", "tesla-client-id", "tesla-client-secret", "tesla-refresh-token"),
	}, st.Sim.Schedules(devstack.VIN), nil
}

func activeVersions(m *secrets.Memory, names ...string) int {
	n := 0
	for _, s := range names {
		n += m.ActiveVersions(s)
	}
	return n
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// staticToken hands the fleet client whatever token the replay holds.
type staticToken struct{ token *string }

func (s staticToken) AccessToken(context.Context) (string, error) { return *s.token, nil }

// pythonDay replays the Python system's call pattern (python-system.md)
// for the same scripted day against a fresh simulator with the same car.
// commands are the charge-schedule commands our cycles sent: both systems
// reconcile by content, so the Python cycles are charged the same. The
// replayed car carries standing, the schedules ours had at the end of the
// day, so it charges in the same hours and is awake in the same ticks (it
// charges by itself: with none it would charge at the evening's plug-in).
func pythonDay(ctx context.Context, commands int, standing []fleetsim.ChargeSchedule) (dayCounts, error) {
	r, err := startPythonReplay(ctx, standing)
	if err != nil {
		return dayCounts{}, err
	}
	defer r.sim.Close()
	accBefore, before := accesses(r.mem), r.sim.Counters()
	for i := 0; i < dayTicks; i++ {
		if err := r.tick(ctx); err != nil {
			return dayCounts{}, err
		}
		r.clk.Advance(15 * time.Minute)
		r.sim.Tick()
	}
	after := r.sim.Counters()
	return dayCounts{
		fleetRequests: fleetTotal(after) - fleetTotal(before),
		billedData:    dataTotal(after.Billed) - dataTotal(before.Billed),
		commands:      commands,
		accesses:      accesses(r.mem) - accBefore,
		versionsAdded: r.versionsAdded,
		activeAtEnd:   activeVersions(r.mem, "fleet-tokens", "tesla-client-id", "tesla-client-secret", "tesla-refresh-token"),
	}, nil
}

// pythonReplay is the Python system's side of the comparison: its own
// simulator and secret store, the token its functions hold, and what its
// scout remembered of the car.
type pythonReplay struct {
	clk           *clock.Manual
	sim           *fleetsim.Sim
	simURL        string
	mem           *secrets.Memory
	client        *fleet.Client
	token         string
	home          geo.Home
	prev          *patrol.Record
	versionsAdded int
}

// startPythonReplay starts the simulator with the scripted car (carrying
// standing) and stores a fresh login the way the Python system kept it.
func startPythonReplay(ctx context.Context, standing []fleetsim.ChargeSchedule) (*pythonReplay, error) {
	clk := clock.NewManual(devstack.StoryStart)
	sim := fleetsim.New(fleetsim.Options{Clock: clk})
	simURL, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &pythonReplay{clk: clk, sim: sim, simURL: simURL, mem: secrets.NewMemory(clk),
		home: geo.Home{Lat: devstack.Home.Lat, Lon: devstack.Home.Lon, RadiusM: 100}}
	if err := r.setUp(ctx, standing); err != nil {
		_ = sim.Close()
		return nil, err
	}
	return r, nil
}

func (r *pythonReplay) setUp(ctx context.Context, standing []fleetsim.ChargeSchedule) error {
	r.sim.AddCar(fleetsim.CarState{VIN: devstack.VIN, State: fleetsim.StateOnline, Latitude: devstack.Home.Lat, Longitude: devstack.Home.Lon,
		BatteryLevel: 64, ChargingState: fleetsim.ChargingDisconnected, ConnChargeCable: fleetsim.CableUnplugged, ChargeLimitSOC: 80})
	for _, s := range standing {
		if err := r.sim.AddSchedule(devstack.VIN, s); err != nil {
			return err
		}
	}
	r.sim.RunScript(r.clk.Now(), devstack.WorkdaySteps(devstack.VIN))
	login := r.sim.Login()
	pair := tokens.Pair{AccessToken: login.AccessToken, RefreshToken: login.RefreshToken, ExpiresAt: login.ExpiresAt}
	for name, v := range map[string]string{"tesla-client-id": fleetsim.DefaultClientID, "tesla-client-secret": fleetsim.DefaultClientSecret,
		"tesla-refresh-token": login.RefreshToken} {
		if _, err := r.mem.Add(ctx, name, []byte(v)); err != nil {
			return err
		}
	}
	if err := addPair(ctx, r.mem, pair); err != nil {
		return err
	}
	r.token = pair.AccessToken
	r.client = fleet.New(r.simURL, staticToken{&r.token}, fleet.WithClock(r.clk))
	return nil
}

// tick is one scheduler tick of the Python system: a cold function reads
// the token pair (and has it refreshed when under 5 minutes are left),
// lists the cars, and reads the car when it is online.
func (r *pythonReplay) tick(ctx context.Context) error {
	now := r.clk.Now()
	v, err := r.mem.Latest(ctx, "fleet-tokens")
	if err != nil {
		return err
	}
	cur, err := tokens.ParsePair(v.Payload)
	if err != nil {
		return err
	}
	if cur.ExpiresAt.Sub(now) < 5*time.Minute {
		if cur, err = r.refresh(ctx, cur, now); err != nil {
			return err
		}
	}
	r.token = cur.AccessToken
	online, err := r.online(ctx)
	if err != nil || !online {
		return err
	}
	return r.observe(ctx, now)
}

// refresh is the scout asking the worker, which reads the pair and the
// client registration, refreshes, adds a version and keeps the newest 3;
// then the scout reads the pair again.
func (r *pythonReplay) refresh(ctx context.Context, cur tokens.Pair, now time.Time) (tokens.Pair, error) {
	for _, name := range []string{"fleet-tokens", "tesla-client-id", "tesla-client-secret"} {
		if _, err := r.mem.Latest(ctx, name); err != nil {
			return tokens.Pair{}, err
		}
	}
	next, err := pythonRefresh(ctx, r.simURL, cur.RefreshToken, now)
	if err != nil {
		return tokens.Pair{}, err
	}
	if err := addPair(ctx, r.mem, next); err != nil {
		return tokens.Pair{}, err
	}
	r.versionsAdded++
	if err := keepNewest(ctx, r.mem, "fleet-tokens", 3); err != nil {
		return tokens.Pair{}, err
	}
	if _, err := r.mem.Latest(ctx, "fleet-tokens"); err != nil {
		return tokens.Pair{}, err
	}
	return next, nil
}

// online lists the account's cars: is the scripted one online?
func (r *pythonReplay) online(ctx context.Context) (bool, error) {
	list, err := r.client.Vehicles(ctx)
	if err != nil {
		return false, err
	}
	online := false
	for _, car := range list {
		online = online || (car.VIN == devstack.VIN && car.State == fleet.StateOnline)
	}
	return online, nil
}

// observe reads the online car twice (location_data, then charge_state),
// applies our rules to what it saw, and on a trigger replays the worker's
// cycle: one read of the pair and one of the car's schedules.
func (r *pythonReplay) observe(ctx context.Context, now time.Time) error {
	loc, err1 := r.client.VehicleData(ctx, devstack.VIN, fleet.EndpointLocationData)
	chg, err2 := r.client.VehicleData(ctx, devstack.VIN, fleet.EndpointChargeState)
	if err := errors.Join(err1, err2); err != nil && !errors.Is(err, fleet.ErrAsleep) {
		return err
	}
	loc.Charge = chg.Charge
	obs := patrol.Classify(scout.ReadingFrom(loc), r.home)
	if patrol.Decide(r.prev, obs, now, 6*time.Hour).Kind == patrol.DecideTrigger {
		if _, err := r.mem.Latest(ctx, "fleet-tokens"); err != nil {
			return err
		}
		if _, err := r.client.VehicleData(ctx, devstack.VIN, fleet.EndpointChargeScheduleData); err != nil && !errors.Is(err, fleet.ErrAsleep) {
			return err
		}
	}
	r.prev = &patrol.Record{VIN: devstack.VIN, HasData: true, State: fleet.StateOnline, AtHome: obs.AtHome, Ready: obs.Ready}
	return nil
}

func addPair(ctx context.Context, m *secrets.Memory, p tokens.Pair) error {
	payload, err := p.Marshal()
	if err != nil {
		return err
	}
	_, err = m.Add(ctx, "fleet-tokens", payload)
	return err
}

// keepNewest destroys every version but the newest n, as the Python
// system's pruning does.
func keepNewest(ctx context.Context, m *secrets.Memory, secret string, n int) error {
	versions, err := m.Versions(ctx, secret)
	if err != nil {
		return err
	}
	for i, v := range versions {
		if i >= n {
			if err := m.Destroy(ctx, secret, v.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// pythonRefresh is the Python worker's refresh: the form post with the
// client secret, straight to the token endpoint.
func pythonRefresh(ctx context.Context, simURL, refreshToken string, now time.Time) (tokens.Pair, error) {
	ex := &tokens.Exchanger{TokenURL: simURL + "/oauth2/v3/token", HTTPClient: &http.Client{Timeout: 10 * time.Second}}
	iss, err := ex.Refresh(ctx, tokens.Client{ID: fleetsim.DefaultClientID, Secret: fleetsim.DefaultClientSecret}, refreshToken)
	if err != nil {
		return tokens.Pair{}, err
	}
	return tokens.Pair{AccessToken: iss.AccessToken, RefreshToken: iss.RefreshToken, ExpiresAt: now.Add(iss.ExpiresIn),
		RefreshTokenCreatedAt: now}, nil
}
