package devstack

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
)

// TestScriptedDay is `make run` without the pauses: one day of ticks through
// real HTTP between scout, worker and simulator.
func TestScriptedDay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := Start(ctx, Options{Dir: t.TempDir(), Clock: clock.NewManual(StoryStart)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SeedTokens(ctx); err != nil {
		t.Fatal(err)
	}
	var story bytes.Buffer
	sum, err := Play(ctx, st, &story, PlayOptions{PairLate: true})
	if err != nil {
		t.Fatal(err)
	}
	// The first sight at 06:00 must put the standing schedules on the car
	// and is refused for the unpaired key; the owner pairs it, the car
	// falls asleep before the retry, and the unplug at 07:25 runs the cycle.
	want := map[string]int{patrol.ReasonFirstSeen: 0, patrol.ReasonUnpluggedAtHome: 1, patrol.ReasonArrivedHomeReady: 1}
	for reason, n := range want {
		if sum.Triggers[reason] != n {
			t.Errorf("triggers %s = %d, want %d (all: %v)", reason, sum.Triggers[reason], n, sum.Triggers)
		}
	}
	if sum.Ticks != 96 || sum.FailedTicks != 0 {
		t.Errorf("ticks %d, failed %d", sum.Ticks, sum.FailedTicks)
	}
	if sum.Wakes != 0 {
		t.Errorf("wakes = %d: nothing in the day needed one", sum.Wakes)
	}
	// An 8 h token over 24 h: refreshed by the worker about three times.
	if sum.TokenExchanges < 2 || sum.TokenExchanges > 4 {
		t.Errorf("token refreshes = %d, want 2..4", sum.TokenExchanges)
	}
	// The scout makes a data call only for an online car: far fewer than one per tick.
	if sum.DataRequests == 0 || sum.DataRequests > 40 {
		t.Errorf("billed data requests = %d", sum.DataRequests)
	}
	if sum.SchedulesAtEnd == 0 {
		t.Error("the standing charge schedules should stay on the car")
	}
	// The car charged by itself, in the cheap window only: 41 → 80 % is
	// 29.25 kWh into the battery, 32.5 kWh from the wall, from 22:00.
	e, _ := st.Sim.Energy(VIN)
	if c, _ := st.Sim.Car(VIN); c.BatteryLevel != 80 || math.Abs(e.GridKWh-32.5) > 1e-6 {
		t.Errorf("after the night: %d %%, %.3f kWh drawn; want 80 %%, 32.5 kWh", c.BatteryLevel, e.GridKWh)
	}
	for hour, kwh := range e.ByHourOfDay {
		if kwh > 0 && hour >= 6 && hour < 22 {
			t.Errorf("%.2f kWh drawn at %02d:00, outside the cheap night", kwh, hour)
		}
	}
	p, _, err := st.StoredPair(ctx)
	if err != nil || !st.Sim.RefreshTokenAccepted(p.RefreshToken) {
		t.Errorf("token chain not valid at the end of the day: %v", err)
	}
	// Signed: the first cycle that must change the car is refused once for
	// the unpaired key, the owner pairs it, a later cycle puts the
	// schedules on the car.
	if sum.KeyRefusals != 1 || sum.SignedCommands == 0 || sum.Handshakes != 1 {
		t.Errorf("key refusals %d, signed commands %d, handshakes %d; want 1, >0, 1", sum.KeyRefusals, sum.SignedCommands, sum.Handshakes)
	}
	// The value, priced at the worker's G12 defaults (0.55 / 1.05): all of
	// it off-peak, against the same day charging at plug-in (17:20, peak).
	if sum.Energy.OffpeakPercent() != 100 || math.Abs(sum.Energy.Cost-32.5*0.55) > 1e-6 ||
		math.Abs(sum.Baseline.KWh-32.5) > 1e-6 || math.Abs(sum.Baseline.Cost-32.5*1.05) > 1e-6 || sum.Energy.SavingPercent(sum.Baseline) != 47.62 {
		t.Errorf("energy %+v, baseline %+v", sum.Energy, sum.Baseline)
	}
	for _, line := range []string{"arrived_home_ready", "refreshed the Tesla tokens", "charge schedule", "summary:",
		"key_not_paired", "signed command(s), verified by the car",
		"tonight's plan 22:00–00:58", "🔋 the car starts charging at 41 %",
		"charging complete (its charge limit reached) at 00:57, 80 %, 32.5 kWh from the charger; the plan's window ends at 00:58",
		"energy: 32.5 kWh from the charger, 100 % of it in cheap hours, 17.88",
		"without the controller the car charges at plug-in: 32.5 kWh, 0 % in cheap hours, 34.13 — 47.6 % saved per kWh"} {
		if !strings.Contains(story.String(), line) {
			t.Errorf("the story lacks %q", line)
		}
	}
	if t.Failed() {
		t.Log(story.String())
	}
}
