package carcmd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/fleet"
)

// Mode is how commands travel (TESLA_COMMAND_MODE).
type Mode string

// Modes. Auto is resolved by ParseMode into Sign or Proxy.
const (
	// ModeAuto: Proxy when TESLA_COMMAND_URL is set, else Sign.
	ModeAuto Mode = "auto"
	// ModeSign: sign in the worker with the owner's key; plain REST only for
	// the cars that cannot take signed commands.
	ModeSign Mode = "sign"
	// ModeProxy: unsigned REST commands to TESLA_COMMAND_URL, an external
	// signer (tesla-http-proxy, or a hosted service that signs).
	ModeProxy Mode = "proxy"
	// ModeREST: unsigned REST commands to the Fleet API; only pre-2021
	// Model S/X take them.
	ModeREST Mode = "rest"
)

// ParseMode reads TESLA_COMMAND_MODE; commandURL is TESLA_COMMAND_URL as
// set (empty when unset). Errors name the variables.
func ParseMode(v, commandURL string) (Mode, error) {
	switch m := Mode(v); m {
	case "", ModeAuto:
		if commandURL != "" {
			return ModeProxy, nil
		}
		return ModeSign, nil
	case ModeProxy:
		if commandURL == "" {
			return "", errors.New("TESLA_COMMAND_MODE=proxy needs TESLA_COMMAND_URL (the external signer's URL)")
		}
		return m, nil
	case ModeSign, ModeREST:
		if commandURL != "" {
			return "", fmt.Errorf("TESLA_COMMAND_URL is set but TESLA_COMMAND_MODE=%s does not use it: unset it, or use proxy or auto", m)
		}
		return m, nil
	}
	return "", fmt.Errorf("TESLA_COMMAND_MODE: %q is not one of auto, sign, proxy, rest", v)
}

// Path is how commands reach one car.
type Path string

// Paths.
const (
	PathUnknown Path = ""
	PathSigned  Path = "signed" // Vehicle Command Protocol, our key
	PathREST    Path = "rest"   // plain REST (pre-2021 Model S/X)
	PathProxy   Path = "proxy"  // REST to the external signer
)

// ErrSigningDisabled: the car needs signed commands and the worker is set
// not to sign.
var ErrSigningDisabled = errors.New("the car only accepts signed commands but TESLA_COMMAND_MODE=rest: " +
	"set TESLA_COMMAND_MODE=auto (sign in the worker) or proxy (an external signer)")

// RESTCommander sends unsigned REST commands; *fleet.Client is one.
type RESTCommander interface {
	AddChargeSchedule(ctx context.Context, vin string, s fleet.ScheduleRequest) error
	RemoveChargeSchedule(ctx context.Context, vin string, id int64) error
	SetChargeLimit(ctx context.Context, vin string, percent int) error
}

// StatusReader asks Tesla which cars need signed commands; *fleet.Client is one.
type StatusReader interface {
	FleetStatus(ctx context.Context, vins []string) (fleet.FleetStatus, error)
}

// PathStore remembers per car which path works, so a car is asked once.
type PathStore interface {
	LoadPath(ctx context.Context, vin string) (Path, error) // PathUnknown, nil: never learned
	SavePath(ctx context.Context, vin string, p Path, learnedFrom string) error
}

// RouterConfig configures NewRouter.
type RouterConfig struct {
	Mode   Mode          // resolved: ModeSign, ModeProxy or ModeREST
	Signer *Signer       // ModeSign
	REST   RESTCommander // the Fleet API (ModeSign's legacy cars, ModeREST)
	Proxy  RESTCommander // TESLA_COMMAND_URL (ModeProxy)
	Status StatusReader  // ModeSign: fleet_status, once per car
	Paths  PathStore     // nil: learned paths live in memory only
	Logger *zap.Logger
}

// Router sends each car's commands by the path it needs: the command
// half of charging.Vehicle, so the cycle never knows how a command travels.
type Router struct {
	cfg RouterConfig
	log *zap.Logger

	mu    sync.Mutex
	known map[string]Path
}

// NewRouter checks that the mode has what it needs.
func NewRouter(cfg RouterConfig) (*Router, error) {
	switch cfg.Mode {
	case ModeSign:
		if cfg.Signer == nil || cfg.REST == nil {
			return nil, errors.New("carcmd: sign mode needs a signer and a REST client")
		}
	case ModeProxy:
		if cfg.Proxy == nil {
			return nil, errors.New("carcmd: proxy mode needs a proxy client")
		}
	case ModeREST:
		if cfg.REST == nil {
			return nil, errors.New("carcmd: rest mode needs a REST client")
		}
	default:
		return nil, fmt.Errorf("carcmd: unresolved mode %q", cfg.Mode)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Router{cfg: cfg, log: log, known: map[string]Path{}}, nil
}

// Mode is the resolved mode.
func (r *Router) Mode() Mode { return r.cfg.Mode }

// Signer is the in-process signer (nil unless ModeSign).
func (r *Router) Signer() *Signer { return r.cfg.Signer }

// LastPath is the path commands to vin last took (PathUnknown before any).
func (r *Router) LastPath(vin string) Path {
	switch r.cfg.Mode {
	case ModeProxy:
		return PathProxy
	case ModeREST:
		return PathREST
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.known[vin]
}

// AddChargeSchedule sends one schedule with its id.
func (r *Router) AddChargeSchedule(ctx context.Context, vin string, s charging.Schedule) error {
	return r.send(ctx, vin,
		func(ctx context.Context) error { return r.cfg.Signer.AddChargeSchedule(ctx, vin, s) },
		func(ctx context.Context, c RESTCommander) error {
			req, err := scheduleRequest(s)
			if err != nil {
				return err
			}
			return c.AddChargeSchedule(ctx, vin, req)
		})
}

// RemoveChargeSchedule removes one schedule by id.
func (r *Router) RemoveChargeSchedule(ctx context.Context, vin string, id int64) error {
	return r.send(ctx, vin,
		func(ctx context.Context) error { return r.cfg.Signer.RemoveChargeSchedule(ctx, vin, id) },
		func(ctx context.Context, c RESTCommander) error { return c.RemoveChargeSchedule(ctx, vin, id) })
}

// SetChargeLimit sets the charge limit in percent.
func (r *Router) SetChargeLimit(ctx context.Context, vin string, percent int) error {
	return r.send(ctx, vin,
		func(ctx context.Context) error { return r.cfg.Signer.SetChargeLimit(ctx, vin, percent) },
		func(ctx context.Context, c RESTCommander) error { return c.SetChargeLimit(ctx, vin, percent) })
}

func scheduleRequest(s charging.Schedule) (fleet.ScheduleRequest, error) {
	days, err := fleet.DayNames(s.DaysMask)
	if err != nil {
		return fleet.ScheduleRequest{}, err
	}
	return fleet.ScheduleRequest{
		ID: s.ID, DaysOfWeek: days, Enabled: s.Enabled, StartEnabled: s.StartEnabled, EndEnabled: s.EndEnabled,
		OneTime: s.OneTime, StartTime: s.StartMin, EndTime: s.EndMin, Lat: s.Lat, Lon: s.Lon,
	}, nil
}

// send runs one command by the car's path, and learns from the car's answer:
// a 422 to a signed command means the car has no protocol (REST from now
// on); a 403 "protocol required" (or result:false unsigned_cmds_hardlocked)
// to a REST command means it needs signing, whatever fleet_status said
// (reference/vehicle-commands.md §1).
func (r *Router) send(ctx context.Context, vin string, signed func(context.Context) error, rest func(context.Context, RESTCommander) error) error {
	switch r.cfg.Mode {
	case ModeProxy:
		return restErr(rest(ctx, r.cfg.Proxy))
	case ModeREST:
		err := rest(ctx, r.cfg.REST)
		if errors.Is(err, fleet.ErrSigningRequired) {
			return fmt.Errorf("%w (%w)", ErrSigningDisabled, err)
		}
		return restErr(err)
	}
	if r.path(ctx, vin) == PathREST {
		err := rest(ctx, r.cfg.REST)
		if !errors.Is(err, fleet.ErrSigningRequired) {
			return restErr(err)
		}
		r.learn(ctx, vin, PathSigned, "a REST command answered that the car needs signing")
	}
	err := signed(ctx)
	if errors.Is(err, fleet.ErrProtocolNotSupported) {
		r.learn(ctx, vin, PathREST, "signed_command answered 422")
		return restErr(rest(ctx, r.cfg.REST))
	}
	if err == nil {
		r.remember(vin, PathSigned)
	}
	return err
}

// restErr adds the cycle's kinds to the Fleet client's REST errors.
func restErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fleet.ErrAsleep):
		return fmt.Errorf("%w: %w", charging.ErrAsleep, err)
	case errors.Is(err, fleet.ErrCommandFailed):
		return fmt.Errorf("%w: %w", charging.ErrCommandRejected, err)
	}
	return err
}

// path is the car's path: memory, then the store, then fleet_status (one
// request per car, ever, when the store works); signed when unsure.
func (r *Router) path(ctx context.Context, vin string) Path {
	r.mu.Lock()
	p, ok := r.known[vin]
	r.mu.Unlock()
	if ok && p != PathUnknown {
		return p
	}
	if r.cfg.Paths != nil {
		if p, err := r.cfg.Paths.LoadPath(ctx, vin); err == nil && p != PathUnknown {
			r.remember(vin, p)
			return p
		} else if err != nil {
			r.log.Warn("command path unreadable", zap.String("vin", vin), zap.Error(err))
		}
	}
	if r.cfg.Status == nil {
		return PathSigned
	}
	st, err := r.cfg.Status.FleetStatus(ctx, []string{vin})
	if err != nil {
		r.log.Warn("fleet_status failed: signing", zap.String("vin", vin), zap.Error(err))
		return PathSigned
	}
	info, ok := st.Vehicles[vin]
	if !ok || info.ProtocolRequired {
		r.learn(ctx, vin, PathSigned, "fleet_status")
		return PathSigned
	}
	r.learn(ctx, vin, PathREST, "fleet_status: vehicle_command_protocol_required false")
	return PathREST
}

func (r *Router) remember(vin string, p Path) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.known[vin] = p
}

func (r *Router) learn(ctx context.Context, vin string, p Path, why string) {
	r.remember(vin, p)
	r.log.Info("command path learned", zap.String("vin", vin), zap.String("path", string(p)), zap.String("from", why))
	if r.cfg.Paths == nil {
		return
	}
	if err := r.cfg.Paths.SavePath(context.WithoutCancel(ctx), vin, p, why); err != nil {
		r.log.Warn("command path not stored", zap.String("vin", vin), zap.Error(err))
	}
}
