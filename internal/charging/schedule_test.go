package charging

import (
	"fmt"
	"testing"
	"time"
)

var home = LatLon{Lat: 52.229676, Lon: 21.012229}

func win(t testing.TB, from, to string) Window { return Window{lt(t, from), lt(t, to)} }

func TestToSchedules(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	type piece struct {
		days, start, end int
	}
	cases := []struct {
		name    string
		windows []Window
		want    []piece
	}{
		{"night crossing midnight stays one wrapping schedule, Tuesday only",
			[]Window{win(t, "2026-01-13 22:00", "2026-01-14 01:00")}, []piece{{Tuesday, 1320, 60}}},
		{"midday", []Window{win(t, "2026-01-14 13:00", "2026-01-14 15:00")}, []piece{{Wednesday, 780, 900}}},
		{"ends at midnight", []Window{win(t, "2026-01-13 22:00", "2026-01-14 00:00")}, []piece{{Tuesday, 1320, 0}}},
		{"spring forward night: wall-clock minutes", []Window{win(t, "2026-03-28 22:00", "2026-03-29 06:00")},
			[]piece{{Saturday, 1320, 360}}},
		{"fall back night: wall-clock minutes", []Window{win(t, "2026-10-24 22:00", "2026-10-25 05:00")},
			[]piece{{Saturday, 1320, 300}}},
		{"after the spring gap, on Sunday", []Window{win(t, "2026-03-29 01:00", "2026-03-29 04:00")},
			[]piece{{Sunday, 60, 240}}},
		{"two windows, two days", []Window{win(t, "2026-01-13 13:00", "2026-01-13 15:00"), win(t, "2026-01-13 22:00", "2026-01-14 06:00")},
			[]piece{{Tuesday, 780, 900}, {Tuesday, 1320, 360}}},
		{"longer than a day is split at midnight", []Window{win(t, "2026-01-13 05:00", "2026-01-14 07:00")},
			[]piece{{Tuesday, 300, 0}, {Wednesday, 0, 420}}},
		{"exactly 24 hours is split", []Window{win(t, "2026-01-13 22:00", "2026-01-14 22:00")},
			[]piece{{Tuesday, 1320, 0}, {Wednesday, 0, 1320}}},
		{"Saturday night to Sunday (Sunday is bit 0)", []Window{win(t, "2026-01-17 23:00", "2026-01-18 02:00")},
			[]piece{{Saturday, 1380, 120}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ToSchedules(tc.windows, loc, home)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d schedules %+v, want %d", len(got), got, len(tc.want))
			}
			for i, s := range got {
				w := tc.want[i]
				if s.DaysMask != w.days || s.StartMin != w.start || s.EndMin != w.end {
					t.Errorf("schedule %d: days %d %d→%d, want days %d %d→%d", i, s.DaysMask, s.StartMin, s.EndMin, w.days, w.start, w.end)
				}
				if !s.OneTime || !s.Enabled || !s.StartEnabled || !s.EndEnabled {
					t.Errorf("schedule %d: flags %+v", i, s)
				}
				if s.Lat != home.Lat || s.Lon != home.Lon {
					t.Errorf("schedule %d: position %v,%v", i, s.Lat, s.Lon)
				}
				if !IsOurs(s.ID) {
					t.Errorf("schedule %d: id %d not ours", i, s.ID)
				}
			}
		})
	}
}

func TestScheduleIDs(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	ws := []Window{win(t, "2026-01-13 13:00", "2026-01-13 15:00"), win(t, "2026-01-13 22:00", "2026-01-14 06:00")}
	a := ToSchedules(ws, loc, home)
	b := ToSchedules(ws, loc, home)
	if a[0].ID != b[0].ID || a[1].ID != b[1].ID {
		t.Fatal("ids are not deterministic")
	}
	if a[0].ID == a[1].ID {
		t.Fatal("different content, same id")
	}
	if PlanHash(a) != PlanHash([]Schedule{a[1], a[0]}) {
		t.Fatal("plan hash depends on order")
	}
	if PlanHash(a) == PlanHash(a[:1]) {
		t.Fatal("plan hash ignores a schedule")
	}
	// The proxy's own ids (Unix time now, in s, ms and µs) are never ours.
	now := time.Date(2026, 1, 13, 0, 0, 0, 0, time.UTC)
	for _, id := range []int64{0, now.Unix(), now.UnixMilli(), now.UnixMicro()} {
		if IsOurs(id) {
			t.Fatalf("%d counted as ours", id)
		}
	}
	if top := OurIDBase + ourIDRange - 1; top >= 1<<31 || int64(float64(top)) != top {
		t.Fatal("our ids leave the range of 32-bit Unix seconds or do not survive a float64 (JSON number)")
	}
	// The id encodes the local date the schedule starts on.
	for i, want := range []string{"2026-01-13", "2026-01-13"} {
		y, m, d, ok := IDStartDate(a[i].ID)
		if got := fmt.Sprintf("%04d-%02d-%02d", y, m, d); !ok || got != want {
			t.Errorf("schedule %d: id %d encodes %s (ok %v), want %s", i, a[i].ID, got, ok, want)
		}
	}
}
