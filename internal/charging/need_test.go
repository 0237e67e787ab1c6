package charging

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

// needIn is a car whose numbers keep the arithmetic readable: 100 kWh, a
// 10 kW charger and no losses, so 1 % is 1 kWh and 6 minutes.
func needIn(t *testing.T, now, by string, soc, target int) NeedInput {
	return NeedInput{Now: lt(t, now), By: lt(t, by), SoC: soc, TargetPercent: target,
		BatteryKWh: 100, ChargerKW: 10, Efficiency: 1}
}

func TestPlanNeed(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	tariff := mustTariff(t, g12, "", "")
	for _, tc := range []struct {
		name      string
		in        NeedInput
		windows   []string
		peak      []string
		peakKWh   float64
		reachable bool
		shortfall time.Duration
	}{
		{
			name:    "cheap windows enough",
			in:      needIn(t, "2026-07-22 18:00", "2026-07-23 08:00", 50, 90), // 4 h
			windows: []string{"2026-07-22 22:00 → 2026-07-23 02:00"}, reachable: true,
		},
		{
			name:    "not enough: peak for the rest, closest to by",
			in:      needIn(t, "2026-07-22 18:00", "2026-07-23 08:00", 10, 100), // 9 h, 8 cheap
			windows: []string{"2026-07-22 22:00 → 2026-07-23 06:00", "2026-07-23 07:00 → 2026-07-23 08:00"},
			peak:    []string{"2026-07-23 07:00 → 2026-07-23 08:00"}, peakKWh: 10, reachable: true,
		},
		{
			name:    "peak before a cheap window that ends at by",
			in:      needIn(t, "2026-07-22 18:00", "2026-07-23 14:00", 0, 100), // 10 h: 22-06 and 13-14 are 9
			windows: []string{"2026-07-22 22:00 → 2026-07-23 06:00", "2026-07-23 12:00 → 2026-07-23 14:00"},
			peak:    []string{"2026-07-23 12:00 → 2026-07-23 13:00"}, peakKWh: 10, reachable: true,
		},
		{
			name:    "peak spread over two peak spans, latest first",
			in:      needIn(t, "2026-07-23 10:00", "2026-07-23 16:00", 0, 80), // 8 h in 6: unreachable
			windows: []string{"2026-07-23 10:00 → 2026-07-23 16:00"},
			peak:    []string{"2026-07-23 10:00 → 2026-07-23 13:00", "2026-07-23 15:00 → 2026-07-23 16:00"},
			peakKWh: 40, shortfall: 2 * time.Hour,
		},
		{
			name:    "need before the next cheap window: peak only, ending at by",
			in:      needIn(t, "2026-07-22 16:00", "2026-07-22 20:00", 80, 90), // 1 h
			windows: []string{"2026-07-22 19:00 → 2026-07-22 20:00"},
			peak:    []string{"2026-07-22 19:00 → 2026-07-22 20:00"}, peakKWh: 10, reachable: true,
		},
		{
			name: "already met", in: needIn(t, "2026-07-22 16:00", "2026-07-23 08:00", 92, 90), reachable: true,
		},
		{
			name:    "unreachable: charger too slow even with every minute",
			in:      needIn(t, "2026-07-22 18:00", "2026-07-22 20:00", 50, 90), // 4 h in 2
			windows: []string{"2026-07-22 18:00 → 2026-07-22 20:00"},
			peak:    []string{"2026-07-22 18:00 → 2026-07-22 20:00"}, peakKWh: 20, shortfall: 2 * time.Hour,
		},
		{
			name: "by already passed", in: needIn(t, "2026-07-22 18:00", "2026-07-22 17:00", 50, 90), shortfall: 4 * time.Hour,
		},
		{
			// The fall-back night 22:00–06:00 is 9 real hours: a 9-hour
			// need fits in it without a peak minute.
			name:    "fall-back night holds an hour more",
			in:      needIn(t, "2026-10-24 20:00", "2026-10-25 08:00", 10, 100),
			windows: []string{"2026-10-24 22:00 → 2026-10-25 06:00"}, reachable: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := PlanNeed(tariff, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmtWindows(p.Windows, loc); !slices.Equal(got, tc.windows) {
				t.Errorf("windows %q, want %q", got, tc.windows)
			}
			if got := fmtWindows(p.Peak, loc); !slices.Equal(got, tc.peak) {
				t.Errorf("peak %q, want %q", got, tc.peak)
			}
			if math.Abs(p.PeakKWh-tc.peakKWh) > 1e-9 {
				t.Errorf("peak energy %.3f kWh, want %.3f", p.PeakKWh, tc.peakKWh)
			}
			if p.Reachable != tc.reachable || p.Shortfall != tc.shortfall {
				t.Errorf("reachable %v shortfall %s, want %v %s", p.Reachable, p.Shortfall, tc.reachable, tc.shortfall)
			}
			var planned time.Duration
			for _, w := range p.Windows {
				planned += w.End.Sub(w.Start)
			}
			if planned != p.CheapTime+p.PeakTime || planned+p.Shortfall != p.Needed {
				t.Errorf("planned %s = cheap %s + peak %s; + shortfall %s should be needed %s",
					planned, p.CheapTime, p.PeakTime, p.Shortfall, p.Needed)
			}
		})
	}
}

// The energy at peak is what the need takes beyond the cheap hours, at the
// wall: losses count, and the minute rounding does not.
func TestPlanNeedPeakEnergyWithLosses(t *testing.T) {
	t.Parallel()
	in := needIn(t, "2026-07-22 18:00", "2026-07-23 08:00", 10, 100)
	in.Efficiency = 0.9 // 90 kWh into the battery is 100 kWh from the grid: 10 h, 8 of them cheap
	p, err := PlanNeed(mustTariff(t, g12, "", ""), in)
	if err != nil {
		t.Fatal(err)
	}
	if p.PeakTime != 2*time.Hour || math.Abs(p.PeakKWh-20) > 1e-9 || !p.Reachable {
		t.Fatalf("peak %s, %.3f kWh, reachable %v", p.PeakTime, p.PeakKWh, p.Reachable)
	}
	in.SoC = 11 // 89 % → 98.9 kWh from the grid → 593.3 min, rounded up to 594
	p, _ = PlanNeed(mustTariff(t, g12, "", ""), in)
	if p.PeakTime != 114*time.Minute || math.Abs(p.PeakKWh-18.8889) > 1e-3 {
		t.Fatalf("peak %s, %.4f kWh", p.PeakTime, p.PeakKWh)
	}
}

func TestPlanNeedRejectsBadInput(t *testing.T) {
	t.Parallel()
	tariff := mustTariff(t, g12, "", "")
	good := needIn(t, "2026-07-22 18:00", "2026-07-23 08:00", 50, 90)
	for name, mod := range map[string]func(*NeedInput){
		"no battery":     func(in *NeedInput) { in.BatteryKWh = 0 },
		"no charger":     func(in *NeedInput) { in.ChargerKW = -1 },
		"efficiency 2":   func(in *NeedInput) { in.Efficiency = 2 },
		"soc 101":        func(in *NeedInput) { in.SoC = 101 },
		"target 120":     func(in *NeedInput) { in.TargetPercent = 120 },
		"no deadline":    func(in *NeedInput) { in.By = time.Time{} },
		"charger is NaN": func(in *NeedInput) { in.ChargerKW = math.NaN() },
	} {
		in := good
		mod(&in)
		if _, err := PlanNeed(tariff, in); !errors.Is(err, ErrPlanInput) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := PlanNeed(nil, good); !errors.Is(err, ErrPlanInput) {
		t.Errorf("no tariff: %v", err)
	}
}
