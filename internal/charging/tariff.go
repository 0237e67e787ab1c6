package charging

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidConfig marks every configuration error of this package; the
// concrete *ConfigError names the variable and the bad token.
var ErrInvalidConfig = errors.New("invalid charging configuration")

// ConfigError says which variable holds which bad token, and why.
type ConfigError struct {
	Var    string // environment variable, e.g. TARIFF_WINDOWS
	Token  string // the offending piece of its value
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s: %q: %s", e.Var, e.Token, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true for every ConfigError.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Names of the configuration variables, used in error messages.
const (
	VarTariffWindows        = "TARIFF_WINDOWS"
	VarTariffWindowsWeekend = "TARIFF_WINDOWS_WEEKEND"
	VarTariffHolidays       = "TARIFF_HOLIDAYS"
)

const minutesPerDay = 24 * 60

// dayRange is a half-open range of wall-clock minutes within one calendar
// day: 0 <= From < To <= 1440.
type dayRange struct{ From, To int }

// Interval is a half-open span of absolute time [Start, End).
type Interval struct {
	Start, End time.Time
}

// Duration is End − Start.
func (iv Interval) Duration() time.Duration { return iv.End.Sub(iv.Start) }

type civilDate struct {
	Y int
	M time.Month
	D int
}

func dateOf(t time.Time) civilDate {
	y, m, d := t.Date()
	return civilDate{y, m, d}
}

// Tariff knows the cheap hours of a two-tier time-of-use tariff in one zone.
// It is immutable and safe for concurrent use.
type Tariff struct {
	loc      *time.Location
	weekday  []dayRange
	weekend  []dayRange
	holidays map[civilDate]bool
}

// ParseTariff reads TARIFF_WINDOWS (weekday) and TARIFF_WINDOWS_WEEKEND
// (Saturday, Sunday and holidays; empty = same as weekday) in zone tz.
//
// A value is a comma-separated list of HH:MM-HH:MM. An end before the start
// crosses midnight (22:00-06:00); 24:00 is allowed as an end (00:00-24:00 is a
// whole day); overlapping windows are merged.
//
// Each instant is judged by the variant of the calendar day it falls on: a
// crossing window such as 22:00-06:00 stands for 00:00-06:00 and 22:00-24:00
// of every day of its variant. This keeps G12w right on both edges of a
// weekend (Friday 22:00 and Monday 00:00-06:00 are cheap), which "the day a
// window starts chooses the variant" would not for Sunday night.
func ParseTariff(weekday, weekend string, tz *time.Location) (*Tariff, error) {
	if tz == nil {
		return nil, &ConfigError{Var: "TIMEZONE", Token: "", Reason: "no time zone"}
	}
	wd, err := parseWindows(VarTariffWindows, weekday)
	if err != nil {
		return nil, err
	}
	if len(wd) == 0 {
		return nil, &ConfigError{Var: VarTariffWindows, Token: weekday, Reason: "at least one window is required, e.g. 22:00-06:00,13:00-15:00"}
	}
	we := wd
	if strings.TrimSpace(weekend) != "" {
		if we, err = parseWindows(VarTariffWindowsWeekend, weekend); err != nil {
			return nil, err
		}
	}
	return &Tariff{loc: tz, weekday: wd, weekend: we}, nil
}

// WithHolidays returns a copy of t in which the dates of TARIFF_HOLIDAYS (a
// comma-separated YYYY-MM-DD list, in the tariff's zone) use the weekend
// variant. An empty list returns t unchanged.
func (t *Tariff) WithHolidays(list string) (*Tariff, error) {
	if strings.TrimSpace(list) == "" {
		return t, nil
	}
	c := *t
	c.holidays = make(map[civilDate]bool, len(t.holidays))
	for d := range t.holidays {
		c.holidays[d] = true
	}
	for _, tok := range strings.Split(list, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		d, err := time.ParseInLocation("2006-01-02", tok, t.loc)
		if err != nil {
			return nil, &ConfigError{Var: VarTariffHolidays, Token: tok, Reason: "want a date as YYYY-MM-DD"}
		}
		c.holidays[dateOf(d)] = true
	}
	return &c, nil
}

// Location is the zone the tariff's hours are read in.
func (t *Tariff) Location() *time.Location { return t.loc }

func (t *Tariff) rangesFor(d civilDate) []dayRange {
	wd := time.Date(d.Y, d.M, d.D, 12, 0, 0, 0, t.loc).Weekday()
	if wd == time.Saturday || wd == time.Sunday || t.holidays[d] {
		return t.weekend
	}
	return t.weekday
}

// CheapIntervals returns the cheap time within [from, to) as sorted, merged
// absolute intervals. Every edge is built with time.Date from the calendar
// day and the wall-clock time in the tariff's zone, never as midnight plus a
// duration: the night 22:00-06:00 that contains the spring-forward hour is 7
// real hours long and the one with the fall-back hour 9.
func (t *Tariff) CheapIntervals(from, to time.Time) []Interval {
	if !from.Before(to) {
		return nil
	}
	var out []Interval
	day := dateOf(from.In(t.loc))
	last := dateOf(to.In(t.loc))
	for {
		for _, r := range t.rangesFor(day) {
			iv := Interval{Start: wallClock(day, r.From, t.loc), End: wallClock(day, r.To, t.loc)}
			if iv.Start.Before(from) {
				iv.Start = from
			}
			if iv.End.After(to) {
				iv.End = to
			}
			if iv.Start.Before(iv.End) {
				out = append(out, iv)
			}
		}
		if day == last {
			break
		}
		day = nextDay(day, t.loc)
	}
	return mergeIntervals(out)
}

// wallClock is minute m (0..1440) of calendar day d in loc. 1440 is the next
// day's midnight.
func wallClock(d civilDate, m int, loc *time.Location) time.Time {
	return time.Date(d.Y, d.M, d.D, m/60, m%60, 0, 0, loc)
}

func nextDay(d civilDate, loc *time.Location) civilDate {
	// Noon keeps clear of any DST edge, which all sit at night.
	return dateOf(time.Date(d.Y, d.M, d.D+1, 12, 0, 0, 0, loc))
}

// mergeIntervals sorts and merges overlapping or touching intervals.
func mergeIntervals(in []Interval) []Interval {
	if len(in) == 0 {
		return nil
	}
	s := append([]Interval(nil), in...)
	sort.Slice(s, func(i, j int) bool { return s[i].Start.Before(s[j].Start) })
	out := []Interval{s[0]}
	for _, iv := range s[1:] {
		lastIv := &out[len(out)-1]
		if !iv.Start.After(lastIv.End) {
			if iv.End.After(lastIv.End) {
				lastIv.End = iv.End
			}
			continue
		}
		out = append(out, iv)
	}
	return out
}

// intersectIntervals returns the parts of a that lie inside b; both sorted and merged.
func intersectIntervals(a, b []Interval) []Interval {
	var out []Interval
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		s, e := later(a[i].Start, b[j].Start), earlier(a[i].End, b[j].End)
		if s.Before(e) {
			out = append(out, Interval{s, e})
		}
		if a[i].End.Before(b[j].End) {
			i++
		} else {
			j++
		}
	}
	return out
}

// subtractIntervals returns the parts of a that lie outside b; both sorted and merged.
func subtractIntervals(a, b []Interval) []Interval {
	var out []Interval
	for _, iv := range a {
		cur := iv.Start
		for _, cut := range b {
			if !cut.End.After(cur) || !cut.Start.Before(iv.End) {
				continue
			}
			if cut.Start.After(cur) {
				out = append(out, Interval{cur, cut.Start})
			}
			cur = later(cur, cut.End)
		}
		if cur.Before(iv.End) {
			out = append(out, Interval{cur, iv.End})
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// parseWindows turns "22:00-06:00,13:00-15:00" into sorted, merged
// within-day ranges; a crossing window becomes its two halves.
func parseWindows(varName, value string) ([]dayRange, error) {
	var out []dayRange
	for _, tok := range strings.Split(value, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		from, to, ok := strings.Cut(tok, "-")
		if !ok {
			return nil, &ConfigError{Var: varName, Token: tok, Reason: "want HH:MM-HH:MM"}
		}
		start, err := parseClockMinutes(strings.TrimSpace(from), false)
		if err != nil {
			return nil, &ConfigError{Var: varName, Token: tok, Reason: "start: " + err.Error()}
		}
		end, err := parseClockMinutes(strings.TrimSpace(to), true)
		if err != nil {
			return nil, &ConfigError{Var: varName, Token: tok, Reason: "end: " + err.Error()}
		}
		switch {
		case start == end:
			return nil, &ConfigError{Var: varName, Token: tok, Reason: "start equals end; write 00:00-24:00 for a whole day"}
		case start < end:
			out = append(out, dayRange{start, end})
		default: // crosses midnight
			out = append(out, dayRange{start, minutesPerDay})
			if end > 0 {
				out = append(out, dayRange{0, end})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	var merged []dayRange
	for _, r := range out {
		if n := len(merged); n > 0 && r.From <= merged[n-1].To {
			if r.To > merged[n-1].To {
				merged[n-1].To = r.To
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged, nil
}

// parseClockMinutes reads HH:MM as minutes after midnight; 24:00 only when
// allow24 (an end).
func parseClockMinutes(s string, allow24 bool) (int, error) {
	hs, ms, ok := strings.Cut(s, ":")
	if !ok || len(ms) != 2 || len(hs) < 1 || len(hs) > 2 {
		return 0, errors.New("want HH:MM")
	}
	h, err1 := strconv.Atoi(hs)
	m, err2 := strconv.Atoi(ms)
	if err1 != nil || err2 != nil || h < 0 || m < 0 {
		return 0, errors.New("want HH:MM")
	}
	if m > 59 {
		return 0, errors.New("minute out of range")
	}
	if h == 24 && m == 0 {
		if !allow24 {
			return 0, errors.New("24:00 is allowed only as an end")
		}
		return minutesPerDay, nil
	}
	if h > 23 {
		return 0, errors.New("hour out of range")
	}
	return h*60 + m, nil
}

// ClockTime is a wall-clock time of day, such as READY_BY=07:00.
type ClockTime struct{ Hour, Minute int }

// ParseClockTime reads HH:MM (00:00..23:59) for the variable varName.
func ParseClockTime(varName, s string) (ClockTime, error) {
	m, err := parseClockMinutes(strings.TrimSpace(s), false)
	if err != nil {
		return ClockTime{}, &ConfigError{Var: varName, Token: s, Reason: err.Error()}
	}
	return ClockTime{m / 60, m % 60}, nil
}

func (c ClockTime) String() string { return fmt.Sprintf("%02d:%02d", c.Hour, c.Minute) }

// Next is the first occurrence of c in loc strictly after now. On a
// spring-forward day a time inside the missing hour comes out as time.Date
// normalises it (an hour later).
func (c ClockTime) Next(now time.Time, loc *time.Location) time.Time {
	local := now.In(loc)
	y, m, d := local.Date()
	t := time.Date(y, m, d, c.Hour, c.Minute, 0, 0, loc)
	if !t.After(now) {
		t = time.Date(y, m, d+1, c.Hour, c.Minute, 0, 0, loc)
	}
	return t
}
