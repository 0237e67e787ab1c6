package needs

import (
	"errors"
	"testing"
	"time"
)

const vinA = "5YJ3E7EB0KF000001"

var by0 = time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)

func TestIDIsDeterministicAndCarriesTheVIN(t *testing.T) {
	t.Parallel()
	local := by0.In(time.FixedZone("CET", 3600))
	id := NewID(vinA, 90, local)
	if id != NewID(vinA, 90, by0) {
		t.Fatalf("the same instant in two zones gives two ids")
	}
	if want := vinA + "-20261205T0700Z-90"; id != want {
		t.Fatalf("id %q, want %q", id, want)
	}
	if vin, ok := parseID(id); !ok || vin != vinA {
		t.Fatalf("parseID(%q) = %q, %v", id, vin, ok)
	}
	if NewID(vinA, 91, by0) == id || NewID(vinA, 90, by0.Add(time.Minute)) == id {
		t.Fatal("different needs share an id")
	}
	for _, bad := range []string{"", "x", vinA, vinA + "-20261205T0700Z", vinA + "-20261205T0700Z-90-1",
		vinA + "-2026-12-05-90", vinA + "-20261205T0700Z-090", "-20261205T0700Z-90", vinA + "-20261205T0700Z-x"} {
		if _, ok := parseID(bad); ok {
			t.Errorf("parseID(%q) accepted", bad)
		}
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	now := by0.Add(-time.Hour)
	cancelled := now
	for _, tc := range []struct {
		name string
		n    Need
		at   time.Time
		want Status
	}{
		{"pending", Need{By: by0}, now, StatusPending},
		{"active", Need{By: by0, Limit: &LimitChange{PreviousPercent: 80, RaisedPercent: 90}}, now, StatusActive},
		{"due at by", Need{By: by0}, by0, StatusDue},
		{"met", Need{By: by0, Outcome: &Outcome{Met: true}}, by0.Add(time.Hour), StatusMet},
		{"missed", Need{By: by0, Outcome: &Outcome{}}, by0.Add(time.Hour), StatusMissed},
		{"cancelled", Need{By: by0, Cancelled: &cancelled}, now, StatusCancelled},
	} {
		if got := tc.n.Status(tc.at); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// The bug the Python system had: a second raise remembering the raised
// limit, so the "restore" left the car at 90 % for good.
func TestRaiseLimitRemembersTheFirstLimit(t *testing.T) {
	t.Parallel()
	n := Need{ID: "x", TargetPercent: 90, By: by0}
	if _, err := n.MarkRestored(by0); !errors.Is(err, ErrNotRaised) {
		t.Fatalf("restore without a raise: %v", err)
	}
	n.RaiseLimit(80, 90, by0.Add(-5*time.Hour))
	n.RaiseLimit(90, 90, by0.Add(-4*time.Hour)) // a cycle after a restart sees 90 on the car
	if n.Limit.PreviousPercent != 80 || !n.RestorePending() {
		t.Fatalf("limit %+v", n.Limit)
	}
	if ok, err := n.MarkRestored(by0); !ok || err != nil {
		t.Fatalf("first restore: %v %v", ok, err)
	}
	if ok, err := n.MarkRestored(by0.Add(time.Minute)); ok || err != nil || !n.Limit.RestoredAt.Equal(by0) {
		t.Fatalf("second restore: %v %v %+v", ok, err, n.Limit)
	}
	if n.RestorePending() {
		t.Fatal("restore still pending")
	}
	// A raise after the restore (the need raised again) starts a new change.
	n.RaiseLimit(70, 90, by0)
	if n.Limit.PreviousPercent != 70 || n.Limit.RestoredAt != nil {
		t.Fatalf("new raise %+v", n.Limit)
	}
}

func TestRecordOutcomeOnce(t *testing.T) {
	t.Parallel()
	n := Need{TargetPercent: 90, By: by0}
	if !n.RecordOutcome(88, by0) || n.Outcome.Met || n.Outcome.SoCPercent != 88 {
		t.Fatalf("outcome %+v", n.Outcome)
	}
	if n.RecordOutcome(95, by0.Add(time.Hour)) || n.Outcome.SoCPercent != 88 {
		t.Fatalf("second outcome replaced the first: %+v", n.Outcome)
	}
	if o := NewOutcome(90, 90, by0); !o.Met {
		t.Fatal("90 % of 90 % is met")
	}
}

func TestNearest(t *testing.T) {
	t.Parallel()
	now := by0.Add(-48 * time.Hour)
	done := now
	ns := []Need{
		{ID: "past", By: now.Add(-time.Hour)},
		{ID: "cancelled", By: now.Add(time.Hour), Cancelled: &done},
		{ID: "met", By: now.Add(2 * time.Hour), Outcome: &Outcome{Met: true}},
		{ID: "later", By: now.Add(5 * time.Hour)},
		{ID: "next", By: now.Add(3 * time.Hour)},
	}
	if n, ok := Nearest(ns, now); !ok || n.ID != "next" {
		t.Fatalf("nearest %q %v", n.ID, ok)
	}
	if n, ok := Nearest(ns, now.Add(3*time.Hour)); !ok || n.ID != "later" {
		t.Fatalf("at next's by: %q %v", n.ID, ok)
	}
	if _, ok := Nearest(ns, now.Add(6*time.Hour)); ok {
		t.Fatal("found a need after every by")
	}
}
