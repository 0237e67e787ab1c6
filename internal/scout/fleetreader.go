package scout

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/geo"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
)

// fleetReader adapts the Fleet client to the patrol: a 401 has the token
// re-read (and refreshed through the worker if it is the same one) and the
// call made once more; the client's errors gain the kinds the patrol acts
// on and the fixes an operator needs.
type fleetReader struct {
	fleet  Fleet
	tokens TokenRejecter
	log    *zap.Logger
}

var _ patrol.Fleet = fleetReader{}

// Cars lists the account's cars.
func (f fleetReader) Cars(ctx context.Context) ([]patrol.Car, error) {
	var list []fleet.Vehicle
	err := f.withAuthRetry(ctx, func() (err error) {
		list, err = f.fleet.Vehicles(ctx)
		return err
	})
	if err != nil {
		return nil, explain(err)
	}
	cars := make([]patrol.Car, len(list))
	for i, v := range list {
		cars[i] = patrol.Car{VIN: v.VIN, State: v.State, Listed: true}
	}
	return cars, nil
}

// State is one car's state, from the free endpoint.
func (f fleetReader) State(ctx context.Context, vin string) (string, error) {
	var v fleet.Vehicle
	err := f.withAuthRetry(ctx, func() (err error) {
		v, err = f.fleet.Vehicle(ctx, vin)
		return err
	})
	return v.State, explain(err)
}

// Read makes the one billed call, with everything the rules need.
func (f fleetReader) Read(ctx context.Context, vin string) (patrol.Reading, error) {
	var d fleet.VehicleData
	err := f.withAuthRetry(ctx, func() (err error) {
		d, err = f.fleet.VehicleData(ctx, vin, fleet.EndpointChargeState, fleet.EndpointDriveState, fleet.EndpointLocationData)
		return err
	})
	if errors.Is(err, fleet.ErrAsleep) {
		return patrol.Reading{}, fmt.Errorf("%w: %w", patrol.ErrAsleep, err)
	}
	if err != nil {
		return patrol.Reading{}, explain(err)
	}
	return ReadingFrom(d), nil
}

// ReadingFrom is the part of vehicle_data the patrol classifies.
func ReadingFrom(d fleet.VehicleData) patrol.Reading {
	var r patrol.Reading
	if d.Location != nil {
		r.Position = &geo.Point{Lat: d.Location.Latitude, Lon: d.Location.Longitude}
	}
	if c := d.Charge; c != nil {
		r.Charge = &patrol.ChargeReading{BatteryLevel: c.BatteryLevel, ChargingState: c.ChargingState, Plugged: c.CablePlugged()}
	}
	return r
}

// withAuthRetry runs call; on a 401 it has the token re-read (and refreshed
// through the worker if it is the same one) and runs call once more.
func (f fleetReader) withAuthRetry(ctx context.Context, call func() error) error {
	err := call()
	if !errors.Is(err, fleet.ErrUnauthorized) {
		return err
	}
	f.log.Warn("Fleet API rejected the access token; re-reading it")
	if rerr := f.tokens.Rejected(ctx); rerr != nil {
		return fmt.Errorf("%w (after a 401: %w)", rerr, err)
	}
	return call()
}

// explain gives a Fleet error the kind the patrol acts on (a 429 that says
// how long becomes a patrol.RateLimitError, its text unchanged) and, for
// the errors an operator must act on, what to do.
func explain(err error) error {
	if err == nil {
		return nil
	}
	if d, ok := fleet.RetryAfter(err); ok && errors.Is(err, fleet.ErrRateLimited) {
		return &patrol.RateLimitError{RetryAfter: d, Err: err}
	}
	if errors.Is(err, fleet.ErrWrongRegion) {
		return fmt.Errorf("%w (set TESLA_FLEET_API_URL to the account's region; `fleetctl doctor` tells which)", err)
	}
	return err
}
