package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
)

// Day bits as the car reports days_of_week (charge_schedule_data), per
// Tesla's proxy: Sunday is bit 0. One third-party integration assumes Monday
// is bit 0; Tesla's own mapping wins, and this table is the only place it
// lives.
const (
	DaySunday    = 1 << iota // 1
	DayMonday                // 2
	DayTuesday               // 4
	DayWednesday             // 8
	DayThursday              // 16
	DayFriday                // 32
	DaySaturday              // 64

	DaysAll      = 127
	DaysWeekdays = DayMonday | DayTuesday | DayWednesday | DayThursday | DayFriday // 62
)

// dayNames are the full names DayNames writes, in bit order.
var dayNames = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

// dayNameBits is every spelling tesla-http-proxy accepts (case-insensitive,
// surrounding spaces ignored). Its parser has no TUE or THU: it answers 400
// "invalid days_of_week param" to them, and to integers.
var dayNameBits = map[string]int{
	"SUN": DaySunday, "SUNDAY": DaySunday,
	"MON": DayMonday, "MONDAY": DayMonday,
	"TUES": DayTuesday, "TUESDAY": DayTuesday,
	"WED": DayWednesday, "WEDNESDAY": DayWednesday,
	"THURS": DayThursday, "THURSDAY": DayThursday,
	"FRI": DayFriday, "FRIDAY": DayFriday,
	"SAT": DaySaturday, "SATURDAY": DaySaturday,
	"ALL":      DaysAll,
	"WEEKDAYS": DaysWeekdays,
}

// DayNames turns a days_of_week bitmask, as read back from the car, into the
// string the proxy wants in add_charge_schedule: "All" for 127, "Weekdays"
// for 62, otherwise full day names joined by commas ("Sunday,Tuesday").
// A mask of 0 has no spelling the proxy accepts and is an error.
func DayNames(mask int) (string, error) {
	switch {
	case mask <= 0 || mask > DaysAll:
		return "", fmt.Errorf("fleet: days_of_week mask %d: want 1..127: %w", mask, ErrInvalidRequest)
	case mask == DaysAll:
		return "All", nil
	case mask == DaysWeekdays:
		return "Weekdays", nil
	}
	names := make([]string, 0, 7)
	for bit, name := range dayNames {
		if mask&(1<<bit) != 0 {
			names = append(names, name)
		}
	}
	return strings.Join(names, ","), nil
}

// DayMask parses a days_of_week string the way tesla-http-proxy does:
// comma-separated, case-insensitive names, OR-ed together. It rejects what
// the proxy rejects (TUE, THU, numbers, empty items), so a bad string fails
// here rather than as a 400 from the proxy.
func DayMask(names string) (int, error) {
	mask := 0
	for _, item := range strings.Split(names, ",") {
		name := strings.ToUpper(strings.TrimSpace(item))
		bit, ok := dayNameBits[name]
		if !ok {
			hint := ""
			switch name {
			case "TUE":
				hint = " (the proxy wants TUES or TUESDAY)"
			case "THU", "THUR":
				hint = " (the proxy wants THURS or THURSDAY)"
			}
			return 0, fmt.Errorf("fleet: days_of_week %q: unrecognised day name %q%s: %w",
				names, strings.TrimSpace(item), hint, ErrInvalidRequest)
		}
		mask |= bit
	}
	return mask, nil
}

// ScheduleRequest is the body of add_charge_schedule.
type ScheduleRequest struct {
	// ID is always sent: 0 or absent makes the proxy invent one (the Unix
	// time), and its reply does not say which, so we name our own. Sending an
	// existing id modifies that schedule.
	ID           int64
	DaysOfWeek   string // as DayNames writes it; see DayMask for accepted spellings
	Enabled      bool
	StartEnabled bool
	EndEnabled   bool
	OneTime      bool
	StartTime    int // minutes after local midnight, 0..1439
	EndTime      int // minutes after local midnight, 0..1439; < StartTime wraps past midnight
	Lat, Lon     float64
}

// maxExactID is the largest id the proxy keeps exactly: it reads JSON numbers
// as float64.
const maxExactID = 1 << 53

// Validate reports what the proxy would reject, before anything is sent.
func (s ScheduleRequest) Validate() error {
	if s.ID <= 0 || s.ID > maxExactID {
		return fmt.Errorf("fleet: charge schedule id %d: want 1..2^53: %w", s.ID, ErrInvalidRequest)
	}
	if _, err := DayMask(s.DaysOfWeek); err != nil {
		return err
	}
	for _, t := range []int{s.StartTime, s.EndTime} {
		if t < 0 || t >= 24*60 {
			return fmt.Errorf("fleet: charge schedule time %d: want minutes 0..1439: %w", t, ErrInvalidRequest)
		}
	}
	if math.IsNaN(s.Lat) || math.IsNaN(s.Lon) || !validPosition(s.Lat, s.Lon) {
		return fmt.Errorf("fleet: charge schedule position (%v, %v) out of range: %w", s.Lat, s.Lon, ErrInvalidRequest)
	}
	return nil
}

// MarshalJSON writes the body exactly as the proxy reads it: every field
// present, booleans as real booleans, lat/lon (not latitude/longitude).
func (s ScheduleRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID           int64   `json:"id"`
		DaysOfWeek   string  `json:"days_of_week"`
		Enabled      bool    `json:"enabled"`
		StartEnabled bool    `json:"start_enabled"`
		EndEnabled   bool    `json:"end_enabled"`
		StartTime    int     `json:"start_time"`
		EndTime      int     `json:"end_time"`
		OneTime      bool    `json:"one_time"`
		Lat          float64 `json:"lat"`
		Lon          float64 `json:"lon"`
	}{s.ID, s.DaysOfWeek, s.Enabled, s.StartEnabled, s.EndEnabled, s.StartTime, s.EndTime, s.OneTime, s.Lat, s.Lon})
}

// AddChargeSchedule creates or (same ID) replaces a charge schedule, through
// the command URL. Days are sent in DayNames' canonical spelling. It counts
// as done only when the car answers result:true.
func (c *Client) AddChargeSchedule(ctx context.Context, vin string, s ScheduleRequest) error {
	if err := s.Validate(); err != nil {
		return err
	}
	mask, _ := DayMask(s.DaysOfWeek) // validated above
	canonical, err := DayNames(mask)
	if err != nil {
		return err
	}
	s.DaysOfWeek = canonical
	return c.command(ctx, vin, "add_charge_schedule", s)
}

// RemoveChargeSchedule removes one charge schedule by id, through the
// command URL.
func (c *Client) RemoveChargeSchedule(ctx context.Context, vin string, id int64) error {
	if id <= 0 || id > maxExactID {
		return fmt.Errorf("fleet: charge schedule id %d: want 1..2^53: %w", id, ErrInvalidRequest)
	}
	return c.command(ctx, vin, "remove_charge_schedule", struct {
		ID int64 `json:"id"`
	}{id})
}

// SetChargeLimit sets the charge limit in percent, through the command URL.
// Tesla's cars take 50..100 (the app's range; vehicle-command's
// charge-limit command sends any int32 and the car answers result:false).
func (c *Client) SetChargeLimit(ctx context.Context, vin string, percent int) error {
	if percent < 50 || percent > 100 {
		return fmt.Errorf("fleet: charge limit %d %%: want 50..100: %w", percent, ErrInvalidRequest)
	}
	return c.command(ctx, vin, "set_charge_limit", struct {
		Percent int `json:"percent"`
	}{percent})
}

// command POSTs one command to the command URL and demands result:true.
func (c *Client) command(ctx context.Context, vin, name string, body any) error {
	path, err := vehiclePath(vin)
	if err != nil {
		return err
	}
	r := request{method: http.MethodPost, base: c.commandURL, path: path + "/command/" + name, body: body}
	rep, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	raw, problem := decodeResponse(rep.body, '{')
	if problem != "" {
		return malformed(rep.status, r.endpoint(), problem)
	}
	var reply struct {
		Result jBool   `json:"result"`
		Reason jString `json:"reason"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		return malformed(rep.status, r.endpoint(), err.Error())
	}
	if !reply.Result.ok {
		return malformed(rep.status, r.endpoint(), "command answer has no boolean \"result\"")
	}
	if !reply.Result.v {
		reason := reply.Reason.v
		if strings.TrimSpace(reason) == "" {
			reason = "no reason given"
		}
		kind := ErrCommandFailed
		if saysSigningRequired([]byte(reason)) {
			kind = ErrSigningRequired
		}
		return &APIError{Status: rep.status, Endpoint: r.endpoint(), kind: kind, Message: excerpt(reason, rep.token)}
	}
	return nil
}
