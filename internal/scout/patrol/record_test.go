package patrol

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC)

func TestClaim(t *testing.T) {
	t.Parallel()
	ttl := 6 * time.Hour
	homeReady := Observation{AtHome: true, Ready: true, HasLocation: true, BatteryLevel: 41, ChargingState: "Stopped"}
	cases := []struct {
		name    string
		rec     Record
		want    Decision
		pending *Pending // the record's pending trigger after the claim
	}{
		{"never seen: first sight, marked as being sent", Record{VIN: "V"},
			Decision{DecideTrigger, ReasonFirstSeen}, &Pending{Reason: ReasonFirstSeen, Since: t0, AttemptAt: t0, Attempts: 1}},
		{"arrival replaces an old pending trigger", Record{VIN: "V", HasData: true, Pending: &Pending{Reason: ReasonFirstSeen, Since: t0.Add(-time.Hour), Attempts: 2}},
			Decision{DecideTrigger, ReasonArrivedHomeReady}, &Pending{Reason: ReasonArrivedHomeReady, Since: t0, AttemptAt: t0, Attempts: 1}},
		{"retry counts the attempt and keeps its age", Record{VIN: "V", HasData: true, AtHome: true, Ready: true, Pending: &Pending{Reason: ReasonArrivedHomeReady, Since: t0.Add(-time.Hour), Attempts: 2, LastError: "down"}},
			Decision{DecideRetry, ReasonArrivedHomeReady}, &Pending{Reason: ReasonArrivedHomeReady, Since: t0.Add(-time.Hour), AttemptAt: t0, Attempts: 3, LastError: "down"}},
		{"another tick is sending it: left alone", Record{VIN: "V", HasData: true, AtHome: true, Ready: true, Pending: &Pending{Reason: ReasonArrivedHomeReady, Since: t0.Add(-time.Minute), AttemptAt: t0.Add(-time.Minute), Attempts: 1}},
			Decision{DecideWait, ReasonArrivedHomeReady}, &Pending{Reason: ReasonArrivedHomeReady, Since: t0.Add(-time.Minute), AttemptAt: t0.Add(-time.Minute), Attempts: 1}},
		{"too old: dropped", Record{VIN: "V", HasData: true, AtHome: true, Ready: true, Pending: &Pending{Reason: ReasonArrivedHomeReady, Since: t0.Add(-ttl - time.Minute)}},
			Decision{DecideDrop, ReasonArrivedHomeReady}, nil},
		{"nothing new", Record{VIN: "V", HasData: true, AtHome: true, Ready: true},
			Decision{Kind: DecideNothing}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := fmt.Sprint(tc.rec.Pending)
			rec := tc.rec
			if got := claim(&rec, homeReady, t0, ttl); got != tc.want {
				t.Errorf("decision = %+v, want %+v", got, tc.want)
			}
			if fmt.Sprint(tc.rec.Pending) != before {
				t.Error("claim changed the pending trigger it was given instead of a copy")
			}
			if !rec.HasData || rec.State != StateOnline || !rec.LastSeen.Equal(t0) || !rec.ObservedAt.Equal(t0) ||
				!rec.AtHome || !rec.Ready || rec.BatteryLevel != 41 || rec.ChargingState != "Stopped" || rec.VIN != "V" {
				t.Errorf("observation not recorded: %+v", rec)
			}
			if !samePending(rec.Pending, tc.pending) {
				t.Errorf("pending = %+v, want %+v", rec.Pending, tc.pending)
			}
		})
	}
}

func TestSettle(t *testing.T) {
	t.Parallel()
	pending := func(operatorFailures int) *Pending {
		return &Pending{Reason: ReasonArrivedHomeReady, Since: t0.Add(-time.Hour), AttemptAt: t0, Attempts: 2, OperatorFailures: operatorFailures}
	}
	down := errors.New("worker unavailable")
	unpaired := fmt.Errorf("%w: key_not_paired", ErrNeedsOperator)
	cases := []struct {
		name        string
		pending     *Pending
		err         error
		write       bool
		want        *Pending
		lastTrigger bool
	}{
		{"nothing pending: nothing to write", nil, nil, false, nil, false},
		{"confirmed: becomes the last trigger", pending(0), nil, true, nil, true},
		{"failed: kept for a later tick, no longer in flight", pending(0), down, true,
			&Pending{Reason: ReasonArrivedHomeReady, Since: t0.Add(-time.Hour), LastTry: t0, Attempts: 2, LastError: down.Error()}, false},
		{"operator's problem: counted", pending(1), unpaired, true,
			&Pending{Reason: ReasonArrivedHomeReady, Since: t0.Add(-time.Hour), LastTry: t0, Attempts: 2, LastError: unpaired.Error(), OperatorFailures: 2}, false},
		{"operator's problem, the last time: dropped", pending(MaxOperatorFailures - 1), unpaired, true, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := Record{VIN: "V", Pending: tc.pending}
			if got := settle(&rec, ReasonArrivedHomeReady, t0, tc.err); got != tc.write {
				t.Errorf("write = %v, want %v", got, tc.write)
			}
			if !samePending(rec.Pending, tc.want) {
				t.Errorf("pending = %+v, want %+v", rec.Pending, tc.want)
			}
			if got := rec.LastTrigger != nil; got != tc.lastTrigger {
				t.Errorf("last trigger = %+v, want one: %v", rec.LastTrigger, tc.lastTrigger)
			} else if got && (*rec.LastTrigger != Trigger{Reason: ReasonArrivedHomeReady, At: t0}) {
				t.Errorf("last trigger = %+v", rec.LastTrigger)
			}
		})
	}
}

// TestMarkAsleep: time asleep does not age a pending trigger; what was known
// of the car is kept.
func TestMarkAsleep(t *testing.T) {
	t.Parallel()
	since := t0.Add(-2 * time.Hour)
	cases := []struct {
		name      string
		rec       Record
		wantSince time.Time // of the pending trigger, if any
	}{
		{"never seen", Record{VIN: "V"}, time.Time{}},
		{"pending paused for the time asleep", Record{VIN: "V", HasData: true, AtHome: true, LastSeen: t0.Add(-time.Hour), Pending: &Pending{Reason: ReasonArrivedHomeReady, Since: since}}, since.Add(time.Hour)},
		{"first sight asleep: nothing to pause by", Record{VIN: "V", Pending: &Pending{Reason: ReasonFirstSeen, Since: since}}, since},
		{"a clock that went back pauses nothing", Record{VIN: "V", LastSeen: t0.Add(time.Minute), Pending: &Pending{Reason: ReasonFirstSeen, Since: since}}, since},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := tc.rec
			markAsleep(&rec, StateAsleep, t0)
			if rec.State != StateAsleep || !rec.LastSeen.Equal(t0) || rec.AtHome != tc.rec.AtHome || rec.HasData != tc.rec.HasData {
				t.Errorf("record = %+v", rec)
			}
			if rec.Pending != nil && !rec.Pending.Since.Equal(tc.wantSince) {
				t.Errorf("pending since %v, want %v", rec.Pending.Since, tc.wantSince)
			}
			if tc.rec.Pending != nil && !tc.rec.Pending.Since.Equal(since) {
				t.Error("markAsleep changed the pending trigger it was given instead of a copy")
			}
		})
	}
}

func samePending(a, b *Pending) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
