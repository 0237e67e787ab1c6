package charging

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/offpeak-charging/offpeak/internal/geo"
	"hash/fnv"
	"math"
	"sort"
	"strings"
	"time"
)

// Day bits of Schedule.DaysMask as the car reads them back (Tesla's proxy):
// Sunday is bit 0, so the bit of a time.Weekday w is 1<<w.
const (
	Sunday    = 1 << time.Sunday
	Monday    = 1 << time.Monday
	Tuesday   = 1 << time.Tuesday
	Wednesday = 1 << time.Wednesday
	Thursday  = 1 << time.Thursday
	Friday    = 1 << time.Friday
	Saturday  = 1 << time.Saturday
	AllDays   = 127
)

// DayBit is the DaysMask bit of weekday w.
func DayBit(w time.Weekday) int { return 1 << w }

// Schedule is one charge schedule as the car stores it. The fleet client
// turns DaysMask into day names on the way in (add_charge_schedule) and
// reads the bitmask on the way out; Lat/Lon are lat/lon in, latitude/longitude
// out, stored by the car as 32-bit floats.
type Schedule struct {
	ID           int64
	DaysMask     int // SUN=1, MON=2, TUE=4, WED=8, THU=16, FRI=32, SAT=64
	StartMin     int // minutes after local midnight
	EndMin       int // minutes after local midnight; EndMin < StartMin wraps past midnight
	Enabled      bool
	StartEnabled bool
	EndEnabled   bool
	OneTime      bool
	Lat, Lon     float64
}

// LatLon is a position in degrees.
type LatLon = geo.Point

// Our schedule ids are Unix times in seconds, as Tesla's own tools give a
// schedule (the creation time; the protocol's ChargeSchedule.id is an
// "epoch time", vehicle-command carserver common.proto), so car firmware
// sees the kind of id it knows. They are recognisable as ours by their
// date: 2001-09-09 onwards, decades before charge schedules existed
// (firmware 2024.26), so no id Tesla or the proxy assigns (the time now, in
// s, ms or µs) falls in our range. Each day from idEpoch has idsPerDay
// ids; a schedule's id is its start date's block plus a slot hashed from
// its content, so the id still tells the date the schedule starts on.
const (
	OurIDBase  int64 = 1_000_000_000 // 2001-09-09T01:46:40Z
	idsPerDay  int64 = 1000
	idDays     int64 = 100 * 366 // a century of start dates from idEpoch
	ourIDRange int64 = idDays * idsPerDay
)

// idEpoch is the start date of the first block of our ids.
var idEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// IsOurs tells whether id is in the range our schedules use.
func IsOurs(id int64) bool { return id >= OurIDBase && id < OurIDBase+ourIDRange }

// IDStartDate is the local start date one of our ids encodes (ok false for
// an id that is not ours).
func IDStartDate(id int64) (y int, m time.Month, d int, ok bool) {
	if !IsOurs(id) {
		return 0, 0, 0, false
	}
	t := idEpoch.AddDate(0, 0, int((id-OurIDBase)/idsPerDay))
	return t.Year(), t.Month(), t.Day(), true
}

// PositionTolerance is how far, in degrees, a stored position may be from
// the one we sent and still be the same place: the car keeps float32 (about
// 1e-6° at these latitudes); 1e-4° is about 11 m.
const PositionTolerance = 1e-4

func samePlace(aLat, aLon, bLat, bLon float64) bool {
	return math.Abs(aLat-bLat) <= PositionTolerance && math.Abs(aLon-bLon) <= PositionTolerance
}

// sameContent compares what the car does with a schedule, not its id.
func sameContent(a, b Schedule) bool {
	return a.DaysMask == b.DaysMask && a.StartMin == b.StartMin && a.EndMin == b.EndMin &&
		a.Enabled == b.Enabled && a.StartEnabled == b.StartEnabled && a.EndEnabled == b.EndEnabled &&
		a.OneTime == b.OneTime && samePlace(a.Lat, a.Lon, b.Lat, b.Lon)
}

// contentKey is the canonical text of a schedule's content; the position is
// rounded to PositionTolerance so a float32 read-back gives the same key as
// the float64 we sent (except right at a rounding edge, where the id merely
// differs and the content comparison still matches).
func contentKey(s Schedule) string {
	return fmt.Sprintf("d%d s%d e%d en%t se%t ee%t ot%t lat%.4f lon%.4f",
		s.DaysMask, s.StartMin, s.EndMin, s.Enabled, s.StartEnabled, s.EndEnabled, s.OneTime, s.Lat, s.Lon)
}

// ourID derives a schedule's id from its content and the local date it
// starts on, so the same plan always produces the same ids (a retry modifies
// rather than duplicates) while last week's schedule with the same hours,
// which a car may keep after a one-time run, has a different id and is
// replaced rather than trusted.
func ourID(s Schedule, day civilDate) int64 {
	h := fnv.New32a()
	fmt.Fprintf(h, "%04d-%02d-%02d %s", day.Y, day.M, day.D, contentKey(s))
	return dayBlock(day) + int64(h.Sum32())%idsPerDay
}

// dayBlock is the first id of a start date's block.
func dayBlock(day civilDate) int64 {
	days := int64(time.Date(day.Y, day.M, day.D, 0, 0, 0, 0, time.UTC).Sub(idEpoch) / (24 * time.Hour))
	days = ((days % idDays) + idDays) % idDays // dates beyond the century wrap rather than leave the range
	return OurIDBase + days*idsPerDay
}

// nextSlot is the id after id within the same day's block.
func nextSlot(id int64) int64 {
	block := id - (id-OurIDBase)%idsPerDay
	return block + (id-block+1)%idsPerDay
}

// ToSchedules turns plan windows into the charge schedules that carry them
// out at home, in loc's wall-clock time.
//
//   - Minutes after local midnight come from the window's edges in loc, so
//     they are right on DST change days.
//   - A window that crosses one midnight and lasts under 24 h stays one
//     schedule with EndMin < StartMin (the car wraps); a longer one is split
//     at local midnights.
//   - OneTime with only the day the window starts, so a plan for tonight
//     cannot fire again on a later day.
//   - Ids are ours (IsOurs), derived from the content and the start date;
//     identical pieces collapse into one.
//
// The result is sorted by start.
func ToSchedules(windows []Window, loc *time.Location, home LatLon) []Schedule {
	var out []Schedule
	seenKey := map[string]bool{}
	seenID := map[int64]bool{}
	for _, w := range windows {
		cur := w.Start.In(loc)
		end := w.End.In(loc)
		for cur.Before(end) {
			pieceEnd := end
			y, m, d := cur.Date()
			nextMidnight := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
			dayAfter := time.Date(y, m, d+2, 0, 0, 0, 0, loc)
			// Past the next midnight is fine once, as a wrap, if the end's
			// wall clock is before the start's; otherwise cut at midnight.
			if end.After(nextMidnight) && (!end.Before(dayAfter) || minuteOfDay(end) >= minuteOfDay(cur)) {
				pieceEnd = nextMidnight
			}
			s := Schedule{
				DaysMask:     DayBit(cur.Weekday()),
				StartMin:     minuteOfDay(cur),
				EndMin:       minuteOfDay(pieceEnd),
				Enabled:      true,
				StartEnabled: true,
				EndEnabled:   true,
				OneTime:      true,
				Lat:          home.Lat,
				Lon:          home.Lon,
			}
			cur = pieceEnd.In(loc)
			if s.StartMin == s.EndMin { // shorter than a minute after rounding
				continue
			}
			key := fmt.Sprintf("%d-%d-%d %s", y, m, d, contentKey(s))
			if seenKey[key] {
				continue
			}
			seenKey[key] = true
			// A hash collision between different pieces moves on to the
			// next free id; the order of windows makes that deterministic.
			s.ID = ourID(s, civilDate{y, m, d})
			for seenID[s.ID] {
				s.ID = nextSlot(s.ID)
			}
			seenID[s.ID] = true
			out = append(out, s)
		}
	}
	return out
}

func minuteOfDay(t time.Time) int { return t.Hour()*60 + t.Minute() }

// PlanHash is a short fingerprint of a desired schedule set, independent of
// its order; it is what the cycle stores once the car confirmed the set.
func PlanHash(desired []Schedule) string {
	keys := make([]string, len(desired))
	for i, s := range desired {
		keys[i] = fmt.Sprintf("%d %s", s.ID, contentKey(s))
	}
	sort.Strings(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	return hex.EncodeToString(sum[:16])
}
