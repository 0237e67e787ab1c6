package scout

import (
	"testing"

	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/geo"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
)

// TestReadingFromClassifies: vehicle_data as the Fleet API sends it, through
// the adapter, classified as before the patrol had its own reading.
func TestReadingFromClassifies(t *testing.T) {
	t.Parallel()
	h := geo.Home{Lat: 52.231838, Lon: 21.005995, RadiusM: 100}
	at := func(lat, lon float64) *fleet.Location { return &fleet.Location{Latitude: lat, Longitude: lon} }
	cases := []struct {
		name          string
		data          fleet.VehicleData
		atHome, ready bool
	}{
		{"home plugged", fleet.VehicleData{Location: at(52.2319, 21.0060), Charge: &fleet.ChargeState{ConnChargeCable: "IEC", ChargingState: "Stopped"}}, true, true},
		{"home charging, cable field missing", fleet.VehicleData{Location: at(52.2319, 21.0060), Charge: &fleet.ChargeState{ChargingState: "Charging"}}, true, true},
		{"home complete", fleet.VehicleData{Location: at(52.2319, 21.0060), Charge: &fleet.ChargeState{ChargingState: "Complete", ConnChargeCable: "<invalid>"}}, true, true},
		{"home unplugged", fleet.VehicleData{Location: at(52.2319, 21.0060), Charge: &fleet.ChargeState{ConnChargeCable: "<invalid>", ChargingState: "Disconnected"}}, true, false},
		{"cable Unknown is not a cable", fleet.VehicleData{Location: at(52.2319, 21.0060), Charge: &fleet.ChargeState{ConnChargeCable: "Unknown"}}, true, false},
		{"150 m away is not home", fleet.VehicleData{Location: at(52.233188, 21.005995), Charge: &fleet.ChargeState{ConnChargeCable: "IEC"}}, false, true},
		{"no location is not home", fleet.VehicleData{Charge: &fleet.ChargeState{ConnChargeCable: "IEC"}}, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			obs := patrol.Classify(ReadingFrom(tc.data), h)
			if obs.AtHome != tc.atHome || obs.Ready != tc.ready {
				t.Errorf("at_home=%v ready=%v, want %v %v", obs.AtHome, obs.Ready, tc.atHome, tc.ready)
			}
		})
	}
}
