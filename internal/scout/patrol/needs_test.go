package patrol

import (
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/needs"
)

func TestNeedReason(t *testing.T) {
	t.Parallel()
	by := t0.Add(30 * time.Hour)
	raised := &needs.LimitChange{PreviousPercent: 80, RaisedPercent: 90, RaisedAt: t0}
	restoredAt := t0
	restored := &needs.LimitChange{PreviousPercent: 80, RaisedPercent: 90, RaisedAt: t0, RestoredAt: &restoredAt}
	cancelled := t0
	home := Record{AtHome: true}
	for _, c := range []struct {
		name   string
		n      needs.Need
		rec    Record
		now    time.Time
		reason string
	}{
		{"before the horizon", needs.Need{ID: "a", By: by}, home, t0, ""},
		{"horizon, at home", needs.Need{ID: "a", By: by}, home, by.Add(-needs.Horizon), ReasonNeedWindow},
		{"horizon, away", needs.Need{ID: "a", By: by}, Record{}, by.Add(-needs.Horizon), ""},
		{"horizon, already raised", needs.Need{ID: "a", By: by, Limit: raised}, home, by.Add(-time.Hour), ""},
		{"horizon, step asked", needs.Need{ID: "a", By: by}, Record{AtHome: true, NeedSteps: map[string]time.Time{"a/window": t0}}, by.Add(-time.Hour), ""},
		{"by passed, no outcome", needs.Need{ID: "a", By: by}, Record{}, by, ReasonNeedDue},
		{"by passed, outcome, raised", needs.Need{ID: "a", By: by, Limit: raised, Outcome: &needs.Outcome{Met: true}}, Record{}, by, ReasonNeedDue},
		{"by passed, all done", needs.Need{ID: "a", By: by, Limit: restored, Outcome: &needs.Outcome{Met: true}}, Record{}, by, ""},
		{"deleted while raised", needs.Need{ID: "a", By: by, Limit: raised, Cancelled: &cancelled}, Record{}, t0, ReasonNeedDue},
		{"due step asked", needs.Need{ID: "a", By: by}, Record{NeedSteps: map[string]time.Time{"a/due": by}}, by, ""},
	} {
		if got, _ := NeedReason([]needs.Need{c.n}, c.rec, c.now); got != c.reason {
			t.Errorf("%s: reason %q, want %q", c.name, got, c.reason)
		}
	}
}

// TestNeedTriggersOnceEachStep: a car left plugged in at home, asleep, gets
// one cycle when its need's horizon begins and one after `by`; the ticks
// between ask for nothing.
func TestNeedTriggersOnceEachStep(t *testing.T) {
	t.Parallel()
	r := newRig(Settings{})
	r.fleet.reading = plugged
	r.tick(t) // first sight
	r.fleet.cars[0].State = StateAsleep
	by := t0.Add(48 * time.Hour)
	r.store.needs = map[string][]needs.Need{vin: {{ID: "n1", VIN: vin, TargetPercent: 90, By: by}}}

	count := func(reason string) int {
		n := 0
		for _, c := range r.worker.calls {
			if c.Reason == reason {
				n++
			}
		}
		return n
	}
	for r.clock.Now().Before(by.Add(2 * time.Hour)) {
		r.clock.Advance(15 * time.Minute)
		r.tick(t)
	}
	if count(ReasonNeedWindow) != 1 || count(ReasonNeedDue) != 1 || len(r.worker.calls) != 3 {
		t.Errorf("worker calls %+v: want first_seen, one need_window, one need_due", r.worker.calls)
	}
	if w := r.worker.calls[1]; w.Reason != ReasonNeedWindow {
		t.Errorf("second call %+v", w)
	}
}
