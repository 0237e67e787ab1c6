package patrol

import (
	"math"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/geo"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC)
	ttl := 6 * time.Hour
	home := func(ready bool) Observation {
		return Observation{AtHome: true, Ready: ready, HasLocation: true}
	}
	away := func(ready bool) Observation {
		return Observation{AtHome: false, Ready: ready, HasLocation: true}
	}
	rec := func(atHome, ready bool) *Record { return &Record{HasData: true, AtHome: atHome, Ready: ready} }
	withPending := func(r *Record, p Pending) *Record { r.Pending = &p; return r }

	cases := []struct {
		name string
		prev *Record
		obs  Observation
		want Decision
	}{
		{"never seen", nil, away(false), Decision{DecideTrigger, ReasonFirstSeen}},
		{"seen only asleep before", &Record{State: "asleep"}, home(true), Decision{DecideTrigger, ReasonFirstSeen}},
		{"arrived home and plugged in", rec(false, false), home(true), Decision{DecideTrigger, ReasonArrivedHomeReady}},
		{"plugged in at home", rec(true, false), home(true), Decision{DecideTrigger, ReasonArrivedHomeReady}},
		{"arrived home already plugged (charging away, then home)", rec(false, true), home(true), Decision{DecideTrigger, ReasonArrivedHomeReady}},
		{"unplugged at home", rec(true, true), home(false), Decision{DecideTrigger, ReasonUnpluggedAtHome}},
		{"left home unplugged: nothing", rec(true, true), away(false), Decision{Kind: DecideNothing}},
		{"still plugged at home", rec(true, true), home(true), Decision{Kind: DecideNothing}},
		{"away, plugged elsewhere", rec(false, false), away(true), Decision{Kind: DecideNothing}},
		{"home, unplugged, was unplugged", rec(true, false), home(false), Decision{Kind: DecideNothing}},
		{"pending retried", withPending(rec(true, true), Pending{Reason: ReasonArrivedHomeReady, Since: now.Add(-time.Hour), LastTry: now.Add(-15 * time.Minute)}), home(true), Decision{DecideRetry, ReasonArrivedHomeReady}},
		{"pending in flight elsewhere", withPending(rec(true, true), Pending{Reason: ReasonArrivedHomeReady, Since: now.Add(-time.Minute), AttemptAt: now.Add(-time.Minute)}), home(true), Decision{DecideWait, ReasonArrivedHomeReady}},
		{"stale in-flight marker is retried", withPending(rec(true, true), Pending{Reason: ReasonArrivedHomeReady, Since: now.Add(-time.Hour), AttemptAt: now.Add(-time.Hour)}), home(true), Decision{DecideRetry, ReasonArrivedHomeReady}},
		{"pending expired", withPending(rec(true, true), Pending{Reason: ReasonArrivedHomeReady, Since: now.Add(-ttl - time.Minute)}), home(true), Decision{DecideDrop, ReasonArrivedHomeReady}},
		{"new transition replaces pending", withPending(rec(true, true), Pending{Reason: ReasonFirstSeen, Since: now.Add(-time.Hour)}), home(false), Decision{DecideTrigger, ReasonUnpluggedAtHome}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.prev, tc.obs, now, ttl); got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	h := geo.Home{Lat: 52.231838, Lon: 21.005995, RadiusM: 100}
	at := func(lat, lon float64) *geo.Point { return &geo.Point{Lat: lat, Lon: lon} }
	home := at(52.2319, 21.0060)
	cases := []struct {
		name          string
		r             Reading
		atHome, ready bool
	}{
		{"home plugged", Reading{Position: home, Charge: &ChargeReading{Plugged: true, ChargingState: "Stopped"}}, true, true},
		{"home charging, no cable seen", Reading{Position: home, Charge: &ChargeReading{ChargingState: "Charging"}}, true, true},
		{"home complete", Reading{Position: home, Charge: &ChargeReading{ChargingState: "Complete"}}, true, true},
		{"state in any case", Reading{Position: home, Charge: &ChargeReading{ChargingState: "CHARGING"}}, true, true},
		{"home unplugged", Reading{Position: home, Charge: &ChargeReading{ChargingState: "Disconnected"}}, true, false},
		{"home, no charge_state", Reading{Position: home}, true, false},
		{"150 m away is not home", Reading{Position: at(52.233188, 21.005995), Charge: &ChargeReading{Plugged: true}}, false, true},
		{"no location is not home", Reading{Charge: &ChargeReading{Plugged: true}}, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			obs := Classify(tc.r, h)
			if obs.AtHome != tc.atHome || obs.Ready != tc.ready || obs.HasLocation != (tc.r.Position != nil) {
				t.Errorf("at_home=%v ready=%v has_location=%v, want %v %v %v", obs.AtHome, obs.Ready, obs.HasLocation, tc.atHome, tc.ready, tc.r.Position != nil)
			}
		})
	}
}

// TestObserveKeepsTheLastAnswerWithoutAPosition: unknown is not away, and
// not home either for a car never seen.
func TestObserveKeepsTheLastAnswerWithoutAPosition(t *testing.T) {
	t.Parallel()
	h := geo.Home{Lat: 52.231838, Lon: 21.005995, RadiusM: 100}
	away := &geo.Point{Lat: 52.3, Lon: 21.1}
	for _, tc := range []struct {
		name string
		r    Reading
		prev *Record
		want bool
	}{
		{"no position, was home", Reading{}, &Record{HasData: true, AtHome: true}, true},
		{"no position, was away", Reading{}, &Record{HasData: true}, false},
		{"no position, never seen", Reading{}, nil, false},
		{"a position wins over the memory", Reading{Position: away}, &Record{HasData: true, AtHome: true}, false},
	} {
		if got := Observe(tc.r, tc.prev, h).AtHome; got != tc.want {
			t.Errorf("%s: AtHome = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestClassifyHomeEdge: the scout draws the worker's circle (geo.Home), not
// a rounded one: 100.3 m from home with a 100 m radius is away, as the
// worker's cycle says too (charging.TestCycleHomeEdge).
func TestClassifyHomeEdge(t *testing.T) {
	t.Parallel()
	h := geo.Home{Lat: 52.231838, Lon: 21.005995, RadiusM: 100}
	for _, c := range []struct {
		metres float64
		home   bool
	}{{99.7, true}, {100, true}, {100.3, false}, {100.4, false}} {
		lat := h.Lat + c.metres/geo.EarthRadiusM*180/math.Pi
		obs := Classify(Reading{Position: &geo.Point{Lat: lat, Lon: h.Lon}}, h)
		if obs.AtHome != c.home {
			t.Errorf("%.1f m north: AtHome = %v (distance shown %v m), want %v", c.metres, obs.AtHome, obs.DistanceM, c.home)
		}
	}
}
