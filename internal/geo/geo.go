// Package geo answers one question for the whole system: is this position
// home? The scout decides from it whether to call the worker and the worker
// whether to plan, so both must draw the same circle; a one-metre
// disagreement at the edge once meant a parking spot the scout called home
// and the worker called away, and it never got a schedule.
package geo

import (
	"errors"
	"fmt"
	"math"
)

// EarthRadiusM is the mean Earth radius (IUGG), plenty for a 100 m circle.
const EarthRadiusM = 6371008.8

// ErrInvalidHome: a Home that is not a place with a radius.
var ErrInvalidHome = errors.New("invalid home")

// Point is a position in degrees (WGS 84, as the car reports it).
type Point struct{ Lat, Lon float64 }

// DistanceM is the great-circle (haversine) distance between a and b in
// metres. The Python system compared degrees, which draws an ellipse and
// once let a radius of 100 (degrees!) count the whole continent as home.
func DistanceM(a, b Point) float64 {
	rad := math.Pi / 180
	dLat := (b.Lat - a.Lat) * rad
	dLon := (b.Lon - a.Lon) * rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * EarthRadiusM * math.Asin(math.Min(1, math.Sqrt(h)))
}

// Home is the place where the car charges and the radius that counts as
// being there.
type Home struct {
	Lat, Lon float64
	RadiusM  float64
}

// Point is the home's centre.
func (h Home) Point() Point { return Point{h.Lat, h.Lon} }

// DistanceM is how far p is from the centre, in metres (not rounded: a
// rounded distance is for people, the decision uses this one).
func (h Home) DistanceM(p Point) float64 { return DistanceM(h.Point(), p) }

// Contains reports whether p is home: at most RadiusM from the centre, the
// edge included. This is the only home test in the system.
func (h Home) Contains(p Point) bool { return h.DistanceM(p) <= h.RadiusM }

// Validate checks that the centre is a place and the radius a distance
// between 0 (exclusive) and 10 km.
func (h Home) Validate() error {
	switch {
	case math.IsNaN(h.Lat) || h.Lat < -90 || h.Lat > 90:
		return fmt.Errorf("%w: latitude %v", ErrInvalidHome, h.Lat)
	case math.IsNaN(h.Lon) || h.Lon < -180 || h.Lon > 180:
		return fmt.Errorf("%w: longitude %v", ErrInvalidHome, h.Lon)
	case h.Lat == 0 && h.Lon == 0:
		return fmt.Errorf("%w: 0,0 is in the Gulf of Guinea", ErrInvalidHome)
	case math.IsNaN(h.RadiusM) || h.RadiusM <= 0 || h.RadiusM > 10000:
		return fmt.Errorf("%w: radius %v m, must be more than 0 and at most 10000", ErrInvalidHome, h.RadiusM)
	}
	return nil
}
