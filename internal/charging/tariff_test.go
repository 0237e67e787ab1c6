package charging

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestParseTariffErrors(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	cases := []struct {
		name, weekday, weekend, holidays string
		wantVar, wantToken               string
	}{
		{"empty weekday", "", "", "", VarTariffWindows, ""},
		{"no dash", "22:00", "", "", VarTariffWindows, "22:00"},
		{"hour out of range", "25:00-06:00", "", "", VarTariffWindows, "25:00-06:00"},
		{"minute out of range", "22:00-06:60", "", "", VarTariffWindows, "22:00-06:60"},
		{"24:00 as start", "24:00-06:00", "", "", VarTariffWindows, "24:00-06:00"},
		{"start equals end", "22:00-22:00", "", "", VarTariffWindows, "22:00-22:00"},
		{"letters", "22:00-06:00, ab-cd", "", "", VarTariffWindows, "ab-cd"},
		{"no minutes", "22-06", "", "", VarTariffWindows, "22-06"},
		{"bad weekend", g12, "00:00-25:00", "", VarTariffWindowsWeekend, "00:00-25:00"},
		{"bad holiday", g12, "", "2026-01-01,2026-13-01", VarTariffHolidays, "2026-13-01"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, err := ParseTariff(tc.weekday, tc.weekend, loc)
			if err == nil {
				_, err = tr.WithHolidays(tc.holidays)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Var != tc.wantVar || ce.Token != tc.wantToken {
				t.Fatalf("err = %#v, want var %s token %q", err, tc.wantVar, tc.wantToken)
			}
		})
	}
}

func TestParseWindowsMergesAndSplits(t *testing.T) {
	t.Parallel()
	got, err := parseWindows(VarTariffWindows, " 22:00-06:00, 05:00-07:00,13:00-15:00,14:00-16:00, 21:00-24:00")
	if err != nil {
		t.Fatal(err)
	}
	want := []dayRange{{0, 7 * 60}, {13 * 60, 16 * 60}, {21 * 60, 24 * 60}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestCheapIntervals(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	g12w := mustTariff(t, g12, "00:00-24:00", "2026-01-06")
	plain := mustTariff(t, g12, "", "")
	cases := []struct {
		name     string
		tariff   *Tariff
		from, to string
		want     []string
		total    time.Duration
	}{
		{"ordinary night", plain, "2026-01-13 18:00", "2026-01-14 07:00",
			[]string{"2026-01-13 22:00 → 2026-01-14 06:00"}, 8 * time.Hour},
		{"spring forward night is 7 real hours", plain, "2026-03-28 18:00", "2026-03-29 07:00",
			[]string{"2026-03-28 22:00 → 2026-03-29 06:00"}, 7 * time.Hour},
		{"fall back night is 9 real hours", plain, "2026-10-24 18:00", "2026-10-25 07:00",
			[]string{"2026-10-24 22:00 → 2026-10-25 06:00"}, 9 * time.Hour},
		{"clipped to from and to", plain, "2026-01-13 14:00", "2026-01-13 23:00",
			[]string{"2026-01-13 14:00 → 2026-01-13 15:00", "2026-01-13 22:00 → 2026-01-13 23:00"}, 2 * time.Hour},
		{"G12w weekend is one stretch Friday 22:00 to Monday 06:00", g12w, "2026-01-16 18:00", "2026-01-19 12:00",
			[]string{"2026-01-16 22:00 → 2026-01-19 06:00"}, 56 * time.Hour},
		{"holiday uses the weekend variant", g12w, "2026-01-05 18:00", "2026-01-07 12:00",
			[]string{"2026-01-05 22:00 → 2026-01-07 06:00"}, 32 * time.Hour},
		{"empty span", plain, "2026-01-13 18:00", "2026-01-13 18:00", nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ivs := tc.tariff.CheapIntervals(lt(t, tc.from), lt(t, tc.to))
			var ws []Window
			var total time.Duration
			for _, iv := range ivs {
				ws = append(ws, Window(iv))
				total += iv.Duration()
			}
			if got := fmtWindows(ws, loc); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if total != tc.total {
				t.Fatalf("total %v, want %v", total, tc.total)
			}
		})
	}
}

func TestClockTimeNext(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	seven := ClockTime{7, 0}
	if got := seven.Next(lt(t, "2026-01-13 18:00"), loc); !got.Equal(lt(t, "2026-01-14 07:00")) {
		t.Fatalf("evening: %v", got)
	}
	if got := seven.Next(lt(t, "2026-01-13 06:59"), loc); !got.Equal(lt(t, "2026-01-13 07:00")) {
		t.Fatalf("early morning: %v", got)
	}
	if got := seven.Next(lt(t, "2026-01-13 07:00"), loc); !got.Equal(lt(t, "2026-01-14 07:00")) {
		t.Fatalf("exactly at: %v", got)
	}
	if _, err := ParseClockTime("READY_BY", "7am"); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("7am: %v", err)
	}
	if c, err := ParseClockTime("READY_BY", "07:30"); err != nil || c != (ClockTime{7, 30}) {
		t.Fatalf("07:30: %v %v", c, err)
	}
}
