package patrol

import (
	"sync"
	"time"
)

// Actions reported per car.
const (
	ActionNone      = "none"
	ActionTriggered = "triggered"
	ActionPending   = "pending"
	ActionAsleep    = "asleep"
	ActionError     = "error"
)

// VehicleReport is one car's line in a tick's answer (POST /tick's JSON).
type VehicleReport struct {
	VIN          string `json:"vin"`
	State        string `json:"state"`
	AtHome       bool   `json:"at_home"`
	Ready        bool   `json:"ready"`
	BatteryLevel *int   `json:"battery_level"`
	// LocationMissing: the car sent no position (no vehicle_location
	// scope); AtHome is then the last known answer, not a new one.
	LocationMissing bool   `json:"location_missing,omitempty"`
	Action          string `json:"action"`
	Reason          string `json:"reason,omitempty"`
	Error           string `json:"error,omitempty"`
	observed        bool
}

// saw fills in what the tick observed of an online car.
func (r *VehicleReport) saw(obs Observation) {
	r.observed = true
	r.AtHome, r.Ready, r.LocationMissing = obs.AtHome, obs.Ready, !obs.HasLocation
	level := obs.BatteryLevel
	r.BatteryLevel = &level
}

// Report is a tick's answer.
type Report struct {
	Vehicles []VehicleReport `json:"vehicles"`
}

// lastTick remembers the last tick's outcome for /health.
type lastTick struct {
	mu  sync.Mutex
	at  time.Time
	err string
}

func (l *lastTick) set(at time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at = at
	l.err = ""
	if err != nil {
		l.err = err.Error()
	}
}

func (l *lastTick) get() (time.Time, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.at, l.err
}
