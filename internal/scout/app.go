package scout

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/backends"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/geo"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/svcauth"
)

// Options override what Build would otherwise create.
type Options struct {
	Clock   clock.Clock
	Logger  *zap.Logger
	Secrets SecretReader // default: SECRETS_BACKEND (read-only use)
	State   state.Store  // default: STATE_BACKEND
	// Needs is where the worker keeps the charge needs (read only);
	// default State (production: the same bucket).
	Needs      state.Store
	HTTPClient *http.Client // for the Fleet API
	Version    string
}

// App is a built scout.
type App struct {
	Config  Config
	Handler http.Handler
	Scout   *patrol.Patrol
	Tokens  *TokenCache
	close   []func() error
}

// Close releases the app's clients.
func (a *App) Close() error {
	var errs []error
	for _, c := range a.close {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// Timeouts of the scout's outgoing calls. Together they fit inside
// TICK_TIMEOUT (240 s), which fits inside Cloud Run's request timeout
// (300 s) and Cloud Scheduler's attempt deadline (320 s).
const (
	FleetCallTimeout     = 10 * time.Second
	WorkerRefreshTimeout = 90 * time.Second
	WorkerCycleTimeout   = 200 * time.Second
)

// Build wires the scout from its configuration.
func Build(ctx context.Context, cfg Config, opts Options) (*App, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = httpclient.New(FleetCallTimeout)
	}
	app := &App{Config: cfg}
	reader := opts.Secrets
	if reader == nil {
		s, closeFn, err := backends.OpenSecrets(ctx, backends.Secrets{Kind: cfg.Secrets.Backend, Dir: cfg.Secrets.Dir, Project: cfg.Secrets.Project}, opts.Clock)
		if err != nil {
			return nil, err
		}
		reader = s
		app.close = append(app.close, closeFn)
		secrets.WarnIfExposed(s, func(msg string, paths []string) { opts.Logger.Warn(msg, zap.Strings("paths", paths)) })
	}
	st := opts.State
	if st == nil {
		s, closeFn, err := backends.OpenState(ctx, backends.State{Kind: cfg.State.Backend, Dir: cfg.State.Dir, Bucket: cfg.State.Bucket})
		if err != nil {
			_ = app.Close()
			return nil, err
		}
		st = s
		app.close = append(app.close, closeFn)
	}
	callPolicy, err := cfg.WorkerCallPolicy()
	if err != nil {
		_ = app.Close()
		return nil, err
	}
	workerHTTP, err := svcauth.NewClient(ctx, callPolicy, cfg.WorkerURL, httpclient.New(0))
	if err != nil {
		_ = app.Close()
		return nil, err
	}
	wc := &WorkerClient{BaseURL: cfg.WorkerURL, HTTP: workerHTTP, RefreshTimeout: WorkerRefreshTimeout, CycleTimeout: WorkerCycleTimeout}
	app.Tokens = NewTokenCache(reader, cfg.FleetTokensSecret, wc, opts.Clock, cfg.TokenRefreshBefore, opts.Logger.Named("tokens"))
	fc := fleet.New(cfg.TeslaFleetAPIURL, app.Tokens, fleet.WithHTTPClient(opts.HTTPClient), fleet.WithClock(opts.Clock),
		fleet.WithUserAgent(fleet.UserAgent("scout", opts.Version)))
	needsStore := opts.Needs
	if needsStore == nil {
		needsStore = st
	}
	app.Scout = newPatrol(fc, app.Tokens, wc, stateStore{st: st, needs: needsStore}, opts.Clock, patrol.Settings{
		Home:       geo.Home{Lat: cfg.Home.Lat, Lon: cfg.Home.Lon, RadiusM: cfg.Home.RadiusM},
		VINs:       cfg.VehicleVINs,
		PendingTTL: cfg.PendingTriggerTTL,
	}, opts.Logger)
	tickPolicy, err := cfg.TickPolicy()
	if err != nil {
		_ = app.Close()
		return nil, err
	}
	tickPolicy.Now = opts.Clock.Now
	app.Handler = NewHandler(HandlerDeps{
		Scout: app.Scout, Tokens: app.Tokens, Auth: tickPolicy, Logger: opts.Logger,
		ProjectID: cfg.Secrets.Project, Version: opts.Version, TickTimeout: cfg.TickTimeout,
	})
	return app, nil
}
