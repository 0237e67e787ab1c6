package fleetsim

import (
	"math"
	"slices"
	"time"
)

// The simulated car's battery and charging. Sources of each rule, as
// elsewhere in the simulator: reference/charging.md (the charge-schedule
// fields and what is known of how the car uses them), Tesla's owner's
// manuals, the Fleet API's charge_state as third parties document it
// (timdorr/tesla-api docs/vehicle/state/chargestate.md; Home Assistant's
// Tessie and Teslemetry integrations), and "UNCONFIRMED: our assumption"
// where no source settles a rule.
//
// Time is lazy, as for the sleep model: the charge is integrated piecewise
// between events — a schedule window's start or end, a one-time schedule
// consumed, the charge limit reached, a local clock hour (for the energy
// ledger), a script step, a command — and read between events without
// being re-anchored. So the outcome does not depend on how often the
// simulator is ticked or asked: once a year and every minute give the same
// state of charge, charging states and ledger.

// Defaults of the CarState battery and charging fields.
const (
	// DefaultBatteryKWh is the usable capacity (a Model 3/Y Long Range is
	// about 75 kWh; Tesla does not publish it). The worker's BATTERY_KWH
	// default is the same, so plans fit the simulated car.
	DefaultBatteryKWh = 75.0
	// DefaultMaxACKW is the car's on-board charger: 11 kW on three-phase AC
	// (Tesla's European Model 3/Y specifications, "max AC charging power 11 kW").
	DefaultMaxACKW = 11.0
	// DefaultChargerKW is the wall's power: a Wall Connector on 3 × 16 A.
	DefaultChargerKW = 11.0
	// DefaultEfficiency is the share of the wall's energy that reaches the
	// battery on AC (UNCONFIRMED: our assumption, the worker's
	// CHARGE_EFFICIENCY default; evcc assumes 0.85).
	DefaultEfficiency = 0.9
	// DefaultConsumptionKWhPer100Km is what driving takes from the battery
	// (UNCONFIRMED: our assumption, a Model 3's typical mixed driving;
	// WLTP says about 14–16).
	DefaultConsumptionKWhPer100Km = 16.0
	// DefaultScheduleRadiusM is how far from a schedule's latitude/longitude
	// the car may be for the schedule to apply. reference/charging.md: "A
	// schedule applies only at its location; the match radius is
	// unconfirmed"; Tesla's manuals say charge settings are kept "at this
	// location" without a distance. UNCONFIRMED: 150 m, a GPS fix's error
	// plus a large car park, and above the worker's HOME_RADIUS_M default
	// (100 m), so a car the worker takes for at home gets its schedules.
	DefaultScheduleRadiusM = 150.0
)

const (
	metresPerMile = 1609.344
	// energyEpsilon absorbs float rounding when comparing energies (kWh).
	energyEpsilon = 1e-9
)

// HourEnergy is the energy a car drew in one local clock hour.
type HourEnergy struct {
	Start      time.Time `json:"start"`       // the hour's first instant, in Options.Location
	GridKWh    float64   `json:"grid_kwh"`    // from the charger (what a meter bills)
	BatteryKWh float64   `json:"battery_kwh"` // into the battery: GridKWh × Efficiency
}

// EnergyStats is what a car's battery did since the simulator started (or
// the last ResetCounters): charging energy per clock hour and per hour of
// the day, and what driving used.
type EnergyStats struct {
	VIN string `json:"vin"`
	// GridKWh is the energy drawn from chargers; BatteryKWh what of it
	// reached the battery.
	GridKWh    float64 `json:"grid_kwh"`
	BatteryKWh float64 `json:"battery_kwh"`
	// ByHourOfDay is GridKWh by local hour of the day (0 = 00:00–01:00).
	ByHourOfDay [24]float64 `json:"grid_kwh_by_hour_of_day"`
	// Hours is GridKWh per local clock hour, in time order, hours without
	// charging left out.
	Hours []HourEnergy `json:"hours"`
	// DrivenKm and DrivenKWh are the distance moved between positions and
	// the energy it took.
	DrivenKm  float64 `json:"driven_km"`
	DrivenKWh float64 `json:"driven_kwh"`
	// StoredKWh is the battery's energy now (BatteryLevel is its whole
	// percent, rounded down).
	StoredKWh float64 `json:"stored_kwh"`
}

// chargeModel is a car's battery between events: exact at segStart, and
// changing at gridKW × efficiency until next.
type chargeModel struct {
	segStart time.Time
	energy   float64 // battery energy at segStart, kWh
	added    float64 // charge_energy_added at segStart, kWh
	gridKW   float64 // wall power from segStart (0: not charging)
	next     time.Time
	now      time.Time // the last moment the car was settled to

	// manual is a charging state forced by a command or a script (""
	// when the car follows its own rules); see decide.
	manual string
	// plugCharge: plugged in where no schedule applies, so the car charges
	// until complete, as a car with no schedule does.
	plugCharge bool
	// consumeAt is when each one-time schedule has run (the end of its
	// first window ending after it was stored), by id.
	consumeAt map[int64]time.Time

	// Ledger since the start or ResetCounters.
	gridKWh, batteryKWh float64
	byHour              [24]float64
	hours               []HourEnergy
	drivenKm, drivenKWh float64
}

// chargeEnv is what a car needs of the simulator's options.
type chargeEnv struct {
	loc     *time.Location
	radiusM float64
}

func (c *car) plugged() bool {
	return c.ConnChargeCable != CableUnplugged && c.ConnChargeCable != ""
}

// gridPower is what the car draws while charging: the lower of the wall's
// and the on-board charger's power (AC charging per IEC 61851-1: the
// charger's pilot signal caps the current, the car's on-board charger its
// own power). No taper: on AC a Tesla charges at nearly constant power to
// its limit (UNCONFIRMED: taper near 100 % is ignored).
func (c *car) gridPower() float64 { return math.Min(c.ChargerKW, c.MaxACKW) }

func (c *car) fullKWh() float64 { return float64(c.ChargeLimitSOC) / 100 * c.BatteryKWh }

// energyAt is the battery's energy at t (segStart ≤ t ≤ next).
func (c *car) energyAt(t time.Time) float64 {
	return c.ch.energy + c.ch.gridKW*c.Efficiency*t.Sub(c.ch.segStart).Hours()
}

func (c *car) addedAt(t time.Time) float64 {
	return c.ch.added + c.ch.gridKW*c.Efficiency*t.Sub(c.ch.segStart).Hours()
}

// levelOf is battery_level for an energy: the whole percent below it, as
// the car shows no more than it has (UNCONFIRMED: rounding down).
func levelOf(energy, capacity float64) int {
	if capacity <= 0 {
		return 0
	}
	return int(math.Floor(energy/capacity*100 + 1e-9))
}

// initCharge starts the car's battery from its CarState at t: the energy
// from BatteryLevel, and the charging state it was given (honoured as a
// forced state) or, when plugged in without one, the car's own decision.
func (c *car) initCharge(t time.Time, given string) {
	c.ch = chargeModel{segStart: t, now: t, energy: float64(c.BatteryLevel) / 100 * c.BatteryKWh, consumeAt: map[int64]time.Time{}}
	for _, s := range c.schedules {
		c.noteSchedule(s, t)
	}
	if c.plugged() {
		if given == "" || given == ChargingDisconnected {
			c.ch.plugCharge = len(c.schedulesHere()) == 0
		} else {
			c.ch.manual = given
		}
	}
	c.redecide(t, false)
}

// keepLedger carries the energy counters of a car's earlier battery model
// over (AddCar replacing a car's state).
func (c *car) keepLedger(old chargeModel) {
	c.ch.gridKWh, c.ch.batteryKWh, c.ch.byHour, c.ch.hours = old.gridKWh, old.batteryKWh, old.byHour, old.hours
	c.ch.drivenKm, c.ch.drivenKWh = old.drivenKm, old.drivenKWh
}

// settleCharge brings the battery to t: every event up to t in order, then
// the observable fields at t (without re-anchoring, so reads do not change
// the outcome).
func (c *car) settleCharge(t time.Time) {
	for !c.ch.next.IsZero() && !c.ch.next.After(t) {
		e := c.ch.next
		c.closeSegment(e)
		c.chargeEvents(e)
		c.redecide(e, true)
	}
	if t.After(c.ch.now) {
		c.ch.now = t
	}
	c.observe(c.ch.now)
}

// observe sets the fields of CarState that the battery drives.
func (c *car) observe(t time.Time) {
	c.BatteryLevel = levelOf(c.energyAt(t), c.BatteryKWh)
	c.ChargeEnergyAdded = math.Round(c.addedAt(t)*100) / 100
}

// closeSegment makes the battery exact at e (segStart ≤ e ≤ next) and books
// the energy since segStart in the ledger.
func (c *car) closeSegment(e time.Time) {
	if e.Before(c.ch.segStart) {
		return
	}
	if c.ch.gridKW > 0 {
		grid := c.ch.gridKW * e.Sub(c.ch.segStart).Hours()
		batt := grid * c.Efficiency
		c.ch.energy += batt
		c.ch.added += batt
		if full := c.fullKWh(); c.ch.energy > full-energyEpsilon && c.ch.energy < full+1e-6 {
			c.ch.energy = full // the limit event lands within a nanosecond of it
		}
		c.book(c.ch.segStart, grid, batt)
	}
	c.ch.segStart = e
}

// book adds energy to the ledger; segments never cross a local hour.
func (c *car) book(at time.Time, grid, batt float64) {
	if grid <= 0 {
		return
	}
	start := hourStart(at, c.env.loc)
	c.ch.gridKWh += grid
	c.ch.batteryKWh += batt
	c.ch.byHour[start.In(c.env.loc).Hour()] += grid
	if n := len(c.ch.hours); n > 0 && c.ch.hours[n-1].Start.Equal(start) {
		c.ch.hours[n-1].GridKWh += grid
		c.ch.hours[n-1].BatteryKWh += batt
		return
	}
	c.ch.hours = append(c.ch.hours, HourEnergy{Start: start, GridKWh: grid, BatteryKWh: batt})
}

// hourStart is the first instant of t's local clock hour.
func hourStart(t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	return lt.Add(-time.Duration(lt.Minute())*time.Minute - time.Duration(lt.Second())*time.Second - time.Duration(lt.Nanosecond()))
}

// chargeEvents applies what happens at the event time e: one-time
// schedules that have run are consumed (reaching the limit, the other
// event, is decide's).
func (c *car) chargeEvents(e time.Time) {
	// reference/charging.md: one_time schedules run once. UNCONFIRMED: the
	// car deletes one when its first window after it was stored has
	// ended, whether or not the car charged in it.
	c.schedules = slices.DeleteFunc(c.schedules, func(s ChargeSchedule) bool {
		at, ok := c.ch.consumeAt[s.ID]
		if ok && !e.Before(at) {
			delete(c.ch.consumeAt, s.ID)
			return true
		}
		return false
	})
}

// decide is the car's charging rule at t, given its forced state, plug,
// charge limit and the schedules that apply where it is:
//
//   - unplugged: Disconnected;
//   - a forced start (charge_start, or a script setting Charging) charges
//     until the limit, schedules or not; a forced stop (charge_stop, or a
//     script setting Stopped, Complete, …) holds until the car is unplugged
//     or started (UNCONFIRMED: whether a Tesla stopped by hand resumes at
//     its next scheduled window; holding keeps scripts that set the state
//     themselves in charge of it);
//   - at the limit: Complete (reference/charging.md: charge_limit_soc stops
//     charging whatever the schedule);
//   - schedules apply here: Charging inside an active window, else Stopped
//     (waiting) — reference/charging.md leaves "whether charging outside
//     every schedule is blocked" unconfirmed; this is the issue's rule and
//     Tesla's "Scheduled Charging" behaviour;
//   - none applies: a car charges when plugged in, until complete (Tesla's
//     default with no schedule); after that, or after a window ends, it
//     stays Stopped until the next plug-in or window.
func (c *car) decide(t time.Time) (string, bool) {
	if !c.plugged() {
		c.ch.manual, c.ch.plugCharge = "", false
		return ChargingDisconnected, false
	}
	full := c.BatteryKWh > 0 && c.ch.energy >= c.fullKWh()-energyEpsilon
	switch c.ch.manual {
	case "":
	case ChargingCharging, ChargingStarting:
		if full {
			c.ch.manual, c.ch.plugCharge = "", false
			return ChargingComplete, false
		}
		return ChargingCharging, true
	default:
		return c.ch.manual, false
	}
	if full {
		c.ch.plugCharge = false
		return ChargingComplete, false
	}
	if here := c.schedulesHere(); len(here) > 0 {
		c.ch.plugCharge = false
		for _, s := range here {
			if s.activeAt(t, c.env.loc) {
				return ChargingCharging, true
			}
		}
		return ChargingStopped, false
	}
	if c.ch.plugCharge {
		return ChargingCharging, true
	}
	return ChargingStopped, false
}

// redecide sets the charging state from e on and finds the next event. A
// car asleep wakes to charge when wake is set (it is not when a script or
// AddCar has just set its state: it then wakes at the next event).
func (c *car) redecide(e time.Time, wake bool) {
	state, charging := c.decide(e)
	wasCharging := c.ch.gridKW > 0
	c.ChargingState = state
	c.ch.gridKW = 0
	if charging && c.gridPower() > 0 && c.Efficiency > 0 {
		c.ch.gridKW = c.gridPower()
	}
	if c.ch.gridKW > 0 {
		// A car wakes to charge and stays awake while it does (an offline
		// car, out of reach, charges without coming online).
		if c.State == StateAsleep && wake {
			c.State = StateOnline
			c.wakeAt = time.Time{}
		}
		if e.After(c.lastActivity) {
			c.lastActivity = e
		}
	} else if wasCharging && e.After(c.lastActivity) {
		c.lastActivity = e // idle from the moment charging ended
	}
	c.ch.next = c.nextChargeEvent(e)
}

// nextChargeEvent is the first event after e, or zero when nothing will
// change by itself.
func (c *car) nextChargeEvent(e time.Time) time.Time {
	var next time.Time
	take := func(t time.Time) {
		if t.After(e) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if c.ch.gridKW > 0 {
		take(hourStart(e, c.env.loc).Add(time.Hour))
		need := c.fullKWh() - c.ch.energy
		hours := need / (c.ch.gridKW * c.Efficiency)
		d := time.Duration(math.Ceil(hours * float64(time.Hour)))
		take(e.Add(max(d, time.Nanosecond)))
	}
	if c.plugged() {
		for _, s := range c.schedulesHere() {
			if t, ok := s.nextEdge(e, c.env.loc); ok {
				take(t)
			}
		}
	}
	for _, at := range c.ch.consumeAt {
		take(at)
	}
	return next
}

// rearm re-anchors the battery at the car's current moment and decides
// again: after a command or a schedule change.
func (c *car) rearm() {
	c.closeSegment(c.ch.now)
	c.redecide(c.ch.now, true)
	c.observe(c.ch.now)
}

// noteSchedule records when a one-time schedule stored at t will have run.
func (c *car) noteSchedule(s ChargeSchedule, t time.Time) {
	delete(c.ch.consumeAt, s.ID)
	if !s.OneTime || !s.Enabled {
		return
	}
	if end, ok := s.firstEndAfter(t, c.env.loc); ok {
		c.ch.consumeAt[s.ID] = end
	}
}

// afterMutation applies what a script or SetCar changed, at t: the car
// was settled to t before (before holds its state then).
func (c *car) afterMutation(before CarState, t time.Time) {
	if t.Before(c.ch.now) {
		t = c.ch.now // a step scripted in the past applies now: the battery does not run backwards
	}
	c.closeSegment(t)
	c.ch.now = t
	if c.BatteryKWh != before.BatteryKWh && before.BatteryKWh > 0 {
		c.ch.energy *= c.BatteryKWh / before.BatteryKWh
	}
	moved := c.Latitude != before.Latitude || c.Longitude != before.Longitude
	switch {
	case c.BatteryLevel != before.BatteryLevel:
		// The script says what the battery holds: that wins over physics.
		c.ch.energy = float64(c.BatteryLevel) / 100 * c.BatteryKWh
		if moved {
			c.ch.drivenKm += distanceM(before.Latitude, before.Longitude, c.Latitude, c.Longitude) / 1000
		}
	case moved:
		// Driving: kWh per 100 km over the great-circle distance between
		// the positions (UNCONFIRMED: roads are longer; scripts that care
		// set battery_level themselves).
		km := distanceM(before.Latitude, before.Longitude, c.Latitude, c.Longitude) / 1000
		use := math.Min(c.ch.energy, km*c.ConsumptionKWhPer100Km/100)
		c.ch.energy -= use
		c.ch.drivenKm += km
		c.ch.drivenKWh += use
	}
	wasPlugged := before.ConnChargeCable != CableUnplugged && before.ConnChargeCable != ""
	switch {
	case !c.plugged():
		c.ch.manual, c.ch.plugCharge = "", false
	case !wasPlugged:
		// A plug-in: a new session. A charging state the script gave with
		// it is obeyed (as the owner tapping Stop or Start right away);
		// without one the car decides.
		c.ch.added = 0
		c.ch.manual = ""
		if c.ChargingState != before.ChargingState && c.ChargingState != ChargingDisconnected {
			c.ch.manual = c.ChargingState
		}
		c.ch.plugCharge = len(c.schedulesHere()) == 0
	case c.ChargingState != before.ChargingState:
		c.ch.manual = c.ChargingState
	case c.ChargeLimitSOC > before.ChargeLimitSOC && before.ChargingState == ChargingComplete && c.ch.manual == "":
		// A higher limit on a full car resumes charging as at plug-in
		// (UNCONFIRMED).
		c.ch.plugCharge = len(c.schedulesHere()) == 0
	}
	c.redecide(t, c.State == before.State)
	c.observe(t)
}

// schedulesHere are the enabled schedules within the radius of the car.
func (c *car) schedulesHere() []ChargeSchedule {
	var out []ChargeSchedule
	for _, s := range c.schedules {
		if s.Enabled && distanceM(c.Latitude, c.Longitude, s.Latitude, s.Longitude) <= c.env.radiusM {
			out = append(out, s)
		}
	}
	return out
}

// stats is the car's EnergyStats at its current moment (the open segment
// included).
func (c *car) stats() EnergyStats {
	st := EnergyStats{
		VIN: c.VIN, GridKWh: c.ch.gridKWh, BatteryKWh: c.ch.batteryKWh, ByHourOfDay: c.ch.byHour,
		Hours: slices.Clone(c.ch.hours), DrivenKm: c.ch.drivenKm, DrivenKWh: c.ch.drivenKWh,
		StoredKWh: c.energyAt(c.ch.now),
	}
	if c.ch.gridKW > 0 && c.ch.now.After(c.ch.segStart) {
		grid := c.ch.gridKW * c.ch.now.Sub(c.ch.segStart).Hours()
		batt := grid * c.Efficiency
		start := hourStart(c.ch.segStart, c.env.loc)
		st.GridKWh += grid
		st.BatteryKWh += batt
		st.ByHourOfDay[start.In(c.env.loc).Hour()] += grid
		if n := len(st.Hours); n > 0 && st.Hours[n-1].Start.Equal(start) {
			st.Hours[n-1].GridKWh += grid
			st.Hours[n-1].BatteryKWh += batt
		} else {
			st.Hours = append(st.Hours, HourEnergy{Start: start, GridKWh: grid, BatteryKWh: batt})
		}
	}
	if st.Hours == nil {
		st.Hours = []HourEnergy{}
	}
	return st
}

// resetLedger zeroes the energy counters (not the battery).
func (c *car) resetLedger() {
	c.closeSegment(c.ch.now)
	c.ch.gridKWh, c.ch.batteryKWh, c.ch.byHour, c.ch.hours = 0, 0, [24]float64{}, nil
	c.ch.drivenKm, c.ch.drivenKWh = 0, 0
}

// chargeFields are charge_state's charging figures while charging, as the
// car reports them (timdorr/tesla-api chargestate.md for the fields; Home
// Assistant's Tessie/Teslemetry integrations read charge_rate and
// battery_range in miles: charge_rate is range added per hour in mi/h).
type chargeFields struct {
	power, current, voltage int
	phases                  any
	rate                    float64 // mi/h
	minutes                 int
	rangeMi                 float64
}

func (c *car) chargeFields(t time.Time) chargeFields {
	energy := c.energyAt(t)
	f := chargeFields{phases: nil}
	if c.ConsumptionKWhPer100Km > 0 {
		f.rangeMi = math.Round(energy/c.ConsumptionKWhPer100Km*100*1000/metresPerMile*100) / 100
	}
	if c.ch.gridKW <= 0 {
		return f
	}
	f.power = int(math.Round(c.ch.gridKW))
	// Three-phase 230 V above what one phase carries (32 A × 230 V ≈ 7.4 kW).
	f.voltage, f.phases = 230, 3
	perPhase := 3.0
	if c.ch.gridKW <= 7.4 {
		f.phases, perPhase = 1, 1
	}
	f.current = int(math.Round(c.ch.gridKW * 1000 / (230 * perPhase)))
	battKW := c.ch.gridKW * c.Efficiency
	if c.ConsumptionKWhPer100Km > 0 {
		f.rate = math.Round(battKW/c.ConsumptionKWhPer100Km*100*1000/metresPerMile*10) / 10
	}
	if need := c.fullKWh() - energy; need > 0 {
		f.minutes = int(math.Ceil(need / battKW * 60))
	}
	return f
}

// --- schedule windows ------------------------------------------------------

// window is one occurrence of a schedule: [start, end) in absolute time.
type window struct{ start, end time.Time }

// windowsAround lists the schedule's occurrences whose start day lies from
// the day before t to days days after it.
//
// Rules (reference/charging.md): start_time and end_time are minutes after
// the car's local midnight; end < start wraps past midnight, so the
// window belongs to the day it starts on (its days_of_week bit: SUN=1 …
// SAT=64). Edges are built with time.Date from the local date and wall
// clock, so DST nights are 7 or 9 real hours long (a minute inside the
// spring-forward gap becomes the minute an hour later, as time.Date
// normalises it). UNCONFIRMED: start_enabled alone opens a window of a
// day from the start (the car charges until its limit); end_enabled alone
// one from the day's midnight to the end; neither, or start = end, opens
// none (the schedule still applies here, so the car waits).
func (s ChargeSchedule) windowsAround(t time.Time, loc *time.Location, days int) []window {
	if !s.Enabled || (!s.StartEnabled && !s.EndEnabled) {
		return nil
	}
	lt := t.In(loc)
	y, m, d := lt.Date()
	var out []window
	for i := -1; i <= days; i++ {
		day := time.Date(y, m, d+i, 12, 0, 0, 0, loc)
		if s.DaysOfWeek&(1<<day.Weekday()) == 0 {
			continue
		}
		dy, dm, dd := day.Date()
		at := func(dayOffset, minute int) time.Time {
			return time.Date(dy, dm, dd+dayOffset, minute/60, minute%60, 0, 0, loc)
		}
		var w window
		switch {
		case s.StartEnabled && s.EndEnabled:
			if s.StartTime == s.EndTime {
				continue
			}
			w.start = at(0, s.StartTime)
			if s.EndTime > s.StartTime {
				w.end = at(0, s.EndTime)
			} else {
				w.end = at(1, s.EndTime)
			}
		case s.StartEnabled:
			w.start, w.end = at(0, s.StartTime), at(1, s.StartTime)
		default:
			w.start, w.end = at(0, 0), at(0, s.EndTime)
		}
		if w.start.Before(w.end) {
			out = append(out, w)
		}
	}
	return out
}

// activeAt reports whether one of the schedule's windows holds t.
func (s ChargeSchedule) activeAt(t time.Time, loc *time.Location) bool {
	for _, w := range s.windowsAround(t, loc, 0) {
		if !t.Before(w.start) && t.Before(w.end) {
			return true
		}
	}
	return false
}

// nextEdge is the first window start or end after t (within a week).
func (s ChargeSchedule) nextEdge(t time.Time, loc *time.Location) (time.Time, bool) {
	var best time.Time
	for _, w := range s.windowsAround(t, loc, 8) {
		for _, e := range []time.Time{w.start, w.end} {
			if e.After(t) && (best.IsZero() || e.Before(best)) {
				best = e
			}
		}
	}
	return best, !best.IsZero()
}

// firstEndAfter is the end of the first window ending after t.
func (s ChargeSchedule) firstEndAfter(t time.Time, loc *time.Location) (time.Time, bool) {
	var best time.Time
	for _, w := range s.windowsAround(t, loc, 8) {
		if w.end.After(t) && (best.IsZero() || w.end.Before(best)) {
			best = w.end
		}
	}
	return best, !best.IsZero()
}

// distanceM is the great-circle distance in metres (mean Earth radius).
func distanceM(lat1, lon1, lat2, lon2 float64) float64 {
	const earthRadiusM = 6371008.8
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusM * math.Asin(math.Min(1, math.Sqrt(h)))
}
