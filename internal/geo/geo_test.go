package geo

import (
	"errors"
	"math"
	"testing"
)

func TestDistanceKnownValues(t *testing.T) {
	// Warsaw: the Palace of Culture to the Royal Castle, about 1.9 km.
	if d := DistanceM(Point{52.231838, 21.005995}, Point{52.247993, 21.015217}); math.Abs(d-1903) > 5 {
		t.Errorf("distance = %.0f m, want about 1903", d)
	}
	if e, n := DistanceM(Point{52, 21}, Point{52, 21.001}), DistanceM(Point{52, 21}, Point{52.001, 21}); math.Abs(e-68.5) > 1 || math.Abs(n-111.2) > 1 {
		t.Errorf("0.001° east = %.1f m, north = %.1f m", e, n)
	}
	if DistanceM(Point{10, 10}, Point{10, 10}) != 0 {
		t.Error("a point is not at distance 0 from itself")
	}
}

// northBy returns the point d metres due north of p (exact on a sphere).
func northBy(p Point, d float64) Point {
	return Point{p.Lat + d/EarthRadiusM*180/math.Pi, p.Lon}
}

// TestContainsAtTheEdge pins the one rule both services use: the edge is
// home, a centimetre beyond it is not, and nothing is rounded (the scout
// once rounded 100.4 m to 100 and called it home while the worker did not).
func TestContainsAtTheEdge(t *testing.T) {
	h := Home{Lat: 52.2297, Lon: 21.0122, RadiusM: 100}
	for _, c := range []struct {
		metres float64
		want   bool
	}{
		{0, true}, {99.9, true}, {99.999, true}, {100.01, false},
		{100.2, false}, {100.4, false}, {100.5, false}, {150, false},
	} {
		p := northBy(h.Point(), c.metres)
		if got := h.Contains(p); got != c.want {
			t.Errorf("%.3f m from home (distance %.4f): Contains = %v, want %v", c.metres, h.DistanceM(p), got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Home{Lat: 52.2, Lon: 21.0, RadiusM: 100}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, h := range []Home{
		{Lat: 91, Lon: 0, RadiusM: 100}, {Lat: 10, Lon: 181, RadiusM: 100}, {RadiusM: 100},
		{Lat: 52, Lon: 21}, {Lat: 52, Lon: 21, RadiusM: -1}, {Lat: 52, Lon: 21, RadiusM: 20000},
		{Lat: math.NaN(), Lon: 21, RadiusM: 100}, {Lat: 52, Lon: 21, RadiusM: math.NaN()},
	} {
		if err := h.Validate(); !errors.Is(err, ErrInvalidHome) {
			t.Errorf("%+v: err = %v, want ErrInvalidHome", h, err)
		}
	}
}
