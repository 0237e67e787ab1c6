package worker

import (
	"context"
	"errors"
	"fmt"
	"github.com/offpeak-charging/offpeak/internal/geo"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/backends"
	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/needs"
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
	// SignerConfig adjusts the command signer (tests shorten its retry interval).
	SignerConfig func(*carcmd.SignerConfig)
}

// App is a built worker: its handler and the parts tests look at.
type App struct {
	Config   Config
	Handler  http.Handler
	Tokens   *tokens.Manager
	Cycle    *charging.Cycle
	Commands *carcmd.Router
	Needs    *needs.Book
	close    []func() error
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
		// Tesla's token endpoint, the Fleet API, the planner: no redirects.
		opts.HTTPClient = httpclient.New(20 * time.Second)
	}
	app := &App{Config: cfg}
	store := opts.Secrets
	if store == nil {
		s, closeFn, err := backends.OpenSecrets(ctx, backends.Secrets{Kind: cfg.Secrets.Backend, Dir: cfg.Secrets.Dir, Project: cfg.Secrets.Project}, opts.Clock)
		if err != nil {
			return nil, err
		}
		store = s
		app.close = append(app.close, closeFn)
		secrets.WarnIfExposed(store, func(msg string, paths []string) { opts.Logger.Warn(msg, zap.Strings("paths", paths)) })
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

	// The state store is opened here, not in buildCycle, because the
	// charge needs keep their records in it too.
	if opts.State == nil {
		st, closeFn, err := backends.OpenState(ctx, backends.State{Kind: cfg.Charging.State.Backend, Dir: cfg.Charging.State.Dir, Bucket: cfg.Charging.State.Bucket})
		if err != nil {
			_ = app.Close()
			return nil, err
		}
		opts.State = st
		app.close = append(app.close, closeFn)
	}
	book, err := buildNeeds(cfg, opts, app.Tokens)
	if err != nil {
		_ = app.Close()
		return nil, err
	}
	app.Needs = book

	cycle, commands, closeState, err := buildCycle(ctx, cfg, opts, store, app.Tokens, mcfg.Holder, book)
	if err != nil {
		_ = app.Close()
		return nil, err
	}
	app.Cycle = cycle
	app.Commands = commands
	app.close = append(app.close, closeState)

	policy, err := cfg.AuthPolicy()
	if err != nil {
		_ = app.Close()
		return nil, err
	}
	policy.Now = opts.Clock.Now
	app.Handler = NewHandler(Deps{
		Tokens: app.Tokens, Cycle: cycle, Commands: commands, Needs: app.Needs, Auth: policy, Logger: opts.Logger,
		ProjectID: cfg.Secrets.Project, Version: opts.Version,
	})
	return app, nil
}

func buildCycle(ctx context.Context, cfg Config, opts Options, store secrets.Store, tm *tokens.Manager, holder string, book charging.NeedBook) (*charging.Cycle, *carcmd.Router, func() error, error) {
	c := cfg.Charging
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("TIMEZONE: %w", err)
	}
	tariff, err := charging.ParseTariff(c.TariffWindows, c.TariffWindowsWeekend, loc)
	if err != nil {
		return nil, nil, nil, err
	}
	if tariff, err = tariff.WithHolidays(c.TariffHolidays); err != nil {
		return nil, nil, nil, err
	}
	readyBy, err := charging.ParseClockTime("READY_BY", c.ReadyBy)
	if err != nil {
		return nil, nil, nil, err
	}
	stateStore := opts.State
	closeState := func() error { return nil }
	if stateStore == nil {
		s, closeFn, err := backends.OpenState(ctx, backends.State{Kind: c.State.Backend, Dir: c.State.Dir, Bucket: c.State.Bucket})
		if err != nil {
			return nil, nil, nil, err
		}
		stateStore, closeState = s, closeFn
	}
	planner, err := buildPlanner(ctx, c, opts, store, stateStore, tariff)
	if err != nil {
		_ = closeState()
		return nil, nil, nil, err
	}
	// A 401 makes the client re-read the store (refresh if it still holds
	// the refused token) and retry once: another process may have rotated.
	client := fleet.New(cfg.TeslaFleetAPIURL, tm, fleet.WithHTTPClient(opts.HTTPClient), fleet.WithClock(opts.Clock),
		fleet.WithTokenRenewal(tm), fleet.WithUserAgent(fleet.UserAgent("worker", opts.Version)))
	commands, err := buildCommands(ctx, cfg, opts, store, stateStore, client, tm)
	if err != nil {
		_ = closeState()
		return nil, nil, nil, err
	}
	ccfg := charging.CycleConfig{
		Home:     geo.Home{Lat: c.Home.Lat, Lon: c.Home.Lon, RadiusM: c.Home.RadiusM},
		Location: loc,
		Charge: charging.ChargeSettings{
			TargetPercent: c.ChargeTargetPercent, FloorPercent: c.ChargeFloorPercent,
			BatteryKWh: c.BatteryKWh, ChargerKW: c.ChargerKW, Efficiency: c.ChargeEfficiency, ReadyBy: readyBy,
		},
		CommandSpacing: c.CommandSpacing,
		// The cheap hours stay on the car as recurring schedules, so a
		// plug-in before the next cycle waits for them (charging/standing.go).
		Standing: tariff,
		// Charge needs ("90 % by Saturday 08:00") beside the daily target.
		Needs: book, NeedTariff: tariff,
	}
	if c.CommandSpacing == 0 {
		ccfg.CommandSpacing = -1 // explicit zero: no pause
	}
	if opts.CycleConfig != nil {
		opts.CycleConfig(&ccfg)
	}
	cycle, err := charging.NewCycle(FleetVehicle{Client: client, Commands: commands}, planner, PlanStore{Store: stateStore, Clock: opts.Clock, Holder: holder}, opts.Clock, ccfg)
	if err != nil {
		_ = closeState()
		return nil, nil, nil, err
	}
	return cycle, commands, closeState, nil
}

// buildPlanner is the built-in planner, behind the external one when
// PLANNER_URL is set; the external planner's daily quota is counted in the
// state store, so a cold start does not reset it.
func buildPlanner(ctx context.Context, c ChargingConfig, opts Options, store secrets.Store, st state.Store, tariff *charging.Tariff) (charging.Planner, error) {
	builtin := charging.NewBuiltinPlanner(tariff)
	if c.PlannerURL == "" {
		return builtin, nil
	}
	key, err := store.Latest(ctx, c.PlannerAPIKeySecret)
	if err != nil {
		return nil, fmt.Errorf("PLANNER_API_KEY_SECRET %s: %w", c.PlannerAPIKeySecret, err)
	}
	ext, err := charging.NewExternalPlanner(charging.ExternalPlannerConfig{
		URL: c.PlannerURL, APIKey: string(key.Payload), Tariff: tariff, Clock: opts.Clock,
		DailyQuota: c.PlannerDailyQuota, Quota: PlannerQuota{Store: st}, HTTPClient: opts.HTTPClient,
	})
	if err != nil {
		return nil, err
	}
	return charging.FallbackPlanner{Primary: ext, Fallback: builtin}, nil
}

// buildCommands wires how commands reach the cars (TESLA_COMMAND_MODE): the
// in-process signer with the owner's key from the secret store, REST for
// the cars without the protocol, or an external signer. A missing or bad
// key does not stop the worker: /health says so, and a cycle that needs
// the key answers a named error.
func buildCommands(ctx context.Context, cfg Config, opts Options, store secrets.Store, st state.Store,
	client *fleet.Client, tm *tokens.Manager) (*carcmd.Router, error) {
	mode, err := cfg.CommandMode()
	if err != nil {
		return nil, err
	}
	log := opts.Logger.Named("commands")
	rc := carcmd.RouterConfig{Mode: mode, REST: client, Status: client, Logger: log,
		Paths: CommandStore{Store: st, Clock: opts.Clock}}
	switch mode {
	case carcmd.ModeProxy:
		rc.Proxy = fleet.New(cfg.SignerURL(), tm, fleet.WithHTTPClient(opts.HTTPClient), fleet.WithClock(opts.Clock),
			fleet.WithTokenRenewal(tm), fleet.WithUserAgent(fleet.UserAgent("worker", opts.Version)))
	case carcmd.ModeSign:
		scfg := carcmd.SignerConfig{
			Transport: client, KeySecret: cfg.PrivateKeySecret, Clock: opts.Clock, Logger: log,
			Sessions: CommandStore{Store: st, Clock: opts.Clock},
			Key: func(ctx context.Context) ([]byte, error) {
				v, err := store.Latest(ctx, cfg.PrivateKeySecret)
				if errors.Is(err, secrets.ErrNotFound) || errors.Is(err, secrets.ErrVersionUnavailable) {
					return nil, fmt.Errorf("%w: %w", carcmd.ErrNoKey, err)
				}
				if err != nil {
					return nil, err
				}
				return v.Payload, nil
			},
		}
		if opts.SignerConfig != nil {
			opts.SignerConfig(&scfg)
		}
		rc.Signer = carcmd.NewSigner(scfg)
		if err := rc.Signer.LoadKey(ctx); err != nil {
			log.Warn("no usable command key yet: cycles that must sign will fail until one is stored", zap.Error(err))
		}
	}
	return carcmd.NewRouter(rc)
}
