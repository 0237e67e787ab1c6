package charging

import (
	"context"
	"errors"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/geo"
	"github.com/offpeak-charging/offpeak/internal/needs"
	"github.com/offpeak-charging/offpeak/internal/state"
)

// needRig is a cycle with a real needs.Book over a memory state store:
// Tuesday 2026-01-13 18:00 in Warsaw, G12, 60 kWh at 6 kW (10 % an hour),
// target 80, the car at home at 50 % with its limit at 80.
type needRig struct {
	*cycleRig
	store state.Store
	book  *needs.Book
}

func newNeedRig(t *testing.T, now string) *needRig {
	t.Helper()
	r := &needRig{cycleRig: &cycleRig{car: newFakeCar(), store: newFakeStore(), clock: clock.NewManual(lt(t, now))}, store: state.NewMemory()}
	r.book = r.newBook(t)
	r.cycle = r.newCycle(t)
	return r
}

func (r *needRig) newBook(t *testing.T) *needs.Book {
	t.Helper()
	b, err := needs.NewBook(r.store, needs.VINList{vin}, r.clock, needs.Config{Location: warsaw(t)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newCycle is a fresh cycle (a restarted worker) over the same stores.
func (r *needRig) newCycle(t *testing.T) *Cycle {
	t.Helper()
	tr := mustTariff(t, g12, "", "")
	c, err := NewCycle(r.car, NewBuiltinPlanner(tr), r.cycleRig.store, r.clock, CycleConfig{
		Home: geo.Home{Lat: home.Lat, Lon: home.Lon}, Location: warsaw(t), Standing: tr,
		Charge:         ChargeSettings{TargetPercent: 80, BatteryKWh: 60, ChargerKW: 6, Efficiency: 1, ReadyBy: ClockTime{7, 0}},
		CommandSpacing: -1, Needs: r.newBook(t), NeedTariff: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (r *needRig) add(t *testing.T, target int, by string) needs.Need {
	t.Helper()
	n, _, err := r.book.Add(context.Background(), needs.Request{VIN: vin, TargetPercent: target, By: by})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (r *needRig) get(t *testing.T, id string) needs.Need {
	t.Helper()
	n, err := r.book.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (r *needRig) run(t *testing.T, c *Cycle) Result {
	t.Helper()
	res, err := c.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (r *needRig) limit() int {
	r.car.mu.Lock()
	defer r.car.mu.Unlock()
	return r.car.limit
}

// TestNeedRaisesOnceAndRestoresOnce walks one need through its life: not
// yet planned outside its horizon; raised once (a restart and a second
// cycle keep the limit found first); after `by` its outcome recorded and
// the limit put back, once.
func TestNeedRaisesOnceAndRestoresOnce(t *testing.T) {
	t.Parallel()
	r := newNeedRig(t, "2026-01-13 18:00") // Tuesday
	n := r.add(t, 90, "2026-01-17 08:00")  // Saturday morning

	if res := r.run(t, r.cycle); res.Need.ID != "" || res.Need.LimitRaised || r.limit() != 80 {
		t.Fatalf("Tuesday: %+v, limit %d: the need's horizon has not begun", res.Need, r.limit())
	}

	r.clock.Set(lt(t, "2026-01-16 18:00")) // Friday evening, home at 50 %
	res := r.run(t, r.cycle)
	if !res.Need.LimitRaised || res.Need.ID != n.ID || r.limit() != 90 || res.Need.PeakKWh != 0 {
		t.Fatalf("Friday: %+v, limit %d; want the limit raised to 90 for %s, nothing at peak", res.Need, r.limit(), n.ID)
	}
	// 50 → 90 % is 4 h at 10 %/h: the night's cheap hours from 22:00.
	if len(res.Plan) == 0 {
		t.Fatal("no daily plan")
	}
	if got := r.get(t, n.ID); got.Limit == nil || got.Limit.PreviousPercent != 80 || got.Limit.RaisedPercent != 90 {
		t.Fatalf("stored need %+v", got)
	}
	// A restarted worker, then an overlapping cycle: no second raise, the
	// remembered limit is still the one found first.
	for i := 0; i < 2; i++ {
		if res := r.run(t, r.newCycle(t)); res.Need.LimitRaised {
			t.Fatalf("raised again: %+v", res.Need)
		}
	}
	if r.car.limitSets != 1 || r.get(t, n.ID).Limit.PreviousPercent != 80 {
		t.Fatalf("%d limit commands, stored %+v", r.car.limitSets, r.get(t, n.ID).Limit)
	}

	r.car.set(func(c *fakeCar) { c.battery = 90 })
	r.clock.Set(lt(t, "2026-01-17 08:15"))
	res = r.run(t, r.cycle)
	if r.limit() != 80 || len(res.Need.Restored) != 1 || len(res.Need.Settled) != 1 {
		t.Fatalf("after by: %+v, limit %d; want the outcome and the limit back at 80", res.Need, r.limit())
	}
	got := r.get(t, n.ID)
	if got.Outcome == nil || !got.Outcome.Met || got.Outcome.SoCPercent != 90 || got.Limit.RestoredAt == nil {
		t.Fatalf("stored need %+v", got)
	}
	for i := 0; i < 2; i++ {
		if res := r.run(t, r.newCycle(t)); len(res.Need.Restored)+len(res.Need.Settled) != 0 {
			t.Fatalf("settled again: %+v", res.Need)
		}
	}
	if r.car.limitSets != 2 {
		t.Errorf("%d limit commands, want 2 (raise, restore)", r.car.limitSets)
	}
}

// TestNeedNeedsPeakWhenCheapHoursAreShort: 20 → 100 % is 8 h; from Friday
// 23:00 the night holds 7 cheap hours before a 07:30 need, so the last hour
// is bought at peak — and said.
func TestNeedNeedsPeakWhenCheapHoursAreShort(t *testing.T) {
	t.Parallel()
	r := newNeedRig(t, "2026-01-16 23:00")
	r.car.set(func(c *fakeCar) { c.battery = 20 })
	n := r.add(t, 100, "2026-01-17 07:30")
	res := r.run(t, r.cycle)
	if res.Need.ID != n.ID || !res.Need.LimitRaised || res.Need.PeakKWh <= 0 || res.Need.Shortfall != 0 {
		t.Fatalf("%+v: want a raise and energy bought at peak", res.Need)
	}
	// 8 h needed, 7 cheap: one peak hour at 6 kW, the one closest to by.
	if res.Need.PeakKWh != 6 {
		t.Errorf("peak energy %.2f kWh, want 6", res.Need.PeakKWh)
	}
}

// TestNeedDeletedAfterTheRaise: a need deleted while its limit is raised
// is never planned again, and the next cycle puts the limit back.
func TestNeedDeletedAfterTheRaise(t *testing.T) {
	t.Parallel()
	r := newNeedRig(t, "2026-01-16 18:00")
	n := r.add(t, 90, "2026-01-17 08:00")
	if res := r.run(t, r.cycle); !res.Need.LimitRaised {
		t.Fatalf("%+v", res.Need)
	}
	if _, err := r.book.Delete(context.Background(), n.ID); err != nil {
		t.Fatal(err)
	}
	res := r.run(t, r.cycle)
	if r.limit() != 80 || len(res.Need.Restored) != 1 || res.Need.ID != "" {
		t.Fatalf("%+v, limit %d: want the limit back and nothing planned", res.Need, r.limit())
	}
	if _, err := r.book.Get(context.Background(), n.ID); !errors.Is(err, needs.ErrNotFound) {
		t.Errorf("the cancelled need is still there after the restore: %v", err)
	}
}

// TestNeedDeletedBeforeTheRaise changes nothing on the car.
func TestNeedDeletedBeforeTheRaise(t *testing.T) {
	t.Parallel()
	r := newNeedRig(t, "2026-01-13 18:00")
	n := r.add(t, 90, "2026-01-17 08:00")
	if _, err := r.book.Delete(context.Background(), n.ID); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(lt(t, "2026-01-16 18:00"))
	if res := r.run(t, r.cycle); res.Need.ID != "" || r.car.limitSets != 0 {
		t.Fatalf("%+v, %d limit commands", res.Need, r.car.limitSets)
	}
}

// TestNeedRestoreWakesTheCarOnce: after `by` an asleep car is woken once
// to put its limit back; an ordinary cycle never wakes it.
func TestNeedRestoreWakesTheCarOnce(t *testing.T) {
	t.Parallel()
	r := newNeedRig(t, "2026-01-16 18:00")
	r.add(t, 90, "2026-01-17 08:00")
	r.run(t, r.cycle)
	r.car.set(func(c *fakeCar) { c.asleep = true; c.battery = 90 })
	r.clock.Set(lt(t, "2026-01-17 08:15"))
	res := r.run(t, r.cycle)
	if !res.Woke || r.limit() != 80 || r.car.wakes != 1 {
		t.Fatalf("woke %v (%d), limit %d", res.Woke, r.car.wakes, r.limit())
	}
	r.car.set(func(c *fakeCar) { c.asleep = true })
	if res := r.run(t, r.cycle); !res.Asleep || res.Woke || r.car.wakes != 1 {
		t.Fatalf("nothing due, yet %+v (%d wakes)", res, r.car.wakes)
	}
}

// TestNeedLimitChangedByTheOwner: an owner who set another limit meanwhile
// keeps it; the restore is recorded, not sent.
func TestNeedLimitChangedByTheOwner(t *testing.T) {
	t.Parallel()
	r := newNeedRig(t, "2026-01-16 18:00")
	n := r.add(t, 90, "2026-01-17 08:00")
	r.run(t, r.cycle)
	r.car.set(func(c *fakeCar) { c.limit = 100 })
	r.clock.Set(lt(t, "2026-01-17 09:00"))
	r.run(t, r.cycle)
	if r.limit() != 100 || r.car.limitSets != 1 || r.get(t, n.ID).Limit.RestoredAt == nil {
		t.Fatalf("limit %d after %d commands, stored %+v", r.limit(), r.car.limitSets, r.get(t, n.ID).Limit)
	}
}

// TestNeedsOfTwoCyclesAtOnce: two workers' cycles at the same moment (the
// lease lets one through; the other is busy or finds it done): one raise.
func TestNeedsOfTwoCyclesAtOnce(t *testing.T) {
	t.Parallel()
	r := newNeedRig(t, "2026-01-16 18:00")
	n := r.add(t, 90, "2026-01-17 08:00")
	a, b := r.newCycle(t), r.newCycle(t)
	errs := make(chan error, 2)
	for _, c := range []*Cycle{a, b} {
		go func(c *Cycle) {
			_, err := c.Run(context.Background(), vin)
			if errors.Is(err, ErrCycleBusy) {
				err = nil
			}
			errs <- err
		}(c)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if r.car.limitSets != 1 || r.get(t, n.ID).Limit.PreviousPercent != 80 {
		t.Fatalf("%d limit commands, stored %+v", r.car.limitSets, r.get(t, n.ID).Limit)
	}
}
