package scout

import (
	"context"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
	"github.com/offpeak-charging/offpeak/internal/state"
)

// Fleet is the read-only part of the Fleet API the scout uses
// (*fleet.Client fits). It has no wake_up on purpose: the scout cannot wake
// a car even by mistake.
type Fleet interface {
	Vehicles(ctx context.Context) ([]fleet.Vehicle, error)
	Vehicle(ctx context.Context, vin string) (fleet.Vehicle, error)
	VehicleData(ctx context.Context, vin string, endpoints ...string) (fleet.VehicleData, error)
}

// TokenRejecter is told when the Fleet API rejected the access token.
type TokenRejecter interface {
	Rejected(ctx context.Context) error
}

// New wires a patrol over the Fleet API, the worker and the state store,
// where it also reads the worker's charge needs (one bucket in production).
func New(f Fleet, tokens TokenRejecter, worker patrol.CycleTrigger, st state.Store, clock Clock, cfg patrol.Settings, log *zap.Logger) *patrol.Patrol {
	return newPatrol(f, tokens, worker, stateStore{st: st, needs: st}, clock, cfg, log)
}

func newPatrol(f Fleet, tokens TokenRejecter, worker patrol.CycleTrigger, st stateStore, clock Clock, cfg patrol.Settings, log *zap.Logger) *patrol.Patrol {
	if log == nil {
		log = zap.NewNop()
	}
	return patrol.New(fleetReader{fleet: f, tokens: tokens, log: log}, worker, st, clock, cfg, zapLogger(log))
}

// zapLog writes the patrol's key-value log lines through zap.
type zapLog struct{ s *zap.SugaredLogger }

// zapLogger adapts l to patrol.Logger; the caller zap reports is the
// patrol's line, not this adapter's.
func zapLogger(l *zap.Logger) patrol.Logger {
	return zapLog{l.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (l zapLog) Info(msg string, kv ...any)  { l.s.Infow(msg, kv...) }
func (l zapLog) Warn(msg string, kv ...any)  { l.s.Warnw(msg, kv...) }
func (l zapLog) Error(msg string, kv ...any) { l.s.Errorw(msg, kv...) }
