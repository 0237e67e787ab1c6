package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/offpeak-charging/offpeak/internal/devstack"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

// benchSignedCycle counts the signed_command requests of a charging cycle
// that sends two schedules, first with no session (a new car, or a new
// key) and then with the session the first one left in the state store.
// Each request is billed (developer.tesla.com billing-and-limits), so the
// warm cycle must cost exactly one request per command.
func benchSignedCycle(ctx context.Context, b *bench) error {
	st, _, err := startStack(ctx, filepath.Join(b.dir, "signed"))
	if err != nil {
		return err
	}
	defer st.Close()
	// Noon in Warsaw: the plan takes the 13:00–15:00 window and the night's.
	st.Clock.Advance(6 * time.Hour)
	cycle := func(battery int) (requests, commands int, err error) {
		if err := st.SetCar(devstack.VIN, func(c *fleetsim.CarState) {
			c.State, c.Latitude, c.Longitude = fleetsim.StateOnline, devstack.Home.Lat, devstack.Home.Lon
			c.ConnChargeCable, c.ChargingState, c.BatteryLevel = fleetsim.CableIEC, fleetsim.ChargingStopped, battery
		}); err != nil {
			return 0, 0, err
		}
		before := st.Sim.SignedRequests(devstack.VIN)
		status, body, err := st.RunCycle(ctx, devstack.VIN)
		if err != nil {
			return 0, 0, err
		}
		if status != 200 {
			return 0, 0, fmt.Errorf("run-cycle answered %d: %s", status, body)
		}
		after := st.Sim.SignedRequests(devstack.VIN)
		commands = after.Commands - before.Commands
		return commands + after.Handshakes - before.Handshakes, commands, nil
	}
	coldReq, coldCmd, err := cycle(40)
	if err != nil {
		return err
	}
	// Lower: a new plan, so the warm cycle sends commands too (our two
	// stale schedules go, two new ones come).
	warmReq, warmCmd, err := cycle(30)
	if err != nil {
		return err
	}
	b.add("cycle_signed_requests_cold", float64(coldReq), "requests",
		fmt.Sprintf("signed_command POSTs of a first cycle that sends %d schedule commands (one handshake, infotainment only)", coldCmd))
	b.add("cycle_signed_requests_warm", float64(warmReq), "requests",
		fmt.Sprintf("signed_command POSTs of the next cycle, %d commands, on the stored session: one per command", warmCmd))
	if warmReq != warmCmd {
		return fmt.Errorf("warm cycle cost %d requests for %d commands", warmReq, warmCmd)
	}
	return nil
}
