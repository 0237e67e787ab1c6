package charging

import (
	"errors"
	"reflect"
	"testing"
)

// readBack is a schedule as the car returns it: the position went through a float32.
func readBack(s Schedule) Schedule {
	s.Lat, s.Lon = float64(float32(s.Lat)), float64(float32(s.Lon))
	return s
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	desired := ToSchedules([]Window{
		win(t, "2026-01-13 13:00", "2026-01-13 15:00"),
		win(t, "2026-01-13 22:00", "2026-01-14 01:00"),
	}, loc, home)
	d0, d1 := desired[0], desired[1]
	if float64(float32(home.Lat)) == home.Lat {
		t.Fatal("test position must not be exact in float32")
	}
	stale := ToSchedules([]Window{win(t, "2026-01-12 22:00", "2026-01-13 03:00")}, loc, home)[0]
	foreign := Schedule{ID: 1768300000, DaysMask: AllDays, StartMin: 1380, EndMin: 300, Enabled: true, StartEnabled: true, EndEnabled: true, Lat: home.Lat, Lon: home.Lon}
	oursAway := stale
	oursAway.ID++
	oursAway.Lat += 0.01 // about 1.1 km: the old home, a friend's garage
	foreignTwin := d1
	foreignTwin.ID = 1768300001
	disabled := d0
	disabled.Enabled = false // the owner switched ours off in the app
	disabled.ID = ourID(disabled, civilDate{2026, 1, 13})

	lastWeek := ToSchedules([]Window{win(t, "2026-01-06 22:00", "2026-01-07 01:00")}, loc, home)[0]
	if !sameContent(lastWeek, d1) || lastWeek.ID == d1.ID {
		t.Fatal("last week's schedule should have the same content and another id")
	}
	rb := func(ss ...Schedule) []Schedule {
		var out []Schedule
		for _, s := range ss {
			out = append(out, readBack(s))
		}
		return out
	}
	cases := []struct {
		name       string
		existing   []Schedule
		desired    []Schedule
		max        int
		wantAdd    []Schedule
		wantRemove []int64
		wantErr    error
	}{
		{"empty car: add all", nil, desired, 10, desired, nil, nil},
		{"already there after a float32 read-back: nothing", rb(d1, d0), desired, 10, nil, nil, nil},
		{"stale ours at home removed, missing added", rb(stale, d0), desired, 10, []Schedule{d1}, []int64{stale.ID}, nil},
		{"foreign at home left alone", rb(foreign), desired, 10, desired, nil, nil},
		{"ours away from home left alone", rb(oursAway), desired, 10, desired, nil, nil},
		{"foreign twin counts: no duplicate", rb(foreignTwin), desired, 10, []Schedule{d0}, nil, nil},
		{"ours with the same hours from last week: replaced", rb(withID(d1, lastWeek.ID), d0), desired, 10, []Schedule{d1}, []int64{lastWeek.ID}, nil},
		{"duplicate of ours removed", rb(d0, withID(d0, d0.ID+7), d1), desired, 10, nil, []int64{d0.ID + 7}, nil},
		{"changed flags: replaced", rb(disabled, d1), desired, 10, []Schedule{d0}, []int64{disabled.ID}, nil},
		{"empty plan: all our home ones go, others stay", rb(d0, d1, foreign, oursAway), nil, 10, nil, sortedIDs(d0.ID, d1.ID), nil},
		{"full car of foreign ones: error, nothing", rb(foreign, withID(foreign, 2), withID(foreign, 3)), desired, 4, nil, nil, ErrTooManySchedules},
		{"removals make room", rb(foreign, stale, withID(stale, stale.ID+1)), desired, 3, desired, sortedIDs(stale.ID, stale.ID+1), nil},
		{"unknown maximum: no limit", rb(foreign, withID(foreign, 2), withID(foreign, 3)), desired, 0, desired, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			add, remove, err := Reconcile(tc.existing, tc.desired, home, tc.max)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(add, tc.wantAdd) {
				t.Fatalf("add %+v, want %+v", add, tc.wantAdd)
			}
			if !reflect.DeepEqual(remove, tc.wantRemove) {
				t.Fatalf("remove %v, want %v", remove, tc.wantRemove)
			}
		})
	}
}

func withID(s Schedule, id int64) Schedule { s.ID = id; return s }

func sortedIDs(a, b int64) []int64 {
	if a > b {
		a, b = b, a
	}
	return []int64{a, b}
}
