package needs

import (
	"fmt"
	"strings"
	"time"
)

// Local layouts of `by`: the "YYYY-MM-DD HH:MM", and the same with
// a T, which is what an HTML datetime-local field sends.
var localLayouts = []string{"2006-01-02 15:04", "2006-01-02T15:04"}

// ParseTime reads `by`: an RFC 3339 time (its offset says which instant it
// is), or a local "YYYY-MM-DD HH:MM" wall-clock time in loc (TIMEZONE).
// The result is truncated to the minute: charge schedules have minute
// resolution, and earlier is the safe side of a deadline.
//
// A local time is not always one instant. On the spring-forward day the
// wall-clock times inside the gap (02:00–02:59 in Europe/Warsaw) never
// happen: they are rejected with ErrTime, naming the gap, rather than
// moved, because either direction of moving is a guess about what the
// person meant. On the fall-back day the times of the repeated hour happen
// twice: the earlier instant is taken, because a car ready by the first
// 02:30 is also ready by the second, while the reverse is not true.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("%w: by is required (RFC 3339, or local YYYY-MM-DD HH:MM)", ErrTime)
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.Truncate(time.Minute), nil
	}
	for _, layout := range localLayouts {
		// Without a zone in the layout, Parse gives the wall clock as if in UTC.
		if wall, err := time.Parse(layout, s); err == nil {
			return resolveLocal(wall, loc)
		}
	}
	return time.Time{}, fmt.Errorf("%w: %q is neither RFC 3339 (2026-12-05T08:00:00+01:00) nor local YYYY-MM-DD HH:MM", ErrTime, s)
}

// resolveLocal finds the instants whose wall clock in loc reads wall (its
// UTC fields) and returns the earliest. Each candidate subtracts an offset
// loc uses within a day of wall; zones change offset at most a few times a
// year, so the three probes see every offset that can apply.
func resolveLocal(wall time.Time, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	var best time.Time
	for _, probe := range []time.Duration{-24 * time.Hour, 0, 24 * time.Hour} {
		_, offset := wall.Add(probe).In(loc).Zone()
		t := wall.Add(-time.Duration(offset) * time.Second)
		if !sameWallClock(t.In(loc), wall) {
			continue
		}
		if best.IsZero() || t.Before(best) {
			best = t
		}
	}
	if best.IsZero() {
		return time.Time{}, fmt.Errorf("%w: %s does not exist in %s (the clocks skip it on that day); pick a time after the change",
			ErrTime, wall.Format(localLayouts[0]), loc)
	}
	return best.In(loc), nil
}

func sameWallClock(t, wall time.Time) bool {
	y1, m1, d1 := t.Date()
	y2, m2, d2 := wall.Date()
	return y1 == y2 && m1 == m2 && d1 == d2 && t.Hour() == wall.Hour() && t.Minute() == wall.Minute()
}
