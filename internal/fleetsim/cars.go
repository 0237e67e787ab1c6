package fleetsim

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Car states as the Fleet API names them.
const (
	StateOnline  = "online"
	StateAsleep  = "asleep"
	StateOffline = "offline"
)

// Charging states as charge_state.charging_state names them.
const (
	ChargingDisconnected = "Disconnected"
	ChargingStopped      = "Stopped"
	ChargingCharging     = "Charging"
	ChargingComplete     = "Complete"
	ChargingNoPower      = "NoPower"
	ChargingStarting     = "Starting"
)

// Cable values of charge_state.conn_charge_cable.
const (
	CableUnplugged = "<invalid>"
	CableIEC       = "IEC"
)

// ErrUnknownCar is returned for a VIN the simulator does not know.
var ErrUnknownCar = errors.New("fleetsim: unknown car")

// CarState is a simulated car's observable state.
type CarState struct {
	VIN                   string  `json:"vin"`
	State                 string  `json:"state"` // online|asleep|offline
	Latitude              float64 `json:"latitude"`
	Longitude             float64 `json:"longitude"`
	BatteryLevel          int     `json:"battery_level"`
	ChargingState         string  `json:"charging_state"`    // Disconnected|Stopped|Charging|Complete|NoPower|Starting
	ConnChargeCable       string  `json:"conn_charge_cable"` // "<invalid>" unplugged, "IEC" plugged
	ChargeLimitSOC        int     `json:"charge_limit_soc"`
	MaxNumChargeSchedules int     `json:"max_num_charge_schedules"`
	DisplayName           string  `json:"display_name"`
	ID                    int64   `json:"id"`
	// CommandSigning says which commands the car takes, as GET /vehicles'
	// command_signing names it (vehicle-commands.md §1): "required" (the
	// default when empty: a Model 3/Y or 2021+ Model S/X, signed_command
	// only, REST commands answer 403), "off" (a pre-2021 Model S/X: REST
	// commands only, signed_command answers 422) or "allowed" (both work).
	CommandSigning string `json:"command_signing"`
	// UnsignedHardlocked makes a car that requires signing answer REST
	// commands with 200 {"result":false,"reason":"unsigned_cmds_hardlocked"}
	// instead of the 403 (seen on some cars, vehicle-command issue 76).
	UnsignedHardlocked bool `json:"unsigned_hardlocked,omitempty"`
	// FirmwareVersion is what fleet_status and vehicle_state report; default
	// DefaultFirmwareVersion. Before 2024.38 the car ignores
	// FLAG_ENCRYPT_RESPONSE and answers in plaintext (protocol.md §Response decryption).
	FirmwareVersion string `json:"firmware_version"`

	// The battery and charging (charge.go); zero takes the default named.
	// BatteryKWh is the usable capacity (DefaultBatteryKWh, 75); MaxACKW
	// the car's on-board charger (DefaultMaxACKW, 11) and ChargerKW the
	// wall's (DefaultChargerKW, 11): the car draws the lower; Efficiency the
	// share of it that reaches the battery (DefaultEfficiency, 0.9);
	// ConsumptionKWhPer100Km what driving takes (DefaultConsumptionKWhPer100Km, 16).
	BatteryKWh             float64 `json:"battery_kwh"`
	MaxACKW                float64 `json:"max_ac_kw"`
	ChargerKW              float64 `json:"charger_kw"`
	Efficiency             float64 `json:"efficiency"`
	ConsumptionKWhPer100Km float64 `json:"consumption_kwh_per_100km"`
	// ChargeEnergyAdded is charge_state.charge_energy_added: kWh added to
	// the battery since the car was plugged in. The car sets it; a value
	// written by a script or SetCar is overwritten.
	ChargeEnergyAdded float64 `json:"charge_energy_added"`
}

// Values of CarState.CommandSigning.
const (
	CommandSigningRequired = "required"
	CommandSigningOff      = "off"
	CommandSigningAllowed  = "allowed"
)

// DefaultFirmwareVersion is a new car's CarState.FirmwareVersion.
const DefaultFirmwareVersion = "2025.44.25"

// ChargeSchedule is a stored charge schedule in the car's shape: DaysOfWeek
// is the bitmask (SUN=1 … SAT=64), positions went through float32.
type ChargeSchedule struct {
	ID           int64   `json:"id"`
	Name         string  `json:"name"`
	DaysOfWeek   int     `json:"days_of_week"`
	Enabled      bool    `json:"enabled"`
	StartEnabled bool    `json:"start_enabled"`
	EndEnabled   bool    `json:"end_enabled"`
	OneTime      bool    `json:"one_time"`
	StartTime    int     `json:"start_time"`
	EndTime      int     `json:"end_time"`
	Latitude     float64 `json:"latitude"`
	Longitude    float64 `json:"longitude"`
}

// TripStep is one scripted change to the cars.
type TripStep struct {
	At    time.Duration   // offset from the script's start on the sim clock
	Apply func(*CarState) // called for every car (or only VIN's); check c.VIN to pick one; must not call the Sim
	Note  string
	VIN   string // optional: apply only to this car
}

type car struct {
	CarState
	vehicleID    int64
	lastActivity time.Time
	wakeAt       time.Time // zero: no wake pending
	schedules    []ChargeSchedule
	vcp          *vcpState // the car's side of the Vehicle Command Protocol (vcp.go)
	ch           chargeModel
	env          chargeEnv
}

// signing is the car's CommandSigning, normalized.
func (c *car) signing() string {
	switch c.CommandSigning {
	case CommandSigningOff, CommandSigningAllowed:
		return c.CommandSigning
	}
	return CommandSigningRequired
}

type scheduledStep struct {
	at   time.Time
	seq  int
	step TripStep
}

// AddCar adds (or replaces the state of) a car. Missing fields get defaults:
// online, unplugged, charge limit 80, 10 schedules, an id, command signing
// "required", firmware DefaultFirmwareVersion, the battery and charging
// defaults (Default…). An online car's idle timer starts now. A new car
// gets its own P-256 key and fresh epochs for its VCSEC and infotainment
// domains, with no paired keys; replacing a car's state keeps its key,
// epochs, paired keys and schedules (it is the same car) and starts its
// battery afresh from BatteryLevel. A car added plugged in with a
// ChargingState keeps that state until something changes it (see
// charge.go); plugged in without one, it decides as at a plug-in.
func (s *Sim) AddCar(c CarState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.advanceLocked(now)
	given := c.ChargingState
	normalize(&c)
	if existing, ok := s.cars[c.VIN]; ok {
		if c.ID == 0 {
			c.ID = existing.ID
		}
		existing.closeSegment(now)
		old := existing.ch
		existing.CarState = c
		existing.lastActivity = now
		existing.wakeAt = time.Time{}
		existing.initCharge(now, given)
		existing.keepLedger(old)
		return
	}
	n := s.nextID
	s.nextID++
	if c.ID == 0 {
		c.ID = 3744000000000000 + n
	}
	nc := &car{CarState: c, vehicleID: 1492000000 + n, lastActivity: now, vcp: newVCPState(now),
		env: chargeEnv{loc: s.opts.Location, radiusM: s.opts.ScheduleRadiusM}}
	nc.initCharge(now, given)
	s.cars[c.VIN] = nc
	s.carOrder = append(s.carOrder, c.VIN)
}

func normalize(c *CarState) {
	if c.State == "" {
		c.State = StateOnline
	}
	if c.ChargingState == "" {
		c.ChargingState = ChargingDisconnected
	}
	if c.ConnChargeCable == "" {
		c.ConnChargeCable = CableUnplugged
	}
	if c.ChargeLimitSOC == 0 {
		c.ChargeLimitSOC = 80
	}
	if c.MaxNumChargeSchedules == 0 {
		c.MaxNumChargeSchedules = 10
	}
	if c.DisplayName == "" {
		c.DisplayName = "Sim " + c.VIN[max(0, len(c.VIN)-6):]
	}
	c.CommandSigning = strings.ToLower(strings.TrimSpace(c.CommandSigning))
	switch c.CommandSigning {
	case CommandSigningOff, CommandSigningAllowed, CommandSigningRequired:
	case "legacy":
		c.CommandSigning = CommandSigningOff
	default:
		c.CommandSigning = CommandSigningRequired
	}
	if c.FirmwareVersion == "" {
		c.FirmwareVersion = DefaultFirmwareVersion
	}
	for _, f := range []struct {
		v   *float64
		def float64
	}{{&c.BatteryKWh, DefaultBatteryKWh}, {&c.MaxACKW, DefaultMaxACKW}, {&c.ChargerKW, DefaultChargerKW},
		{&c.Efficiency, DefaultEfficiency}, {&c.ConsumptionKWhPer100Km, DefaultConsumptionKWhPer100Km}} {
		if *f.v <= 0 || math.IsNaN(*f.v) || math.IsInf(*f.v, 0) {
			*f.v = f.def
		}
	}
	c.Efficiency = min(c.Efficiency, 1)
	c.BatteryLevel = min(max(c.BatteryLevel, 0), 100)
	c.ChargeLimitSOC = min(max(c.ChargeLimitSOC, 1), 100)
}

// validCommandSigning reports whether v is a CommandSigning value the
// simulator knows ("" and "legacy", an alias of "off", included).
func validCommandSigning(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", CommandSigningRequired, CommandSigningOff, CommandSigningAllowed, "legacy":
		return true
	}
	return false
}

// SetCar mutates a car, e.g. to plug it in. If the car is online afterwards
// its idle timer restarts (something happened to it); a car put online or
// asleep by f loses any pending wake. The VIN cannot be changed.
func (s *Sim) SetCar(vin string, f func(*CarState)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.advanceLocked(now)
	c, ok := s.cars[vin]
	if !ok {
		return fmt.Errorf("set car %s: %w", vin, ErrUnknownCar)
	}
	s.mutateLocked(c, f, now)
	return nil
}

// mutateLocked applies f to the car at the moment at (the car is settled
// to it): the battery and charging follow what f changed (charge.go
// afterMutation: a plug-in, an unplug, a move, a battery level or charging
// state set by the script).
func (s *Sim) mutateLocked(c *car, f func(*CarState), at time.Time) {
	before := c.CarState
	f(&c.CarState)
	c.VIN = before.VIN
	if c.ID == 0 {
		c.ID = before.ID
	}
	normalize(&c.CarState)
	if c.State == StateOnline {
		c.lastActivity = at
	}
	if c.State != before.State {
		c.wakeAt = time.Time{}
	}
	c.afterMutation(before, at)
}

// Car returns a car's current state.
func (s *Sim) Car(vin string) (CarState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(s.now())
	c, ok := s.cars[vin]
	if !ok {
		return CarState{}, false
	}
	return c.CarState, true
}

// Cars returns every car in the order they were added.
func (s *Sim) Cars() []CarState {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(s.now())
	out := make([]CarState, 0, len(s.carOrder))
	for _, vin := range s.carOrder {
		out = append(out, s.cars[vin].CarState)
	}
	return out
}

// Schedules returns a copy of the car's stored charge schedules (nil for an unknown car).
func (s *Sim) Schedules(vin string) []ChargeSchedule {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(s.now())
	c, ok := s.cars[vin]
	if !ok {
		return nil
	}
	return append([]ChargeSchedule(nil), c.schedules...)
}

// RunScript queues steps to be applied when the sim clock passes start+At.
// Steps are applied lazily (on every request, Tick or state read), in time
// order, each with the sleep model evaluated up to its moment first.
func (s *Sim) RunScript(start time.Time, steps []TripStep) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range steps {
		s.stepSeq++
		s.steps = append(s.steps, scheduledStep{at: start.Add(st.At), seq: s.stepSeq, step: st})
	}
	sort.SliceStable(s.steps, func(i, j int) bool {
		if s.steps[i].at.Equal(s.steps[j].at) {
			return s.steps[i].seq < s.steps[j].seq
		}
		return s.steps[i].at.Before(s.steps[j].at)
	})
	s.advanceLocked(s.now())
}

// advanceLocked brings the world up to now: due script steps in order, and
// the sleep model evaluated at each step's moment and at now.
func (s *Sim) advanceLocked(now time.Time) {
	for len(s.steps) > 0 && !s.steps[0].at.After(now) {
		st := s.steps[0]
		s.steps = s.steps[1:]
		s.settleLocked(st.at)
		for _, vin := range s.carOrder {
			if st.step.VIN != "" && st.step.VIN != vin {
				continue
			}
			if st.step.Apply != nil {
				s.mutateLocked(s.cars[vin], st.step.Apply, st.at)
			}
		}
		if st.step.Note != "" {
			s.log.Debug("script step", zap.String("note", st.step.Note), zap.Time("at", st.at))
		}
	}
	s.settleLocked(now)
}

// settleLocked applies the battery and the sleep model at t: pending wakes
// complete, the charge runs up to t (charge.go; a car wakes to charge), a
// charging car stays awake, an idle online car falls asleep.
func (s *Sim) settleLocked(t time.Time) {
	for _, c := range s.cars {
		if !c.wakeAt.IsZero() && !t.Before(c.wakeAt) {
			c.State = StateOnline
			c.lastActivity = c.wakeAt
			c.wakeAt = time.Time{}
		}
		c.settleCharge(t)
		if c.State != StateOnline {
			continue
		}
		if c.ChargingState == ChargingCharging {
			if t.After(c.lastActivity) {
				c.lastActivity = t
			}
			continue
		}
		if t.Sub(c.lastActivity) >= s.opts.SleepAfter {
			c.State = StateAsleep
		}
	}
}

// lookupLocked finds a car by VIN or by its numeric id (the Fleet API takes either).
func (s *Sim) lookupLocked(key string) *car {
	if c, ok := s.cars[key]; ok {
		return c
	}
	for _, c := range s.cars {
		if fmt.Sprint(c.ID) == key {
			return c
		}
	}
	return nil
}

// AddSchedule stores a charge schedule on the car as another app would (the
// Tesla app, with its own key): no Fleet request, no counter. An id of 0
// becomes the sim's Unix time, as the car assigns it.
func (s *Sim) AddSchedule(vin string, cs ChargeSchedule) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.advanceLocked(now)
	c, ok := s.cars[vin]
	if !ok {
		return fmt.Errorf("add schedule to %s: %w", vin, ErrUnknownCar)
	}
	if ok, reason := c.addSchedule(cs, now); !ok {
		return fmt.Errorf("add schedule to %s: %s", vin, reason)
	}
	return nil
}

// Energy returns what the car's battery did: charging energy in total, per
// local clock hour and per hour of the day, driving, and the energy stored
// now (see EnergyStats). ok is false for an unknown car.
func (s *Sim) Energy(vin string) (EnergyStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(s.now())
	c, ok := s.cars[vin]
	if !ok {
		return EnergyStats{}, false
	}
	return c.stats(), true
}

// energyCountersLocked is the energy part of Counters, per VIN.
func (s *Sim) energyCountersLocked() map[string]EnergyCounters {
	out := make(map[string]EnergyCounters, len(s.cars))
	for vin, c := range s.cars {
		st := c.stats()
		out[vin] = EnergyCounters{GridKWh: st.GridKWh, BatteryKWh: st.BatteryKWh, ByHourOfDay: st.ByHourOfDay,
			DrivenKm: st.DrivenKm, DrivenKWh: st.DrivenKWh}
	}
	return out
}
