package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// Options override what Build would otherwise create, for tests and the
// local stack. Zero values take the production defaults.
type Options struct {
	Clock      clock.Clock
	Logger     *zap.Logger
	Secrets    secrets.Store // default: SECRETS_BACKEND
	State      state.Store   // default: STATE_BACKEND
	HTTPClient *http.Client  // for Tesla calls
	Version    string
	// ManagerConfig adjusts the token manager beyond what the environment
	// sets (tests shorten its waits).
	ManagerConfig func(*tokens.Config)
	// CycleConfig adjusts the charging cycle (tests shorten command spacing).
	CycleConfig func(*charging.CycleConfig)
}

// App is a built worker: its handler and the parts tests look at.
type App struct {
	Config  Config
	Handler http.Handler
	Tokens  *tokens.Manager
	Cycle   *charging.Cycle
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

// Build wires the worker from its configuration: secret store, token
// manager, Fleet client, planner and charging cycle, and the HTTP routes.
// It starts nothing; the caller serves Handler.
func Build(ctx context.Context, cfg Config, opts Options) (*App, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 20 * time.Second}
	}
	app := &App{Config: cfg}
	store := opts.Secrets
	if store == nil {
		s, closeFn, err := secrets.Open(ctx, secrets.Backend{Kind: cfg.Secrets.Backend, Dir: cfg.Secrets.Dir, Project: cfg.Secrets.Project}, opts.Clock)
		if err != nil {
			return nil, err
		}
		store = s
		app.close = append(app.close, closeFn)
	}
	host, _ := os.Hostname()
	mcfg := tokens.Config{
		FleetSecret:        cfg.FleetTokensSecret,
		ClientIDSecret:     cfg.ClientIDSecret,
		ClientSecretSecret: cfg.ClientSecretSecret,
		LegacySecret:       cfg.LegacyRefreshTokenSecret,
		RefreshBefore:      cfg.TokenRefreshBefore,
		KeepVersions:       cfg.TokenKeepVersions,
		Holder:             fmt.Sprintf("worker-%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()),
	}
	if opts.ManagerConfig != nil {
		opts.ManagerConfig(&mcfg)
	}
	exchanger := &tokens.Exchanger{TokenURL: cfg.TeslaAuthURL, HTTPClient: opts.HTTPClient}
	app.Tokens = tokens.New(store, exchanger, opts.Clock, opts.Logger.Named("tokens"), mcfg)

	cycle, closeState, err := buildCycle(ctx, cfg, opts, store, app.Tokens, mcfg.Holder)
	if err != nil {
		_ = app.Close()
		return nil, err
	}
	app.Cycle = cycle
	app.close = append(app.close, closeState)

	policy, err := cfg.AuthPolicy()
	if err != nil {
		_ = app.Close()
		return nil, err
	}
	app.Handler = NewHandler(Deps{
		Tokens: app.Tokens, Cycle: cycle, Auth: policy, Logger: opts.Logger,
		ProjectID: cfg.Secrets.Project, Version: opts.Version,
	})
	return app, nil
}

func buildCycle(ctx context.Context, cfg Config, opts Options, store secrets.Store, tm *tokens.Manager, holder string) (*charging.Cycle, func() error, error) {
	c := cfg.Charging
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return nil, nil, fmt.Errorf("TIMEZONE: %w", err)
	}
	tariff, err := charging.ParseTariff(c.TariffWindows, c.TariffWindowsWeekend, loc)
	if err != nil {
		return nil, nil, err
	}
	if tariff, err = tariff.WithHolidays(c.TariffHolidays); err != nil {
		return nil, nil, err
	}
	readyBy, err := charging.ParseClockTime("READY_BY", c.ReadyBy)
	if err != nil {
		return nil, nil, err
	}
	var planner charging.Planner = charging.NewBuiltinPlanner(tariff)
	if c.PlannerURL != "" {
		key, err := store.Latest(ctx, c.PlannerAPIKeySecret)
		if err != nil {
			return nil, nil, fmt.Errorf("PLANNER_API_KEY_SECRET %s: %w", c.PlannerAPIKeySecret, err)
		}
		ext, err := charging.NewExternalPlanner(charging.ExternalPlannerConfig{
			URL: c.PlannerURL, APIKey: string(key.Payload), Tariff: tariff, Clock: opts.Clock,
			DailyQuota: c.PlannerDailyQuota, HTTPClient: opts.HTTPClient,
		})
		if err != nil {
			return nil, nil, err
		}
		planner = charging.FallbackPlanner{Primary: ext, Fallback: planner}
	}
	stateStore := opts.State
	closeState := func() error { return nil }
	if stateStore == nil {
		s, closeFn, err := state.Open(ctx, state.Backend{Kind: c.State.Backend, Dir: c.State.Dir, Bucket: c.State.Bucket})
		if err != nil {
			return nil, nil, err
		}
		stateStore, closeState = s, closeFn
	}
	client := fleet.New(cfg.TeslaFleetAPIURL, tm,
		fleet.WithCommandURL(cfg.TeslaCommandURL), fleet.WithHTTPClient(opts.HTTPClient), fleet.WithClock(opts.Clock))
	ccfg := charging.CycleConfig{
		Home:        charging.LatLon{Lat: c.Home.Lat, Lon: c.Home.Lon},
		HomeRadiusM: c.Home.RadiusM,
		Location:    loc,
		Charge: charging.ChargeSettings{
			TargetPercent: c.ChargeTargetPercent, FloorPercent: c.ChargeFloorPercent,
			BatteryKWh: c.BatteryKWh, ChargerKW: c.ChargerKW, Efficiency: c.ChargeEfficiency, ReadyBy: readyBy,
		},
		CommandSpacing: c.CommandSpacing,
	}
	if c.CommandSpacing == 0 {
		ccfg.CommandSpacing = -1 // explicit zero: no pause
	}
	if opts.CycleConfig != nil {
		opts.CycleConfig(&ccfg)
	}
	cycle, err := charging.NewCycle(FleetVehicle{Client: client}, planner, PlanStore{Store: stateStore, Clock: opts.Clock, Holder: holder}, opts.Clock, ccfg)
	if err != nil {
		_ = closeState()
		return nil, nil, err
	}
	return cycle, closeState, nil
}
