package scout

import (
	"context"
	"errors"
	"fmt"

	"github.com/offpeak-charging/offpeak/internal/needs"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
	"github.com/offpeak-charging/offpeak/internal/state"
)

// stateStore keeps the patrol's records in the state store, under the
// prefixes deploy/config.sh grants the scout: one object per car,
// vehicles/<VIN>.json, and the account's rate limit, scout/backoff.json.
// It reads the worker's charge needs, needs/<VIN>.json, from needs (the
// same bucket in production, read-only).
type stateStore struct{ st, needs state.Store }

var _ patrol.Store = stateStore{}

const backoffKey = "scout/backoff.json"

func vehicleKey(vin string) string { return "vehicles/" + vin + ".json" }

// Car reads one car's record.
func (s stateStore) Car(ctx context.Context, vin string) (patrol.Record, bool, error) {
	rec, _, err := state.Load[patrol.Record](ctx, s.st, vehicleKey(vin))
	switch {
	case err == nil:
		return rec, true, nil
	case errors.Is(err, state.ErrNotFound):
		return patrol.Record{}, false, nil
	case errors.Is(err, state.ErrCorrupt):
		return patrol.Record{}, false, fmt.Errorf("%w: %w", patrol.ErrCorrupt, err)
	default:
		return patrol.Record{}, false, err
	}
}

// UpdateCar changes one car's record with compare-and-swap (state.Update).
func (s stateStore) UpdateCar(ctx context.Context, vin string, change func(*patrol.Record) bool) error {
	_, err := state.Update(ctx, s.st, vehicleKey(vin), func(cur *patrol.Record, exists bool) (*patrol.Record, error) {
		next := patrol.Record{VIN: vin}
		if exists {
			next = *cur
		}
		if !change(&next) {
			return nil, nil
		}
		return &next, nil
	})
	return err
}

// Needs reads the car's charge needs.
func (s stateStore) Needs(ctx context.Context, vin string) ([]needs.Need, error) {
	if s.needs == nil {
		return nil, nil
	}
	return needs.Read(ctx, s.needs, vin)
}

// Backoff reads the account's rate limit.
func (s stateStore) Backoff(ctx context.Context) (patrol.Backoff, error) {
	b, _, err := state.Load[patrol.Backoff](ctx, s.st, backoffKey)
	return b, err
}

// SetBackoff stores the account's rate limit, whatever was there.
func (s stateStore) SetBackoff(ctx context.Context, b patrol.Backoff) error {
	_, err := state.Update(ctx, s.st, backoffKey, func(*patrol.Backoff, bool) (*patrol.Backoff, error) { return &b, nil })
	return err
}
