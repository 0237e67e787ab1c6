package faults

import (
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

// TestSeveralNightsAtHome: a car that comes home nearly empty to a slow
// charger and stays plugged in for five nights. One night of cheap hours
// cannot reach the target, and no transition follows to trigger another
// cycle, so the second night rests on the standing schedules the first
// cycle left on the car (charging/standing.go): the car itself charges in
// every cheap window up to its limit. From the first morning the cheap
// hours could reach (the third) it is at target — without one more cycle, wake or data request from us.
func TestSeveralNightsAtHome(t *testing.T) {
	t.Parallel()
	// 3.7 kW (a 16 A socket): 10 → 80 % of 75 kWh at 90 % is 58.3 kWh from
	// the wall, 15.8 h; plugged in at 06:00, G12 gives 1 h of cheap time by
	// the first 07:00, 10 h by the second, 20 h by the third.
	r := newRig(t, rigOptions{env: map[string]string{"CHARGER_KW": "3.7"}})
	r.seed()
	r.setCar(func(c *fleetsim.CarState) {
		c.BatteryLevel, c.ChargeLimitSOC, c.ChargerKW = 10, 90, 3.7
		c.ConnChargeCable = fleetsim.CableIEC // the car decides whether to charge
	})
	cc := r.wcfg.Charging
	loc, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		t.Fatal(err)
	}
	tariff, err := charging.ParseTariff(cc.TariffWindows, cc.TariffWindowsWeekend, loc)
	if err != nil {
		t.Fatal(err)
	}
	plug := r.clock.Now()
	plugs := &plugLog{}
	plugs.set(plug, 10)
	arrivals := []arrival{{at: plug}}

	v, err := r.nextTick()
	if err != nil || v.Reason == "" {
		t.Fatalf("first tick: %+v %v", v, err)
	}
	cycles, _ := r.gate.Calls("/run-cycle")
	wakes, billed := r.wakes(), r.billed()
	mornings := 0
	for i := 0; i < 5*96; i++ {
		r.advance(15 * time.Minute)
		now := r.clock.Now()
		if _, err := r.tick(); err != nil {
			t.Fatal(err)
		}
		if lt := now.In(loc); lt.Hour() != 7 || lt.Minute() != 0 {
			continue
		}
		mornings++
		car, _ := r.sim.Car(vin)
		m := checkMorning(car, now, arrivals, plugs, tariff, cc)
		switch {
		case mornings <= 2 && (m.unreachable != 1 || car.BatteryLevel >= 80):
			t.Errorf("morning %d: %d %%, %+v; want below target and judged unreachable", mornings, car.BatteryLevel, m)
		case mornings > 2 && (m.missed || m.unreachable != 0 || car.BatteryLevel < 80):
			t.Errorf("morning %d: %d %%, %+v; want at least the 80 %% target", mornings, car.BatteryLevel, m)
		}
	}
	if mornings != 5 {
		t.Fatalf("%d mornings checked, want 5", mornings)
	}
	after, _ := r.gate.Calls("/run-cycle")
	if after != cycles || r.wakes() != wakes {
		t.Errorf("the stay cost %d more cycles and %d wakes; the car charges by its standing schedules alone", after-cycles, r.wakes()-wakes)
	}
	// The scout still looks whenever the car is awake (charging keeps it
	// so), but never wakes it: bounded by the online ticks.
	t.Logf("five nights: %d billed data requests, %d cycles, %d wakes", r.billed()-billed, after-cycles, r.wakes()-wakes)
}
