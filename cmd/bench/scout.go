package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/devstack"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

const (
	fleetLatency  = 50 * time.Millisecond
	overheadTicks = 21
	onlineCars    = 3
)

// extraVINs are the bench's second and third car.
var extraVINs = []string{"5YJ3E7EB0KF000002", "5YJ3E7EB0KF000003"}

// startStack runs devstack with a memory secret store (so accesses can be
// counted) and a seeded token chain.
func startStack(ctx context.Context, dir string) (*devstack.Stack, *secrets.Memory, error) {
	clk := clock.NewManual(devstack.StoryStart)
	mem := secrets.NewMemory(clk)
	st, err := devstack.Start(ctx, devstack.Options{Dir: dir, Clock: clk, Secrets: mem})
	if err != nil {
		return nil, nil, err
	}
	if err := st.SeedTokens(ctx); err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return st, mem, nil
}

func fleetTotal(c fleetsim.Counters) int {
	n := 0
	for _, byKind := range c.Fleet {
		for _, k := range byKind {
			n += k
		}
	}
	return n
}

func dataTotal(c map[string]map[string]int) int {
	n := 0
	for _, byKind := range c {
		n += byKind[fleetsim.CategoryData]
	}
	return n
}

func accesses(m *secrets.Memory) int { return m.Calls(secrets.OpLatest) + m.Calls(secrets.OpGet) }

// benchScoutTick counts what one scout tick costs (Cloud Scheduler's POST
// /tick over HTTP, the real scout, worker and simulator on loopback) and
// how much time the scout adds to the Fleet API's own latency.
func benchScoutTick(ctx context.Context, b *bench) error {
	st, mem, err := startStack(ctx, filepath.Join(b.dir, "tick"))
	if err != nil {
		return err
	}
	defer st.Close()
	for _, v := range extraVINs {
		st.Sim.AddCar(fleetsim.CarState{VIN: v, Latitude: devstack.Work.Lat, Longitude: devstack.Work.Lon, BatteryLevel: 50})
	}
	tick := func(state string) error {
		st.Clock.Advance(15 * time.Minute)
		for _, v := range append([]string{devstack.VIN}, extraVINs...) {
			if err := st.SetCar(v, func(c *fleetsim.CarState) { c.State = state }); err != nil {
				return err
			}
		}
		res, err := st.Tick(ctx)
		if err == nil && res.Status != 200 {
			err = fmt.Errorf("tick answered %d: %s", res.Status, res.Raw)
		}
		return err
	}
	// First sightings trigger cycles; the ticks after them are the steady state.
	for i := 0; i < 2; i++ {
		if err := tick(fleetsim.StateOnline); err != nil {
			return err
		}
	}

	before, reads := st.Sim.Counters(), accesses(mem)
	if err := tick(fleetsim.StateAsleep); err != nil {
		return err
	}
	after := st.Sim.Counters()
	b.add("scout_tick_fleet_requests_asleep", float64(fleetTotal(after)-fleetTotal(before)), "requests",
		fmt.Sprintf("Fleet API requests of one tick with all %d cars asleep: the account's vehicle list only, nothing billed as data, no wake", onlineCars))
	asleepReads := accesses(mem) - reads

	before, reads = st.Sim.Counters(), accesses(mem)
	if err := tick(fleetsim.StateOnline); err != nil {
		return err
	}
	after = st.Sim.Counters()
	b.add("scout_tick_data_requests_online", float64(dataTotal(after.Billed)-dataTotal(before.Billed))/onlineCars, "requests/car",
		"billed `vehicle_data` requests per online car per tick: one call with `location_data;charge_state`")
	b.add("scout_tick_secret_reads_warm", float64(accesses(mem)-reads+asleepReads), "reads",
		"Secret Manager accesses of two ticks on a warm scout instance (the access token is cached while valid)")

	// Overhead: the tick's time minus the Fleet API's injected latency.
	st.Sim.SetLatency(fleetsim.EndpointAllFleet, fleetLatency)
	var overheads []time.Duration
	for i := 0; i < overheadTicks; i++ {
		n := fleetTotal(st.Sim.Counters())
		start := time.Now()
		if err := tick(fleetsim.StateOnline); err != nil {
			return err
		}
		d := time.Since(start)
		calls := fleetTotal(st.Sim.Counters()) - n
		overheads = append(overheads, d-time.Duration(calls)*fleetLatency)
	}
	b.add("scout_tick_overhead_ms", ms(median(overheads)), "ms",
		fmt.Sprintf("median time of a tick (%d online cars, steady state, over HTTP, file state store) minus the injected %s per Fleet call", onlineCars, fleetLatency))
	return nil
}
