package devstack

import (
	"math"
	"time"

	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

// PricedEnergy is energy drawn from the charger, the part of it in cheap
// hours, and what it cost.
type PricedEnergy struct {
	KWh, OffpeakKWh, Cost float64
}

// OffpeakPercent is the cheap share in percent, to two decimals.
func (p PricedEnergy) OffpeakPercent() float64 {
	if p.KWh == 0 {
		return 0
	}
	return math.Round(10000*p.OffpeakKWh/p.KWh) / 100
}

// PricePerKWh is the average price paid.
func (p PricedEnergy) PricePerKWh() float64 {
	if p.KWh == 0 {
		return 0
	}
	return p.Cost / p.KWh
}

// SavingPercent compares the price of a kWh with a baseline's, so a
// different state of charge at the end does not count as a saving.
func (p PricedEnergy) SavingPercent(baseline PricedEnergy) float64 {
	if p.KWh == 0 || baseline.KWh == 0 {
		return 0
	}
	return math.Round(10000*(1-p.PricePerKWh()/baseline.PricePerKWh())) / 100
}

// PriceHours prices the simulator's hourly energy ledger by the tariff the
// worker plans with: the share of each clock hour inside cheap intervals is
// off-peak (exact for windows on whole hours, as G12's; a window edge inside
// an hour is prorated), the rest is peak.
func PriceHours(hours []fleetsim.HourEnergy, tariff *charging.Tariff, peak, offpeak float64) PricedEnergy {
	var p PricedEnergy
	for _, h := range hours {
		var cheap time.Duration
		for _, iv := range tariff.CheapIntervals(h.Start, h.Start.Add(time.Hour)) {
			cheap += iv.Duration()
		}
		share := float64(cheap) / float64(time.Hour)
		p.KWh += h.GridKWh
		p.OffpeakKWh += h.GridKWh * share
		p.Cost += h.GridKWh * (share*offpeak + (1-share)*peak)
	}
	return p
}

// PluginBaseline plays steps (from start) on a simulator with nobody
// setting schedules, until end: the car charges whenever it is plugged in,
// as a Tesla does by itself. It is what the owner would pay with no
// controller. The simulator is exact however rarely it is ticked, so one
// tick at the end is the whole stretch.
func PluginBaseline(initial fleetsim.CarState, start, end time.Time, loc *time.Location, steps []fleetsim.TripStep) fleetsim.EnergyStats {
	clk := clock.NewManual(start)
	sim := fleetsim.New(fleetsim.Options{Clock: clk, Location: loc})
	sim.AddCar(initial)
	sim.RunScript(start, steps)
	clk.Set(end)
	sim.Tick()
	st, _ := sim.Energy(initial.VIN)
	return st
}
