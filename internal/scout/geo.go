package scout

import (
	"math"
	"strings"

	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/geo"
)

// Observation is what one tick learned about a car that was online.
type Observation struct {
	State         string
	AtHome        bool
	Ready         bool
	HasLocation   bool
	DistanceM     float64
	BatteryLevel  int
	ChargingState string
}

// Home is the place and radius that count as home; its Contains is the
// worker's test too.
type Home = geo.Home

// Classify turns vehicle_data into an Observation. A car that reported no
// location is not at home (we cannot know); a car is ready when it charges,
// has finished charging, or has a real cable plugged in.
func Classify(d fleet.VehicleData, home Home) Observation {
	obs := Observation{State: d.State}
	if d.Location != nil {
		obs.HasLocation = true
		p := geo.Point{Lat: d.Location.Latitude, Lon: d.Location.Longitude}
		// Rounded for the log only: the decision uses the exact distance.
		obs.DistanceM = math.Round(home.DistanceM(p))
		obs.AtHome = home.Contains(p)
	}
	if d.Charge != nil {
		obs.BatteryLevel = d.Charge.BatteryLevel
		obs.ChargingState = d.Charge.ChargingState
		switch strings.ToLower(d.Charge.ChargingState) {
		case "charging", "complete":
			obs.Ready = true
		}
		if d.Charge.CablePlugged() {
			obs.Ready = true
		}
	}
	return obs
}
