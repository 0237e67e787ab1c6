package fleetsim

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

const errUnavailable = "vehicle unavailable: vehicle is offline or asleep"

// fleetRequest is a decoded, authenticated Fleet API call.
type fleetRequest struct {
	r    *http.Request
	key  string // the {vin} path element (a VIN or a numeric id)
	name string // command name
	body []byte
	now  time.Time
	base string
	// carFault is an injected Fault.CarFault (signed_command only).
	carFault string
}

// fleetRoute is what the path of a Fleet API request names.
type fleetRoute struct {
	ep       Endpoint
	method   string
	key      string // VIN or id from the path; "" for account-level calls
	name     string // command name
	category string
	handle   func(*Sim, fleetRequest) (int, any) // called with s.mu held
	// unlocked, when set, replaces handle and is called without s.mu held
	// (it makes network calls: the partner key fetch).
	unlocked func(*Sim, fleetRequest) (int, any)
	// partner: the endpoint takes a partner token, not a user token.
	partner bool
}

func routeFleet(path string) (fleetRoute, bool) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(path, "/api/1/"), "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "users" && parts[1] == "region":
		return fleetRoute{ep: EndpointRegion, method: http.MethodGet, category: CategoryOther, handle: (*Sim).fleetRegion}, true
	case len(parts) == 1 && parts[0] == "partner_accounts":
		return fleetRoute{ep: EndpointPartnerAccounts, method: http.MethodPost, category: CategoryOther, unlocked: (*Sim).partnerRegister, partner: true}, true
	case len(parts) == 2 && parts[0] == "partner_accounts" && parts[1] == "public_key":
		return fleetRoute{ep: EndpointPartnerAccounts, method: http.MethodGet, category: CategoryOther, handle: (*Sim).partnerPublicKey, partner: true}, true
	case parts[0] != "vehicles":
		return fleetRoute{}, false
	}
	return routeVehicles(parts)
}

// routeVehicles routes /api/1/vehicles[/{vin}[/…]].
func routeVehicles(parts []string) (fleetRoute, bool) {
	switch {
	case len(parts) == 1:
		return fleetRoute{ep: EndpointVehicles, method: http.MethodGet, category: CategoryOther, handle: (*Sim).fleetVehicles}, true
	case parts[1] == "":
		return fleetRoute{}, false
	case len(parts) == 2 && parts[1] == "fleet_status":
		return fleetRoute{ep: EndpointFleetStatus, method: http.MethodPost, category: CategoryOther, handle: (*Sim).fleetFleetStatus}, true
	case len(parts) == 2:
		return fleetRoute{ep: EndpointVehicle, method: http.MethodGet, key: parts[1], category: CategoryOther, handle: (*Sim).fleetVehicle}, true
	case len(parts) == 3 && parts[2] == "vehicle_data":
		return fleetRoute{ep: EndpointVehicleData, method: http.MethodGet, key: parts[1], category: CategoryData, handle: (*Sim).fleetVehicleData}, true
	case len(parts) == 3 && parts[2] == "wake_up":
		return fleetRoute{ep: EndpointWakeUp, method: http.MethodPost, key: parts[1], category: CategoryWake, handle: (*Sim).fleetWakeUp}, true
	case len(parts) == 3 && parts[2] == "signed_command":
		return fleetRoute{ep: EndpointSignedCommand, method: http.MethodPost, key: parts[1], category: CategoryCommand, handle: (*Sim).fleetSignedCommand}, true
	case len(parts) == 4 && parts[2] == "command" && parts[3] != "":
		return fleetRoute{ep: EndpointCommand, method: http.MethodPost, key: parts[1], name: parts[3], category: CategoryCommand, handle: (*Sim).fleetCommand}, true
	}
	return fleetRoute{}, false
}

// handleFleet serves /api/1/…: route, latency and faults, bearer check, counting.
func (s *Sim) handleFleet(w http.ResponseWriter, r *http.Request) {
	rt, ok := routeFleet(r.URL.Path)
	if !ok {
		writeJSON(w, http.StatusNotFound, fleetError("not_found"))
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeJSON(w, http.StatusMethodNotAllowed, fleetError("method not allowed"))
		return
	}
	vin := s.counterVIN(rt.key)
	s.withFaults(rt.ep, w, r, func(w http.ResponseWriter, r *http.Request) {
		s.serveFleet(rt, vin, w, r)
	}, func(status int) {
		s.counters.fleet(vin, rt.category, status)
	})
}

// counterVIN maps the path's key (VIN or id) to the VIN counters use.
func (s *Sim) counterVIN(key string) string {
	if key == "" {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.lookupLocked(key); c != nil {
		return c.VIN
	}
	return key
}

func (s *Sim) serveFleet(rt fleetRoute, vin string, w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, fleetError("unreadable body"))
			return
		}
	}
	bearer, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	req := fleetRequest{r: r, key: rt.key, name: rt.name, body: body, base: s.baseURL(r)}
	req.carFault, _ = r.Context().Value(carFaultKey{}).(string)

	token := strings.TrimSpace(bearer)
	if !hasBearer {
		token = ""
	}

	s.mu.Lock()
	req.now = s.now()
	s.advanceLocked(req.now)
	status, out, refused := s.authorizeLocked(rt, token, req)
	if refused && status == http.StatusUnauthorized {
		s.mu.Unlock()
		s.counters.unauthorized()
		s.log.Debug("fleet request unauthorized", zap.String("endpoint", string(rt.ep)))
		writeJSON(w, status, out)
		return
	}
	switch {
	case refused:
		s.mu.Unlock()
	case rt.unlocked != nil:
		s.mu.Unlock()
		status, out = rt.unlocked(s, req)
	default:
		status, out = rt.handle(s, req)
		s.mu.Unlock()
	}

	s.counters.fleet(vin, rt.category, status)
	s.log.Debug("fleet request", zap.String("endpoint", string(rt.ep)), zap.String("vin", vin), zap.Int("status", status))
	writeJSON(w, status, out)
}

// errTokenExpired is the 401 body for a token the Fleet API does not accept.
var errTokenExpired = fleetError("token expired (401)")

// authorizeLocked checks the bearer token for the route. refused says the
// request ends here with status and out:
//   - user endpoints take a user token (401 otherwise). A partner token
//     gets 401 with the body Tesla answered a partner token on
//     /api/1/vehicles, "upstream internal error" (vehicle-command issue 17,
//     whose status was not recorded: 401 is the simulator's choice, as the
//     token is not one these endpoints accept). With RequireRegistration
//     and no partner registration in this region: 412 (precondition412).
//   - partner endpoints take a partner token whose audience is this
//     region's base URL (401 otherwise; for another region's audience with
//     the simulator's own words). A user token gets 403 "Expected partner
//     account" (vehicle-command issue 166; the status is UNCONFIRMED).
func (s *Sim) authorizeLocked(rt fleetRoute, token string, req fleetRequest) (int, any, bool) {
	if rt.partner {
		switch s.checkPartnerToken(token, req.base, req.now) {
		case partnerOK:
			return 0, nil, false
		case partnerWrongAudience:
			return http.StatusUnauthorized, fleetError("the partner token's audience is not this region's Fleet API URL " + req.base), true
		}
		if token != "" && s.accessOKLocked(token, req.now) {
			return http.StatusForbidden, fleetError("Expected partner account"), true
		}
		return http.StatusUnauthorized, errTokenExpired, true
	}
	if token == "" || !s.accessOKLocked(token, req.now) {
		if token != "" && s.checkPartnerToken(token, req.base, req.now) != partnerInvalid {
			return http.StatusUnauthorized, fleetError("upstream internal error"), true
		}
		return http.StatusUnauthorized, errTokenExpired, true
	}
	if s.opts.RequireRegistration && !s.registeredLocked() {
		return http.StatusPreconditionFailed, s.precondition412(req.base), true
	}
	return 0, nil, false
}

// teslaError is Tesla's error body, keys in Tesla's order:
// {"response":null,"error":"…","error_description":""}.
type teslaError struct {
	Response         any    `json:"response"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func fleetError(msg string) teslaError { return teslaError{Error: msg} }

func (s *Sim) fleetRegion(req fleetRequest) (int, any) {
	return http.StatusOK, map[string]any{"response": map[string]any{
		"region":             strings.ToLower(s.opts.Region),
		"fleet_api_base_url": req.base,
	}}
}

func vehicleSummary(c *car) map[string]any {
	return map[string]any{
		"id":           c.ID,
		"id_s":         strconv.FormatInt(c.ID, 10),
		"vehicle_id":   c.vehicleID,
		"vin":          c.VIN,
		"display_name": c.DisplayName,
		"state":        c.State,
		"in_service":   false,
		"access_type":  "OWNER",
		"api_version":  79,
		// command_signing: "required", "off" or "allowed" (vehicle-commands.md
		// §1; Home Assistant signs exactly when it is "required").
		"command_signing": c.signing(),
	}
}

// carType is vehicle_config.car_type from the VIN's model letter (5YJS… is a Model S).
func carType(vin string) string {
	if len(vin) >= 4 {
		switch vin[3] {
		case 'S':
			return "models"
		case 'X':
			return "modelx"
		case 'Y':
			return "modely"
		}
	}
	return "model3"
}

func (s *Sim) fleetVehicles(req fleetRequest) (int, any) {
	perPage, err := strconv.Atoi(queryParam(req.r, "per_page"))
	if err != nil || perPage <= 0 || perPage > 100 {
		perPage = 100
	}
	page, err := strconv.Atoi(queryParam(req.r, "page"))
	if err != nil || page <= 0 {
		page = 1
	}
	total := len(s.carOrder)
	list := []map[string]any{}
	for i := (page - 1) * perPage; i < total && i < page*perPage; i++ {
		list = append(list, vehicleSummary(s.cars[s.carOrder[i]]))
	}
	pages := (total + perPage - 1) / perPage
	var next, prev any
	if page < pages {
		next = page + 1
	}
	if page > 1 {
		prev = page - 1
	}
	return http.StatusOK, map[string]any{
		"response": list,
		"count":    total,
		"pagination": map[string]any{
			"previous": prev, "next": next, "current": page, "per_page": perPage, "count": total, "pages": pages,
		},
	}
}

func (s *Sim) fleetVehicle(req fleetRequest) (int, any) {
	c := s.lookupLocked(req.key)
	if c == nil {
		return http.StatusNotFound, fleetNotFound()
	}
	return http.StatusOK, map[string]any{"response": vehicleSummary(c)}
}

func fleetNotFound() map[string]any { return map[string]any{"response": nil, "error": "not_found"} }

// allSections is what vehicle_data returns without an endpoints parameter:
// everything but the location.
var allSections = []string{"charge_state", "climate_state", "drive_state", "vehicle_state", "vehicle_config", "charge_schedule_data"}

func (s *Sim) fleetVehicleData(req fleetRequest) (int, any) {
	c := s.lookupLocked(req.key)
	if c == nil {
		return http.StatusNotFound, fleetNotFound()
	}
	if c.State != StateOnline {
		return http.StatusRequestTimeout, fleetError(errUnavailable)
	}
	c.lastActivity = req.now // a live call keeps the car awake

	sections := allSections
	if ep := queryParam(req.r, "endpoints"); ep != "" {
		sections = strings.FieldsFunc(ep, func(r rune) bool { return r == ';' || r == ',' })
	}
	want := map[string]bool{}
	for _, sec := range sections {
		want[strings.TrimSpace(sec)] = true
	}
	ms := req.now.UnixMilli()
	resp := vehicleSummary(c)
	resp["user_id"] = 800001
	if want["charge_state"] {
		resp["charge_state"] = chargeState(c, req.now)
	}
	// Without the vehicle_location scope Tesla leaves drive_state out
	// altogether, speed and shift state included, and nothing errors
	// (teslamotors/fleet-telemetry#460, 2026-05); with it, coordinates
	// arrive only when location_data is named (firmware 2023.38+, Tesla's
	// changelog 2023-10-24).
	locationScope := slices.Contains(strings.Fields(s.chain.scope), "vehicle_location")
	if (want["drive_state"] || want["location_data"]) && locationScope {
		ds := map[string]any{"timestamp": ms, "shift_state": nil, "speed": nil, "power": 0}
		if want["location_data"] {
			ds["latitude"] = c.Latitude
			ds["longitude"] = c.Longitude
			ds["heading"] = 90
			ds["gps_as_of"] = req.now.Unix()
			ds["native_location_supported"] = 1
			ds["native_latitude"] = c.Latitude
			ds["native_longitude"] = c.Longitude
			ds["native_type"] = "wgs"
		}
		resp["drive_state"] = ds
	}
	if want["charge_schedule_data"] {
		list := make([]ChargeSchedule, len(c.schedules))
		copy(list, c.schedules)
		resp["charge_schedule_data"] = map[string]any{
			"charge_schedules":         list,
			"max_num_charge_schedules": c.MaxNumChargeSchedules,
			"next_schedule":            false,
			"timestamp":                ms,
		}
	}
	if want["vehicle_state"] {
		resp["vehicle_state"] = map[string]any{
			"timestamp": ms, "locked": true, "odometer": 12345.6, "car_version": c.FirmwareVersion + " fleetsim",
			"vehicle_name": c.DisplayName, "sentry_mode": false, "api_version": 79,
		}
	}
	if want["vehicle_config"] {
		_, offset := req.now.In(s.opts.Location).Zone()
		resp["vehicle_config"] = map[string]any{
			"timestamp": ms, "car_type": carType(c.VIN), "utc_offset": offset, "can_accept_navigation_requests": true,
		}
	}
	if want["climate_state"] {
		resp["climate_state"] = map[string]any{
			"timestamp": ms, "inside_temp": 20.5, "outside_temp": 12.0, "is_climate_on": false,
		}
	}
	return http.StatusOK, map[string]any{"response": resp}
}

// chargeState is charge_state as the car reports it (field names and
// units after timdorr/tesla-api chargestate.md: battery_range and
// charge_rate in miles and mi/h, charge_energy_added in kWh since the
// plug-in, minutes_to_full_charge to the charge limit at the present rate).
func chargeState(c *car, now time.Time) map[string]any {
	plugged := c.plugged()
	f := c.chargeFields(now)
	return map[string]any{
		"timestamp":               now.UnixMilli(),
		"battery_level":           c.BatteryLevel,
		"usable_battery_level":    c.BatteryLevel,
		"battery_range":           f.rangeMi,
		"charging_state":          c.ChargingState,
		"conn_charge_cable":       c.ConnChargeCable,
		"charge_port_door_open":   plugged,
		"charge_limit_soc":        c.ChargeLimitSOC,
		"charge_energy_added":     c.ChargeEnergyAdded,
		"charge_rate":             f.rate,
		"charger_power":           f.power,
		"charger_actual_current":  f.current,
		"charger_voltage":         f.voltage,
		"charger_phases":          f.phases,
		"minutes_to_full_charge":  f.minutes,
		"time_to_full_charge":     math.Round(float64(f.minutes)/60*100) / 100,
		"scheduled_charging_mode": "Off",
	}
}

func (s *Sim) fleetWakeUp(req fleetRequest) (int, any) {
	c := s.lookupLocked(req.key)
	if c == nil {
		return http.StatusNotFound, fleetNotFound()
	}
	summary := vehicleSummary(c) // the state before waking, as Tesla answers
	if c.State == StateOnline {
		c.lastActivity = req.now
	} else if c.wakeAt.IsZero() {
		c.wakeAt = req.now.Add(s.opts.WakeDelay)
	}
	return http.StatusOK, map[string]any{"response": summary}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
