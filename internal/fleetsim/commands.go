package fleetsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Day bits of a charge schedule's days_of_week as the car reports them.
const (
	DaySunday    = 1
	DayMonday    = 2
	DayTuesday   = 4
	DayWednesday = 8
	DayThursday  = 16
	DayFriday    = 32
	DaySaturday  = 64
	DaysAll      = 127
	DaysWeekdays = 62
)

// dayNames are the names the signing proxy accepts (upper-cased). It knows
// TUES and THURS but not TUE and THU.
var dayNames = map[string]int{
	"SUN": DaySunday, "SUNDAY": DaySunday,
	"MON": DayMonday, "MONDAY": DayMonday,
	"TUES": DayTuesday, "TUESDAY": DayTuesday,
	"WED": DayWednesday, "WEDNESDAY": DayWednesday,
	"THURS": DayThursday, "THURSDAY": DayThursday,
	"FRI": DayFriday, "FRIDAY": DayFriday,
	"SAT": DaySaturday, "SATURDAY": DaySaturday,
	"ALL": DaysAll, "WEEKDAYS": DaysWeekdays,
}

// ParseDaysOfWeek turns the proxy's comma-separated day names into the car's bitmask.
func ParseDaysOfWeek(s string) (int, error) {
	mask := 0
	for _, part := range strings.Split(s, ",") {
		bit, ok := dayNames[strings.ToUpper(strings.TrimSpace(part))]
		if !ok {
			return 0, errors.New("invalid days_of_week param")
		}
		mask |= bit
	}
	return mask, nil
}

// commandParams is a command's JSON body, numbers kept exact.
type commandParams map[string]any

var errParam = errors.New("invalid param")

func (p commandParams) number(key string, required bool) (float64, bool, error) {
	v, ok := p[key]
	if !ok || v == nil {
		if required {
			return 0, false, errParam
		}
		return 0, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false, errParam
	}
	f, err := n.Float64()
	if err != nil {
		return 0, false, errParam
	}
	return f, true, nil
}

func (p commandParams) integer(key string, required bool) (int64, bool, error) {
	f, ok, err := p.number(key, required)
	if err != nil || !ok {
		return 0, ok, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false, errParam
	}
	return int64(f), true, nil
}

func (p commandParams) boolean(key string, required bool) (bool, error) {
	v, ok := p[key]
	if !ok {
		if required {
			return false, errParam
		}
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, errParam
	}
	return b, nil
}

func invalidParam(name string) (int, any) {
	return http.StatusBadRequest, map[string]any{"response": nil, "error": "invalid " + name + " param"}
}

func commandResult(ok bool, reason string) (int, any) {
	return http.StatusOK, map[string]any{"response": map[string]any{"result": ok, "reason": reason}}
}

// errProtocolRequired is Tesla's answer to an unsigned REST command for a car
// that needs signing (vehicle-commands.md §1, github.com/alandtse/tesla/issues/858).
const errProtocolRequired = "Tesla Vehicle Command Protocol required, please refer to the documentation here: https://developer.tesla.com/docs/fleet-api#2023-10-09-rest-api-vehicle-commands-endpoint-deprecation-warning"

// fleetCommand is POST …/command/{name}, answered as tesla-http-proxy does:
// parameters are checked before the car is contacted, an asleep car is a 500.
// A car that requires signing answers 403 before anything else (Tesla's
// server refuses the command), or, with UnsignedHardlocked, the car itself
// answers 200 result:false "unsigned_cmds_hardlocked" (vehicle-commands.md §1).
func (s *Sim) fleetCommand(req fleetRequest) (int, any) {
	c := s.lookupLocked(req.key)
	if c == nil {
		return http.StatusNotFound, fleetNotFound()
	}
	required := c.signing() == CommandSigningRequired
	if required && !c.UnsignedHardlocked {
		return http.StatusForbidden, fleetError(errProtocolRequired)
	}
	params := commandParams{}
	if len(bytes.TrimSpace(req.body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(req.body))
		dec.UseNumber()
		if err := dec.Decode(&params); err != nil {
			return http.StatusBadRequest, map[string]any{"response": nil, "error": "invalid JSON body"}
		}
	}
	var apply func() (bool, string)
	switch req.name {
	case "add_charge_schedule":
		sched, status, body := parseAddChargeSchedule(params)
		if status != 0 {
			return status, body
		}
		apply = func() (bool, string) { return c.addSchedule(sched, req.now) }
	case "remove_charge_schedule":
		id, _, err := params.integer("id", true)
		if err != nil {
			return invalidParam("id")
		}
		apply = func() (bool, string) { return c.removeSchedule(id) }
	case "set_charge_limit":
		pct, _, err := params.integer("percent", true)
		if err != nil {
			return invalidParam("percent")
		}
		apply = func() (bool, string) { return c.setChargeLimit(pct) }
	case "charge_start":
		apply = c.chargeStart
	case "charge_stop":
		apply = c.chargeStop
	default:
		return http.StatusBadRequest, map[string]any{"response": nil, "error": "invalid_command", "error_description": ""}
	}
	if c.State != StateOnline {
		return http.StatusInternalServerError, map[string]any{"response": nil, "error": errUnavailable}
	}
	c.lastActivity = req.now
	if required { // and hardlocked
		return commandResult(false, "unsigned_cmds_hardlocked")
	}
	return commandResult(apply())
}

// parseAddChargeSchedule validates add_charge_schedule's parameters; a
// non-zero status is the 400 to answer.
func parseAddChargeSchedule(p commandParams) (ChargeSchedule, int, any) {
	var cs ChargeSchedule
	days, ok := p["days_of_week"].(string)
	if !ok {
		st, body := invalidParam("days_of_week")
		return cs, st, body
	}
	mask, err := ParseDaysOfWeek(days)
	if err != nil {
		st, body := invalidParam("days_of_week")
		return cs, st, body
	}
	cs.DaysOfWeek = mask
	lat, _, err := p.number("lat", true)
	if err != nil || lat < -90 || lat > 90 {
		st, body := invalidParam("lat")
		return cs, st, body
	}
	lon, _, err := p.number("lon", true)
	if err != nil || lon < -180 || lon > 180 {
		st, body := invalidParam("lon")
		return cs, st, body
	}
	cs.Latitude, cs.Longitude = float64(float32(lat)), float64(float32(lon))
	for _, b := range []struct {
		key      string
		dst      *bool
		required bool
	}{{"enabled", &cs.Enabled, true}, {"start_enabled", &cs.StartEnabled, true}, {"end_enabled", &cs.EndEnabled, true}, {"one_time", &cs.OneTime, false}} {
		v, err := p.boolean(b.key, b.required)
		if err != nil {
			st, body := invalidParam(b.key)
			return cs, st, body
		}
		*b.dst = v
	}
	for _, t := range []struct {
		key string
		dst *int
	}{{"start_time", &cs.StartTime}, {"end_time", &cs.EndTime}} {
		v, _, err := p.integer(t.key, false)
		if err != nil || v < 0 || v > 1439 {
			st, body := invalidParam(t.key)
			return cs, st, body
		}
		*t.dst = int(v)
	}
	id, _, err := p.integer("id", false)
	if err != nil || id < 0 {
		st, body := invalidParam("id")
		return cs, st, body
	}
	cs.ID = id
	if name, ok := p["name"].(string); ok {
		cs.Name = name
	}
	return cs, 0, nil
}

// The car's actions, shared by the REST commands (fleetCommand) and the
// signed ones (signed.go): each changes the car once and returns the result
// and, on failure, the reason the car gives.

// addSchedule stores cs on the car: an existing id is modified in place, a
// missing id becomes now's Unix time (as the proxy assigns it). The car's
// charging follows the new schedules at once (charge.go).
func (c *car) addSchedule(cs ChargeSchedule, now time.Time) (bool, string) {
	if cs.ID == 0 {
		cs.ID = now.Unix()
	}
	stored := false
	for i := range c.schedules {
		if c.schedules[i].ID == cs.ID {
			if cs.Name == "" {
				cs.Name = c.schedules[i].Name
			}
			c.schedules[i] = cs
			stored = true
			break
		}
	}
	if !stored {
		if len(c.schedules) >= c.MaxNumChargeSchedules {
			return false, "max schedules reached"
		}
		c.schedules = append(c.schedules, cs)
	}
	c.noteSchedule(cs, now)
	c.rearm()
	return true, ""
}

// removeSchedule deletes the schedule with id; an unknown id succeeds, as on the car.
func (c *car) removeSchedule(id int64) (bool, string) {
	c.schedules = slices.DeleteFunc(c.schedules, func(cs ChargeSchedule) bool { return cs.ID == id })
	delete(c.ch.consumeAt, id)
	c.rearm()
	return true, ""
}

// setChargeLimit sets the charge limit, 50..100 %. A car that was complete
// below the new limit charges again as at a plug-in (UNCONFIRMED); one
// charging past a lowered limit completes.
func (c *car) setChargeLimit(pct int64) (bool, string) {
	if pct < 50 || pct > 100 {
		return false, "requested charge limit out of range"
	}
	raised := int(pct) > c.ChargeLimitSOC
	c.closeSegment(c.ch.now)
	c.ChargeLimitSOC = int(pct)
	if raised && c.ChargingState == ChargingComplete && c.ch.manual == "" && c.plugged() {
		c.ch.plugCharge = len(c.schedulesHere()) == 0
	}
	c.rearm()
	return true, ""
}

// chargeStart starts charging a plugged-in car below its limit: a forced
// start that charges to the limit whatever the schedules (charge.go). The
// reasons are the Owner API's ("is_charging", "complete"; "disconnected" is
// the simulator's word for an unplugged car).
func (c *car) chargeStart() (bool, string) {
	switch {
	case !c.plugged() || c.ChargingState == ChargingDisconnected:
		return false, "disconnected"
	case c.ChargingState == ChargingCharging || c.ChargingState == ChargingStarting:
		return false, "is_charging"
	case c.BatteryLevel >= c.ChargeLimitSOC:
		c.closeSegment(c.ch.now)
		c.ch.manual = ""
		c.rearm()
		c.ChargingState = ChargingComplete
		return false, "complete"
	}
	c.closeSegment(c.ch.now)
	c.ch.manual = ChargingCharging
	c.rearm()
	return true, ""
}

// chargeStop stops a charging car ("not_charging" otherwise) until it is
// unplugged or started again.
func (c *car) chargeStop() (bool, string) {
	if c.ChargingState != ChargingCharging && c.ChargingState != ChargingStarting {
		return false, "not_charging"
	}
	c.closeSegment(c.ch.now)
	c.ch.manual = ChargingStopped
	c.rearm()
	return true, ""
}
