package charging

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// With 60 kWh, 6 kW and efficiency 1, every 10 % is exactly one hour.
func planIn(now time.Time, soc, target, floor int) PlanInput {
	return PlanInput{Now: now, SoC: soc, TargetPercent: target, FloorPercent: floor,
		BatteryKWh: 60, ChargerKW: 6, Efficiency: 1, ReadyBy: ClockTime{7, 0}}
}

func TestBuiltinPlanner(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	plain := mustTariff(t, g12, "", "")
	g12w := mustTariff(t, g12, "00:00-24:00", "2026-01-06")
	cases := []struct {
		name          string
		tariff        *Tariff
		now           string
		soc, target   int
		floor         int
		want          []string
		wantShortfall time.Duration
	}{
		{"evening: earliest cheap time, trimmed", plain, "2026-01-13 18:00", 50, 80, 0,
			[]string{"2026-01-13 22:00 → 2026-01-14 01:00"}, 0},
		{"inside a window: from now, to the minute", plain, "2026-01-13 23:30", 50, 80, 0,
			[]string{"2026-01-13 23:30 → 2026-01-14 02:30"}, 0},
		{"midday window first, then the night", plain, "2026-01-13 12:00", 50, 80, 0,
			[]string{"2026-01-13 13:00 → 2026-01-13 15:00", "2026-01-13 22:00 → 2026-01-13 23:00"}, 0},
		{"past the ready-by: deadline is tomorrow", plain, "2026-01-13 08:00", 70, 80, 0,
			[]string{"2026-01-13 13:00 → 2026-01-13 14:00"}, 0},
		{"not enough cheap time: all of it and a shortfall", plain, "2026-01-13 18:00", 0, 100, 0,
			[]string{"2026-01-13 22:00 → 2026-01-14 06:00"}, 2 * time.Hour},
		{"no cheap time before the deadline", plain, "2026-01-13 06:30", 50, 80, 0,
			nil, 3 * time.Hour},
		{"target reached: empty plan", plain, "2026-01-13 18:00", 80, 80, 0, nil, 0},
		{"above target: empty plan", plain, "2026-01-13 18:00", 90, 80, 0, nil, 0},
		{"below floor: now up to the floor, the rest cheap", plain, "2026-01-13 18:00", 20, 80, 50,
			[]string{"2026-01-13 18:00 → 2026-01-13 21:00", "2026-01-13 22:00 → 2026-01-14 01:00"}, 0},
		{"below floor, touching the cheap window: merged", plain, "2026-01-13 21:00", 40, 80, 50,
			[]string{"2026-01-13 21:00 → 2026-01-14 01:00"}, 0},
		{"below floor, no cheap time: floor only, shortfall for the rest", plain, "2026-01-13 06:00", 40, 80, 50,
			[]string{"2026-01-13 06:00 → 2026-01-13 07:00"}, 3 * time.Hour},
		{"floor above target: floor capped at target", plain, "2026-01-13 18:00", 20, 40, 50,
			[]string{"2026-01-13 18:00 → 2026-01-13 20:00"}, 0},
		{"G12w Saturday: cheap all day", g12w, "2026-01-17 10:00", 50, 80, 0,
			[]string{"2026-01-17 10:00 → 2026-01-17 13:00"}, 0},
		{"G12w Sunday night runs into Monday's cheap night", g12w, "2026-01-18 23:00", 50, 80, 0,
			[]string{"2026-01-18 23:00 → 2026-01-19 02:00"}, 0},
		{"holiday is cheap all day", g12w, "2026-01-06 10:00", 50, 80, 0,
			[]string{"2026-01-06 10:00 → 2026-01-06 13:00"}, 0},
		{"same weekday without the holiday", g12w, "2026-01-13 10:00", 50, 80, 0,
			[]string{"2026-01-13 13:00 → 2026-01-13 15:00", "2026-01-13 22:00 → 2026-01-13 23:00"}, 0},
		{"spring forward: 7 h fit exactly, ending 06:00", plain, "2026-03-28 20:00", 30, 100, 0,
			[]string{"2026-03-28 22:00 → 2026-03-29 06:00"}, 0},
		{"spring forward: only 7 real hours", plain, "2026-03-28 20:00", 20, 100, 0,
			[]string{"2026-03-28 22:00 → 2026-03-29 06:00"}, time.Hour},
		{"fall back: 8 h end at 05:00", plain, "2026-10-24 20:00", 20, 100, 0,
			[]string{"2026-10-24 22:00 → 2026-10-25 05:00"}, 0},
		{"fall back: 9 real hours", plain, "2026-10-24 20:00", 0, 100, 0,
			[]string{"2026-10-24 22:00 → 2026-10-25 06:00"}, time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := NewBuiltinPlanner(tc.tariff)
			plan, err := p.Plan(context.Background(), planIn(lt(t, tc.now), tc.soc, tc.target, tc.floor))
			if err != nil {
				t.Fatal(err)
			}
			if got := fmtWindows(plan.Windows, loc); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("windows %q, want %q", got, tc.want)
			}
			if plan.Shortfall != tc.wantShortfall {
				t.Fatalf("shortfall %v, want %v", plan.Shortfall, tc.wantShortfall)
			}
			if plan.Source != SourceBuiltin {
				t.Fatalf("source %q", plan.Source)
			}
			if tc.soc < tc.target && plan.Planned()+plan.Shortfall != plan.Needed {
				t.Fatalf("planned %v + shortfall %v != needed %v", plan.Planned(), plan.Shortfall, plan.Needed)
			}
		})
	}
}

func TestBuiltinPlannerRoundsUpToMinutes(t *testing.T) {
	t.Parallel()
	p := NewBuiltinPlanner(mustTariff(t, g12, "", ""))
	in := planIn(lt(t, "2026-01-13 18:00").Add(17*time.Second), 50, 80, 0)
	in.BatteryKWh, in.ChargerKW, in.Efficiency = 75, 11, 0 // default efficiency 0.9
	plan, err := p.Plan(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	// 30 % of 75 kWh / 0.9 / 11 kW = 2.2727 h = 136.4 min → 137 min.
	if plan.Needed != 137*time.Minute {
		t.Fatalf("needed %v", plan.Needed)
	}
	want := []string{"2026-01-13 22:00 → 2026-01-14 00:17"}
	if got := fmtWindows(plan.Windows, warsaw(t)); !reflect.DeepEqual(got, want) {
		t.Fatalf("windows %q", got)
	}
}

func TestBuiltinPlannerRejectsBadInput(t *testing.T) {
	t.Parallel()
	p := NewBuiltinPlanner(mustTariff(t, g12, "", ""))
	for _, mut := range []func(*PlanInput){
		func(in *PlanInput) { in.BatteryKWh = 0 },
		func(in *PlanInput) { in.ChargerKW = -1 },
		func(in *PlanInput) { in.Efficiency = 1.5 },
		func(in *PlanInput) { in.SoC = 101 },
		func(in *PlanInput) { in.ReadyBy = ClockTime{24, 0} },
	} {
		in := planIn(lt(t, "2026-01-13 18:00"), 50, 80, 0)
		mut(&in)
		if _, err := p.Plan(context.Background(), in); !errors.Is(err, ErrPlanInput) {
			t.Fatalf("%+v: err = %v", in, err)
		}
	}
}
