package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Endpoint names for VehicleData. Ask for everything needed in one call:
// each call is billed as a data request.
const (
	EndpointChargeState        = "charge_state"
	EndpointChargeScheduleData = "charge_schedule_data"
	EndpointClimateState       = "climate_state"
	EndpointDriveState         = "drive_state"
	// EndpointLocationData must be asked for to get a position at all
	// (firmware 2023.38+); the position then arrives in drive_state, so ask
	// for EndpointDriveState with it (as Home Assistant's tesla_fleet and
	// TeslaMate do): same one call, same price.
	EndpointLocationData  = "location_data"
	EndpointVehicleConfig = "vehicle_config"
	EndpointVehicleState  = "vehicle_state"
)

// VehicleData is the part of a vehicle_data answer this project uses. A
// pointer is nil when the answer did not carry that part (not asked for,
// or the firmware left it out).
type VehicleData struct {
	ID        int64
	VIN       string
	State     string
	Charge    *ChargeState
	Location  *Location
	Schedules *ChargeScheduleData
	UTCOffset *int // seconds east of UTC, from vehicle_config.utc_offset
}

// ChargeState is charge_state.
type ChargeState struct {
	BatteryLevel        int
	ChargingState       string // "Disconnected", "Stopped", "Charging", "Complete", "NoPower", …
	ConnChargeCable     string // "IEC", "SAE", "GB_AC", "<invalid>", …
	ChargeLimitSOC      int
	ChargeRate          float64
	ChargerPower        float64
	MinutesToFullCharge int
}

// CablePlugged reports whether a real cable is connected: conn_charge_cable
// names one, rather than being empty, "Unknown" or "<invalid>".
func (c ChargeState) CablePlugged() bool {
	switch strings.ToLower(strings.TrimSpace(c.ConnChargeCable)) {
	case "", "unknown", "<invalid>":
		return false
	}
	return true
}

// Location is where the car is.
type Location struct {
	Latitude, Longitude float64
}

// ChargeScheduleData is charge_schedule_data.
type ChargeScheduleData struct {
	Schedules             []ChargeSchedule
	MaxNumChargeSchedules int
	NextSchedule          bool
}

// ChargeSchedule is one schedule as the car reports it. Latitude and
// Longitude are stored by the car as 32-bit floats: compare with a tolerance.
type ChargeSchedule struct {
	ID           int64
	Name         string
	DaysOfWeek   int // bitmask: SUN=1 MON=2 TUE=4 WED=8 THU=16 FRI=32 SAT=64; see DayNames
	Enabled      bool
	StartEnabled bool
	EndEnabled   bool
	OneTime      bool
	StartTime    int // minutes after local midnight
	EndTime      int // minutes after local midnight; < StartTime wraps past midnight
	Latitude     float64
	Longitude    float64
}

// VehicleData makes ONE billed call, GET /api/1/vehicles/{vin}/vehicle_data,
// asking for all the given endpoints at once. It reaches the car: an asleep
// car answers ErrAsleep, and nothing here wakes it.
//
// The endpoints are joined with ';' sent as %3B. Tesla reads both forms, and
// many Fleet API clients send %3B (Python's urlencode, JavaScript's
// encodeURIComponent, .NET's EscapeDataString), while Go's url.Query drops a
// parameter holding a raw ';' altogether, which would silently lose the
// endpoints on any Go server (our simulator, a test).
func (c *Client) VehicleData(ctx context.Context, vin string, endpoints ...string) (VehicleData, error) {
	path, err := vehiclePath(vin)
	if err != nil {
		return VehicleData{}, err
	}
	for _, e := range endpoints {
		if !isEndpointName(e) {
			return VehicleData{}, fmt.Errorf("fleet: vehicle_data endpoint %q: %w", e, ErrInvalidRequest)
		}
	}
	r := request{method: http.MethodGet, base: c.baseURL, path: path + "/vehicle_data"}
	if len(endpoints) > 0 {
		r.rawQuery = "endpoints=" + strings.Join(endpoints, "%3B")
	}
	rep, err := c.do(ctx, r)
	if err != nil {
		return VehicleData{}, err
	}
	vd, problem := decodeVehicleData(rep.body)
	if problem != "" {
		return VehicleData{}, malformed(rep.status, r.endpoint(), problem)
	}
	return vd, nil
}

// isEndpointName accepts Tesla's endpoint names (lower case and '_'), so
// nothing needs escaping and nothing can smuggle in another parameter.
func isEndpointName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// DecodeVehicleData decodes a vehicle_data answer ({"response": {…}}). It
// never panics; it fails (with ErrMalformed) only when the body is not JSON
// or has no response object. Fields of the wrong type are treated as absent.
func DecodeVehicleData(body []byte) (VehicleData, error) {
	vd, problem := decodeVehicleData(body)
	if problem != "" {
		return VehicleData{}, fmt.Errorf("fleet: vehicle_data: %w: %s", ErrMalformed, problem)
	}
	return vd, nil
}

type vehicleDataJSON struct {
	ID       jInt    `json:"id"`
	IDString jString `json:"id_s"`
	VIN      jString `json:"vin"`
	State    jString `json:"state"`

	ChargeState jObject[struct {
		BatteryLevel        jInt    `json:"battery_level"`
		ChargingState       jString `json:"charging_state"`
		ConnChargeCable     jString `json:"conn_charge_cable"`
		ChargeLimitSOC      jInt    `json:"charge_limit_soc"`
		ChargeRate          jFloat  `json:"charge_rate"`
		ChargerPower        jFloat  `json:"charger_power"`
		MinutesToFullCharge jInt    `json:"minutes_to_full_charge"`
	}] `json:"charge_state"`

	DriveState jObject[struct {
		Latitude  jFloat `json:"latitude"`
		Longitude jFloat `json:"longitude"`
	}] `json:"drive_state"`

	VehicleConfig jObject[struct {
		UTCOffset jInt `json:"utc_offset"`
	}] `json:"vehicle_config"`

	ChargeScheduleData jObject[struct {
		Schedules jList[struct {
			ID           jInt    `json:"id"`
			Name         jString `json:"name"`
			DaysOfWeek   jInt    `json:"days_of_week"`
			Enabled      jBool   `json:"enabled"`
			StartEnabled jBool   `json:"start_enabled"`
			EndEnabled   jBool   `json:"end_enabled"`
			OneTime      jBool   `json:"one_time"`
			StartTime    jInt    `json:"start_time"`
			EndTime      jInt    `json:"end_time"`
			Latitude     jFloat  `json:"latitude"`
			Longitude    jFloat  `json:"longitude"`
		}] `json:"charge_schedules"`
		MaxNumChargeSchedules jInt  `json:"max_num_charge_schedules"`
		NextSchedule          jBool `json:"next_schedule"`
	}] `json:"charge_schedule_data"`
}

// decodeVehicleData returns the decoded data, or a non-empty problem.
func decodeVehicleData(body []byte) (VehicleData, string) {
	raw, problem := decodeResponse(body, '{')
	if problem != "" {
		return VehicleData{}, problem
	}
	var j vehicleDataJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return VehicleData{}, err.Error()
	}

	vd := VehicleData{ID: j.ID.v, VIN: j.VIN.v, State: j.State.v}
	if !j.ID.ok && j.IDString.ok {
		if n, err := strconv.ParseInt(j.IDString.v, 10, 64); err == nil {
			vd.ID = n
		}
	}
	if cs := j.ChargeState.v; cs != nil {
		vd.Charge = &ChargeState{
			BatteryLevel:        cs.BatteryLevel.int(),
			ChargingState:       cs.ChargingState.v,
			ConnChargeCable:     cs.ConnChargeCable.v,
			ChargeLimitSOC:      cs.ChargeLimitSOC.int(),
			ChargeRate:          cs.ChargeRate.v,
			ChargerPower:        cs.ChargerPower.v,
			MinutesToFullCharge: cs.MinutesToFullCharge.int(),
		}
	}
	if ds := j.DriveState.v; ds != nil && ds.Latitude.ok && ds.Longitude.ok &&
		validPosition(ds.Latitude.v, ds.Longitude.v) {
		vd.Location = &Location{Latitude: ds.Latitude.v, Longitude: ds.Longitude.v}
	}
	if vc := j.VehicleConfig.v; vc != nil && vc.UTCOffset.ok {
		// Real offsets lie within ±14 h; anything else is not an offset.
		if off := vc.UTCOffset.v; off >= -14*3600 && off <= 14*3600 {
			o := int(off)
			vd.UTCOffset = &o
		}
	}
	if sd := j.ChargeScheduleData.v; sd != nil {
		data := &ChargeScheduleData{
			Schedules:             make([]ChargeSchedule, 0, len(sd.Schedules.v)),
			MaxNumChargeSchedules: sd.MaxNumChargeSchedules.int(),
			NextSchedule:          sd.NextSchedule.v,
		}
		for _, s := range sd.Schedules.v {
			data.Schedules = append(data.Schedules, ChargeSchedule{
				ID:           s.ID.v,
				Name:         s.Name.v,
				DaysOfWeek:   s.DaysOfWeek.int(),
				Enabled:      s.Enabled.v,
				StartEnabled: s.StartEnabled.v,
				EndEnabled:   s.EndEnabled.v,
				OneTime:      s.OneTime.v,
				StartTime:    s.StartTime.int(),
				EndTime:      s.EndTime.int(),
				Latitude:     s.Latitude.v,
				Longitude:    s.Longitude.v,
			})
		}
		vd.Schedules = data
	}
	return vd, ""
}

func validPosition(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180
}
