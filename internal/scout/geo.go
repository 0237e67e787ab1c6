package scout

import (
	"math"
	"strings"

	"github.com/offpeak-charging/offpeak/internal/fleet"
)

// earthRadiusM is the mean Earth radius (IUGG), plenty for a 100 m circle.
const earthRadiusM = 6371008.8

// DistanceM is the great-circle (haversine) distance in metres. The Python
// system compared degrees, which draws an ellipse and once let a radius of
// 100 (degrees!) count the whole continent as home.
func DistanceM(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusM * math.Asin(math.Min(1, math.Sqrt(a)))
}

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

// Home is the place and radius that count as home.
type Home struct {
	Lat, Lon float64
	RadiusM  float64
}

// Classify turns vehicle_data into an Observation. A car that reported no
// location is not at home (we cannot know); a car is ready when it charges,
// has finished charging, or has a real cable plugged in.
func Classify(d fleet.VehicleData, home Home) Observation {
	obs := Observation{State: d.State}
	if d.Location != nil {
		obs.HasLocation = true
		obs.DistanceM = math.Round(DistanceM(home.Lat, home.Lon, d.Location.Latitude, d.Location.Longitude))
		obs.AtHome = obs.DistanceM <= home.RadiusM
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
