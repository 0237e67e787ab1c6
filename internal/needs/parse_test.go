package needs

import (
	"errors"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Warsaw whatever the machine's zoneinfo
)

func warsaw(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name, in string
		want     time.Time
	}{
		{"rfc3339 utc", "2026-12-05T07:00:00Z", utc("2026-12-05T07:00:00Z")},
		{"rfc3339 offset", "2026-12-05T08:00:00+01:00", utc("2026-12-05T07:00:00Z")},
		{"rfc3339 seconds truncated", "2026-12-05T07:00:59.9Z", utc("2026-12-05T07:00:00Z")},
		{"local winter", "2026-12-05 08:00", utc("2026-12-05T07:00:00Z")},
		{"local summer", "2026-07-24 16:00", utc("2026-07-24T14:00:00Z")},
		{"local with T", "2026-07-24T16:00", utc("2026-07-24T14:00:00Z")},
		{"spaces around", "  2026-07-24 16:00 ", utc("2026-07-24T14:00:00Z")},
		// 2026-10-25 02:30 happens twice (CEST, then CET): the earlier one.
		{"fall-back overlap takes the earlier", "2026-10-25 02:30", utc("2026-10-25T00:30:00Z")},
		{"just before the overlap", "2026-10-25 01:59", utc("2026-10-24T23:59:00Z")},
		{"just after the overlap", "2026-10-25 03:00", utc("2026-10-25T02:00:00Z")},
		{"just after the gap", "2026-03-29 03:00", utc("2026-03-29T01:00:00Z")},
		{"just before the gap", "2026-03-29 01:59", utc("2026-03-29T00:59:00Z")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTime(tc.in, loc)
			if err != nil {
				t.Fatalf("ParseTime(%q): %v", tc.in, err)
			}
			if !got.Equal(tc.want) {
				t.Fatalf("ParseTime(%q) = %s, want %s", tc.in, got.UTC(), tc.want)
			}
		})
	}
}

func TestParseTimeRejects(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	for _, in := range []string{
		"",
		"tomorrow",
		"2026-12-05",
		"2026-13-05 08:00",
		"2026-12-05 24:00",
		"05.12.2026 08:00",
		"2026-12-05T08:00:00", // RFC 3339 needs an offset; local times have no seconds
		// Spring forward: 02:00–02:59 never happens on 2026-03-29 in Warsaw.
		"2026-03-29 02:00",
		"2026-03-29 02:30",
		"2026-03-29 02:59",
	} {
		if got, err := ParseTime(in, loc); !errors.Is(err, ErrTime) || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseTime(%q) = %v, %v; want ErrTime", in, got, err)
		}
	}
}

func TestParseTimeNilLocationIsUTC(t *testing.T) {
	t.Parallel()
	got, err := ParseTime("2026-12-05 08:00", nil)
	if err != nil || !got.Equal(time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("got %v, %v", got, err)
	}
}
