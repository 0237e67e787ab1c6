package patrol

import (
	"math"
	"strings"

	"github.com/offpeak-charging/offpeak/internal/geo"
)

// Reading is the part of one vehicle_data answer the rules use.
type Reading struct {
	Position *geo.Point     // nil: the car sent none (no vehicle_location scope)
	Charge   *ChargeReading // nil: no charge_state in the answer
}

// ChargeReading is the car's charge_state, as far as the rules go.
type ChargeReading struct {
	BatteryLevel  int
	ChargingState string // Tesla's: Charging, Complete, Stopped, Disconnected…
	Plugged       bool   // a real cable is plugged in
}

// Observation is what one tick learned about a car that was online.
type Observation struct {
	AtHome        bool
	Ready         bool
	HasLocation   bool
	DistanceM     float64 // from home, rounded: for the log only
	BatteryLevel  int
	ChargingState string
}

// Classify turns a reading into an Observation. A car that reported no
// position is not at home (it cannot be known; Observe keeps the last
// answer instead); a car is ready when it charges, has finished charging,
// or has a real cable plugged in. Home's Contains is the worker's test too,
// so both draw the same circle.
func Classify(r Reading, home geo.Home) Observation {
	var obs Observation
	if r.Position != nil {
		obs.HasLocation = true
		// Rounded for the log only: the decision uses the exact distance.
		obs.DistanceM = math.Round(home.DistanceM(*r.Position))
		obs.AtHome = home.Contains(*r.Position)
	}
	if c := r.Charge; c != nil {
		obs.BatteryLevel = c.BatteryLevel
		obs.ChargingState = c.ChargingState
		switch strings.ToLower(c.ChargingState) {
		case "charging", "complete":
			obs.Ready = true
		}
		if c.Plugged {
			obs.Ready = true
		}
	}
	return obs
}

// Observe classifies a reading against what was remembered (prev, nil when
// the car was never seen). Unknown is not away: a car that sent no position
// keeps the last answer for at home, so a missing position fakes neither a
// departure nor, when it returns, an arrival.
func Observe(r Reading, prev *Record, home geo.Home) Observation {
	obs := Classify(r, home)
	if !obs.HasLocation {
		obs.AtHome = prev != nil && prev.AtHome
	}
	return obs
}
