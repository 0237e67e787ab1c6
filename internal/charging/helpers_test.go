package charging

import (
	"testing"
	"time"
	_ "time/tzdata" // Europe/Warsaw without the system's zoneinfo
)

func warsaw(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// lt parses "2006-01-02 15:04" as Warsaw local time.
func lt(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, warsaw(t))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fmtWindows(ws []Window, loc *time.Location) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Start.In(loc).Format("2006-01-02 15:04")+" → "+w.End.In(loc).Format("2006-01-02 15:04"))
	}
	return out
}

func mustTariff(t testing.TB, weekday, weekend, holidays string) *Tariff {
	t.Helper()
	tr, err := ParseTariff(weekday, weekend, warsaw(t))
	if err != nil {
		t.Fatal(err)
	}
	tr, err = tr.WithHolidays(holidays)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

const g12 = "22:00-06:00,13:00-15:00"
