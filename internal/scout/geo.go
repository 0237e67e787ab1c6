package scout

import (
	"math"
	"strings"

	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/geo"
)

// Observation is what one tick learned about a car that was online.
type Observation struct {
	State         string  `json:"state"`
	AtHome        bool    `json:"at_home"`
	Ready         bool    `json:"ready"`
	HasLocation   bool    `json:"has_location"`
	DistanceM     float64 `json:"distance_m,omitempty"`
	BatteryLevel  int     `json:"battery_level"`
	ChargingState string  `json:"charging_state,omitempty"`
	Cable         string  `json:"conn_charge_cable,omitempty"`
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
		obs.Cable = d.Charge.ConnChargeCable
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
