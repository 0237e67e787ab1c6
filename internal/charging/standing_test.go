package charging

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/geo"
)

func TestStandingG12(t *testing.T) {
	t.Parallel()
	got := Standing(mustTariff(t, g12, "", ""), home)
	if len(got) != 2 {
		t.Fatalf("G12: %+v, want two schedules", got)
	}
	want := []struct{ start, end, days int }{{13 * 60, 15 * 60, AllDays}, {22 * 60, 6 * 60, AllDays}}
	for i, w := range want {
		s := got[i]
		if s.StartMin != w.start || s.EndMin != w.end || s.DaysMask != w.days || s.OneTime || !s.Enabled ||
			!s.StartEnabled || !s.EndEnabled || s.Lat != home.Lat || s.Lon != home.Lon {
			t.Errorf("schedule %d: %+v, want %02d:%02d–%02d:%02d days %d, recurring", i, s, w.start/60, w.start%60, w.end/60, w.end%60, w.days)
		}
		if !IsStanding(s.ID) || !IsOurs(s.ID) {
			t.Errorf("id %d is not a standing id", s.ID)
		}
	}
	// Same hours, other days: same id (a change of days modifies in place).
	other := got[1]
	other.DaysMask = Monday
	if standingID(other) != got[1].ID {
		t.Error("the id depends on the days")
	}
	// Plan ids are never standing ids.
	for _, s := range ToSchedules([]Window{win(t, "2026-01-13 22:00", "2026-01-14 01:00")}, warsaw(t), home) {
		if IsStanding(s.ID) {
			t.Errorf("plan id %d taken for standing", s.ID)
		}
	}
}

func TestStandingG12w(t *testing.T) {
	t.Parallel()
	got := Standing(mustTariff(t, g12, "00:00-24:00", ""), home)
	var desc []string
	for _, s := range got {
		desc = append(desc, fmt.Sprintf("%02d:%02d-%02d:%02d/%d", s.StartMin/60, s.StartMin%60, s.EndMin/60, s.EndMin%60, s.DaysMask))
	}
	// Friday 22:00 to Monday 06:00 is one cheap stretch, cut at midnights,
	// whole days in halves; weeknights Monday–Thursday cross midnight.
	want := []string{
		"00:00-06:00/" + fmt.Sprint(Monday),
		"00:00-12:00/" + fmt.Sprint(Saturday|Sunday),
		"12:00-00:00/" + fmt.Sprint(Saturday|Sunday),
		"13:00-15:00/" + fmt.Sprint(Monday|Tuesday|Wednesday|Thursday|Friday),
		"22:00-00:00/" + fmt.Sprint(Friday),
		"22:00-06:00/" + fmt.Sprint(Monday|Tuesday|Wednesday|Thursday),
	}
	if !reflect.DeepEqual(desc, want) {
		t.Errorf("G12w:\n got %v\nwant %v", desc, want)
	}
}

// TestStandingCoversTheCheapHours: for several tariffs, the standing
// schedules' windows over a week are exactly the tariff's cheap time.
func TestStandingCoversTheCheapHours(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	for _, tc := range []struct{ weekday, weekend string }{
		{g12, ""}, {g12, "00:00-24:00"}, {"22:00-07:00,13:00-16:00", ""}, {"00:00-24:00", ""},
		{"23:30-05:30", "21:00-09:00"}, {"01:00-05:00", "00:00-24:00"},
	} {
		tr := mustTariff(t, tc.weekday, tc.weekend, "")
		from, to := lt(t, "2026-01-12 00:00"), lt(t, "2026-01-19 00:00") // a Monday to a Monday, no DST change
		var got []Interval
		for _, s := range Standing(tr, home) {
			for _, iv := range occurrences(s, from.Add(-48*time.Hour), to, loc) {
				if iv.Start.Before(from) {
					iv.Start = from
				}
				if iv.End.After(to) {
					iv.End = to
				}
				if iv.Start.Before(iv.End) {
					got = append(got, iv)
				}
			}
		}
		got = mergeIntervals(got)
		want := tr.CheapIntervals(from, to)
		if len(got) != len(want) {
			t.Errorf("%v: %d stretches, want %d", tc, len(got), len(want))
			continue
		}
		for i := range want {
			if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) {
				t.Errorf("%v: stretch %d %v–%v, want %v–%v", tc, i, got[i].Start, got[i].End, want[i].Start, want[i].End)
			}
		}
	}
}

func TestWithoutOccurrences(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	std := Standing(mustTariff(t, g12, "", ""), home)
	// Tuesday evening until Wednesday 07:00: tonight's 22:00 window goes,
	// 13:00 (today's is past, tomorrow's after the deadline) stays.
	got := WithoutOccurrences(std, lt(t, "2026-01-13 17:30"), lt(t, "2026-01-14 07:00"), loc)
	if got[0].DaysMask != AllDays || got[1].DaysMask != AllDays&^Tuesday {
		t.Errorf("Tuesday evening: %+v", got)
	}
	// Saturday noon until Sunday 07:00: Saturday's 13:00 and 22:00 go.
	got = WithoutOccurrences(std, lt(t, "2026-01-17 12:00"), lt(t, "2026-01-18 07:00"), loc)
	if got[0].DaysMask != AllDays&^Saturday || got[1].DaysMask != AllDays&^Saturday {
		t.Errorf("Saturday noon: %+v", got)
	}
	// Inside a window at 02:00 Wednesday: Tuesday's 22:00 window is on.
	got = WithoutOccurrences(std, lt(t, "2026-01-14 02:00"), lt(t, "2026-01-14 07:00"), loc)
	if got[1].DaysMask != AllDays&^Tuesday || got[0].DaysMask != AllDays {
		t.Errorf("02:00: %+v", got)
	}
	// A schedule with no day left is dropped.
	one := std[1]
	one.DaysMask = Tuesday
	if got := WithoutOccurrences([]Schedule{one}, lt(t, "2026-01-13 17:30"), lt(t, "2026-01-14 07:00"), loc); len(got) != 0 {
		t.Errorf("no day left: %+v", got)
	}
}

func TestReconcileModifiesInPlace(t *testing.T) {
	t.Parallel()
	std := Standing(mustTariff(t, g12, "", ""), home)
	existing := []Schedule{readBack(std[0]), readBack(std[1])}
	desired := append([]Schedule(nil), std...)
	desired[1].DaysMask = AllDays &^ Tuesday
	add, remove, err := Reconcile(existing, desired, home, 2)
	if err != nil || len(remove) != 0 || len(add) != 1 || add[0].ID != std[1].ID || add[0].DaysMask != desired[1].DaysMask {
		t.Fatalf("add %+v remove %v err %v: want one add that modifies %d, nothing removed, fitting in 2", add, remove, err, std[1].ID)
	}
}

// standingRig is the cycle rig with standing schedules (G12) and the car's
// limit as given.
func standingRig(t *testing.T, now string, limit int) *cycleRig {
	t.Helper()
	r := &cycleRig{car: newFakeCar(), store: newFakeStore(), clock: clock.NewManual(lt(t, now))}
	r.car.limit = limit
	tr := mustTariff(t, g12, "", "")
	c, err := NewCycle(r.car, NewBuiltinPlanner(tr), r.store, r.clock, CycleConfig{
		Home: geo.Home{Lat: home.Lat, Lon: home.Lon}, Location: warsaw(t), Standing: tr,
		Charge:         ChargeSettings{TargetPercent: 80, BatteryKWh: 60, ChargerKW: 6, Efficiency: 1, ReadyBy: ClockTime{7, 0}},
		CommandSpacing: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.cycle = c
	return r
}

func TestCycleKeepsStandingSchedules(t *testing.T) {
	t.Parallel()
	// Target 80 = the car's limit: the standing schedules and the plan stop
	// at the same level, so the standing ones stay whole.
	r := standingRig(t, "2026-01-13 18:00", 80)
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	var std, plan int
	for _, s := range r.car.schedules {
		if IsStanding(s.ID) {
			std++
			if s.DaysMask != AllDays || s.OneTime {
				t.Errorf("standing %+v", s)
			}
		} else if IsOurs(s.ID) {
			plan++
		}
	}
	if std != 2 || plan != len(res.Plan) || plan == 0 || res.Added != std+plan {
		t.Fatalf("standing %d, plan %d, result %+v", std, plan, res)
	}
	// Charged: the plan's schedule goes, the standing ones stay; again:
	// nothing to do.
	r.car.battery = 80
	res, err = r.cycle.Run(context.Background(), vin)
	if err != nil || res.Removed != plan || res.Added != 0 || len(r.car.schedules) != 2 {
		t.Fatalf("charged: %+v %v, car %v", res, err, r.car.schedules)
	}
	res, err = r.cycle.Run(context.Background(), vin)
	if err != nil || res.Changed {
		t.Fatalf("again: %+v %v", res, err)
	}
}

func TestCycleStandingStepsAsideForATargetBelowTheLimit(t *testing.T) {
	t.Parallel()
	// Target 80 below the car's 90 % limit: tonight the plan alone decides
	// (the standing 22:00 window would charge to 90), tomorrow evening the
	// day is back and the next one is left out: one modify.
	r := standingRig(t, "2026-01-13 18:00", 90)
	if _, err := r.cycle.Run(context.Background(), vin); err != nil {
		t.Fatal(err)
	}
	night := func() Schedule {
		for _, s := range r.car.schedules {
			if IsStanding(s.ID) && s.StartMin == 22*60 {
				return s
			}
		}
		t.Fatal("no standing night schedule")
		return Schedule{}
	}
	if got := night().DaysMask; got != AllDays&^Tuesday {
		t.Fatalf("Tuesday evening: days %b, want all but Tuesday", got)
	}
	r.clock.Set(lt(t, "2026-01-14 18:00"))
	r.car.battery = 60
	before := r.car.adds
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	if got := night().DaysMask; got != AllDays&^Wednesday {
		t.Fatalf("Wednesday evening: days %b, want all but Wednesday", got)
	}
	// Tuesday's plan is stale (removed); Wednesday's is added, the standing
	// night modified in place.
	if res.Removed != 1 || r.car.adds-before != 2 {
		t.Fatalf("Wednesday: %+v, %d adds", res, r.car.adds-before)
	}
}

func TestCycleDropsStandingWhenSlotsRunOut(t *testing.T) {
	t.Parallel()
	// Eight foreign schedules at home and room for ten: the plan fits, the
	// standing ones do not; the plan goes on alone.
	r := standingRig(t, "2026-01-13 18:00", 80)
	for i := int64(0); i < 8; i++ {
		r.car.schedules[1700000000+i] = Schedule{ID: 1700000000 + i, DaysMask: Sunday, StartMin: int(i), EndMin: int(i) + 1,
			Enabled: true, StartEnabled: true, EndEnabled: true, Lat: home.Lat, Lon: home.Lon}
	}
	res, err := r.cycle.Run(context.Background(), vin)
	if err != nil || res.Added == 0 || errors.Is(err, ErrTooManySchedules) {
		t.Fatalf("%+v %v", res, err)
	}
	for _, s := range r.car.schedules {
		if IsStanding(s.ID) {
			t.Errorf("standing schedule without room: %+v", s)
		}
	}
}
