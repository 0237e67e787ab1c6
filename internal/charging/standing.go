package charging

import (
	"fmt"
	"hash/fnv"
	"sort"
	"time"
)

// Standing schedules: the tariff's cheap hours kept on the car as recurring
// charge schedules at home, beside the plan's one-time ones.
//
// Why: a Tesla plugged in where no charge schedule applies charges at once
// (fleetsim charges so; it is the car's default). The plan's schedules are
// one-time and gone once they ran, and a plan with nothing to charge has
// none, so without a standing schedule the car comes home to an empty list
// and charges at peak from the plug-in until the next cycle puts tonight's
// plan on it — in the simulated year 43 % of the energy. With one, a
// plug-in waits for cheap hours, and a car the worker never reaches (an
// outage, a missed trigger, a week at home) still charges to its limit in
// cheap hours only.
//
// The car charges while any schedule that applies is in its window, so a
// standing window also charges past the plan's end, up to the car's charge
// limit. When the plan aims at that limit (the default: the target is
// min(CHARGE_TARGET_PERCENT, charge limit)) both stop at the same level and
// the standing schedules never change. When the target is below the car's
// limit and the car is plugged in, the standing occurrences that overlap
// the plan's horizon (now until READY_BY) are left out — their days_of_week
// bits cleared — so tonight the plan alone decides; they come back at the
// next cycle after READY_BY.
//
// days_of_week cannot say holidays: the standing schedules use the
// weekday hours on a holiday (the plan uses the holiday's).

// standingDay is the start date of our standing schedules' id block: the
// first block of our range (idEpoch), a date no plan starts on.
var standingDay = civilDate{2020, 1, 1}

// Standing turns the tariff's cheap hours into recurring schedules at home:
// each stretch of cheap time in a week (the weekday hours Monday to Friday,
// the weekend hours Saturday and Sunday) becomes a schedule on the day it
// starts, crossing one midnight at most (a stretch of 24 h or more is cut at
// local midnights, a whole day into two halves, as start = end cannot be
// said); pieces with the same hours share one schedule with their days'
// bits. Ids are ours, stable for given hours (modifying the days keeps the
// id), in the block of standingDay. Sorted by start, then end.
func Standing(t *Tariff, home LatLon) []Schedule {
	const week = 7 * minutesPerDay
	type span struct{ from, to int } // minutes from Sunday 00:00; to may pass the week's end
	var spans []span
	for wd := 0; wd < 7; wd++ {
		ranges := t.weekday
		if time.Weekday(wd) == time.Saturday || time.Weekday(wd) == time.Sunday {
			ranges = t.weekend
		}
		for _, r := range ranges {
			spans = append(spans, span{wd*minutesPerDay + r.From, wd*minutesPerDay + r.To})
		}
	}
	if len(spans) == 0 {
		return nil
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
	merged := []span{spans[0]}
	for _, sp := range spans[1:] {
		if last := &merged[len(merged)-1]; sp.from <= last.to {
			last.to = max(last.to, sp.to)
			continue
		}
		merged = append(merged, sp)
	}
	// The week is a circle: Saturday night runs into Sunday morning.
	if n := len(merged); n > 1 && merged[0].from == 0 && merged[n-1].to == week {
		merged[n-1].to = week + merged[0].to
		merged = merged[1:]
	}

	type hours struct{ start, end int } // minutes of the day; end 0 = midnight after
	days := map[hours]int{}
	var order []hours
	piece := func(from, to int) { // within one stretch, from < to, to − from < a day
		h := hours{from % minutesPerDay, to % minutesPerDay}
		if _, ok := days[h]; !ok {
			order = append(order, h)
		}
		days[h] |= 1 << ((from / minutesPerDay) % 7)
	}
	for _, sp := range merged {
		if sp.to-sp.from < minutesPerDay {
			piece(sp.from, sp.to)
			continue
		}
		for cur := sp.from; cur < sp.to; {
			next := min(sp.to, (cur/minutesPerDay+1)*minutesPerDay)
			if cur%minutesPerDay == 0 && next-cur == minutesPerDay {
				piece(cur, cur+minutesPerDay/2)
				piece(cur+minutesPerDay/2, next)
			} else {
				piece(cur, next)
			}
			cur = next
		}
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].start != order[j].start {
			return order[i].start < order[j].start
		}
		return order[i].end < order[j].end
	})
	out := make([]Schedule, 0, len(order))
	for _, h := range order {
		s := Schedule{
			DaysMask: days[h], StartMin: h.start, EndMin: h.end,
			Enabled: true, StartEnabled: true, EndEnabled: true, OneTime: false,
			Lat: home.Lat, Lon: home.Lon,
		}
		s.ID = standingID(s)
		out = append(out, s)
	}
	return out
}

// standingID is stable for a standing schedule's hours and place, whatever
// its days, so clearing a day's bit modifies the schedule in place.
func standingID(s Schedule) int64 {
	h := fnv.New32a()
	fmt.Fprintf(h, "standing s%d e%d lat%.4f lon%.4f", s.StartMin, s.EndMin, s.Lat, s.Lon)
	return dayBlock(standingDay) + int64(h.Sum32())%idsPerDay
}

// IsStanding tells whether id is one of our standing schedules' ids.
func IsStanding(id int64) bool {
	return IsOurs(id) && id >= dayBlock(standingDay) && id < dayBlock(standingDay)+idsPerDay
}

// WithoutOccurrences clears, in each standing schedule, the days whose
// window (in loc, built from the wall clock as the car does) overlaps
// [from, to); a schedule left with no day is dropped.
func WithoutOccurrences(list []Schedule, from, to time.Time, loc *time.Location) []Schedule {
	var out []Schedule
	for _, s := range list {
		for _, w := range occurrences(s, from.Add(-24*time.Hour), to, loc) {
			if w.Start.Before(to) && w.End.After(from) {
				s.DaysMask &^= DayBit(w.Start.In(loc).Weekday())
			}
		}
		if s.DaysMask != 0 {
			out = append(out, s)
		}
	}
	return out
}

// occurrences are the windows of s that start within [from, to], in loc:
// start and end minutes on the day of each set bit, an end not after the
// start on the next day.
func occurrences(s Schedule, from, to time.Time, loc *time.Location) []Interval {
	var out []Interval
	day := dateOf(from.In(loc))
	last := dateOf(to.In(loc))
	for {
		if s.DaysMask&DayBit(time.Date(day.Y, day.M, day.D, 12, 0, 0, 0, loc).Weekday()) != 0 && s.StartMin != s.EndMin {
			start := wallClock(day, s.StartMin, loc)
			end := wallClock(day, s.EndMin, loc)
			if s.EndMin < s.StartMin {
				end = wallClock(nextDay(day, loc), s.EndMin, loc)
			}
			out = append(out, Interval{start, end})
		}
		if day == last {
			break
		}
		day = nextDay(day, loc)
	}
	return out
}
