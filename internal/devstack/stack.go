// Package devstack runs the whole system on loopback: the Tesla simulator,
// the worker and the scout, each a real HTTP server, sharing one clock and
// file-backed stores. `make run` plays a scripted day on it; the end-to-end
// tests, the fault suite and the benchmarks start it too.
package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/server"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/tokens"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

// Home is where the simulated car lives (Warsaw's Palace of Culture).
var Home = struct{ Lat, Lon float64 }{52.231838, 21.005995}

// VIN is the simulated car's.
const VIN = "5YJ3E7EB0KF000001"

// AuthToken is the bearer the local scout uses to call the worker, and the
// one that calls the scout's /tick.
const AuthToken = "local-devstack-shared-token-0001"

// Options configure Start. Zero values take the defaults.
type Options struct {
	Dir    string        // root of the file stores; default a temp dir
	Clock  *clock.Manual // shared by every part; default: now, manual
	Logger *zap.Logger   // the services' logs; default none
	Sim    fleetsim.Options
	// Env overrides the worker's and scout's environment (both get it).
	Env map[string]string
	// Secrets replaces the file secret store (e.g. with a fault-injecting one).
	Secrets secrets.Store
	// NoCar skips adding the default car.
	NoCar bool
	// NoKey leaves the secret store without a command key (and so every car
	// unpaired): what a new owner has before `fleetctl keygen`.
	NoKey bool
	// LoginScope, when set, is what the seeded login approved (space
	// separated) instead of every scope.
	LoginScope string
}

// Stack is a running system.
type Stack struct {
	Clock   *clock.Manual
	Sim     *fleetsim.Sim
	Secrets secrets.Store
	Worker  *worker.App
	// WorkerConfig is what the worker was built with (its tariff prices
	// the story's energy).
	WorkerConfig worker.Config
	Scout        *scout.App
	SimURL       string
	WorkerURL    string
	ScoutURL     string
	Dir          string
	// Key is the owner's command key, stored in tesla-private-key and
	// paired with the default car (nil with Options.NoKey).
	Key *carcmd.PrivateKey

	http    *http.Client
	gate    *gate
	stops   []func() error
	stopped sync.Once
	// loginScope: Options.LoginScope.
	loginScope string
}

// Start builds and serves everything. Call Close when done.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	if opts.Clock == nil {
		opts.Clock = clock.NewManual(time.Now().UTC().Truncate(time.Second))
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "devstack-")
		if err != nil {
			return nil, err
		}
		opts.Dir = d
	}
	st := &Stack{Clock: opts.Clock, Dir: opts.Dir, http: &http.Client{Timeout: 5 * time.Minute}, loginScope: opts.LoginScope}

	simOpts := opts.Sim
	simOpts.Clock = opts.Clock
	if simOpts.Logger == nil {
		simOpts.Logger = opts.Logger.Named("fleetsim")
	}
	st.Sim = fleetsim.New(simOpts)
	simURL, err := st.Sim.Start("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	st.SimURL = simURL
	st.stops = append(st.stops, st.Sim.Close)
	if !opts.NoCar {
		st.Sim.AddCar(fleetsim.CarState{VIN: VIN, State: fleetsim.StateOnline, Latitude: Home.Lat, Longitude: Home.Lon,
			BatteryLevel: 64, ChargingState: fleetsim.ChargingDisconnected, ConnChargeCable: fleetsim.CableUnplugged,
			ChargeLimitSOC: 80, DisplayName: "Simulated Model 3"})
	}

	st.Secrets = opts.Secrets
	if st.Secrets == nil {
		f, err := secrets.NewFile(filepath.Join(opts.Dir, "secrets"), opts.Clock)
		if err != nil {
			_ = st.Close()
			return nil, err
		}
		st.Secrets = f
	}

	if !opts.NoKey {
		if st.Key, err = ensureKey(ctx, st.Secrets); err != nil {
			_ = st.Close()
			return nil, err
		}
		if !opts.NoCar {
			if err := st.Sim.PairKey(VIN, st.Key.Public); err != nil {
				_ = st.Close()
				return nil, err
			}
		}
	}

	env := map[string]string{
		"SECRETS_BACKEND":      "file",
		"SECRETS_DIR":          filepath.Join(opts.Dir, "secrets"),
		"STATE_BACKEND":        "file",
		"TESLA_AUTH_URL":       simURL + "/oauth2/v3/token",
		"TESLA_FLEET_API_URL":  simURL,
		"WORKER_AUTH":          "token",
		"WORKER_AUTH_TOKEN":    AuthToken,
		"SCOUT_AUTH":           "token",
		"SCOUT_AUTH_TOKEN":     AuthToken,
		"HOME_LAT":             strconv.FormatFloat(Home.Lat, 'f', -1, 64),
		"HOME_LON":             strconv.FormatFloat(Home.Lon, 'f', -1, 64),
		"COMMAND_SPACING":      "0s",
		"LOG_FORMAT":           "console",
		"TOKEN_REFRESH_BEFORE": "30m",
	}
	for k, v := range opts.Env {
		env[k] = v
	}

	if err := st.startWorker(ctx, opts, env); err != nil {
		_ = st.Close()
		return nil, err
	}
	if err := st.startScout(ctx, opts, env); err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}

// startWorker builds the worker and serves it on loopback.
func (st *Stack) startWorker(ctx context.Context, opts Options, env map[string]string) error {
	wenv := clone(env)
	wenv["STATE_DIR"] = filepath.Join(opts.Dir, "worker-state")
	wcfg, err := worker.LoadConfig(ctx, envconfig.MapLookuper(wenv))
	if err != nil {
		return err
	}
	st.WorkerConfig = wcfg
	st.Worker, err = worker.Build(ctx, wcfg, worker.Options{
		Clock: opts.Clock, Logger: opts.Logger.Named("worker"), Secrets: st.Secrets, Version: "devstack",
		ManagerConfig: func(c *tokens.Config) { c.RetryBase = 10 * time.Millisecond; c.Holder = "devstack-worker" },
	})
	if err != nil {
		return err
	}
	st.stops = append(st.stops, st.Worker.Close)
	if st.WorkerURL, err = st.serve(st.Worker.Handler, opts.Logger.Named("worker")); err != nil {
		return err
	}
	return nil
}

// startScout builds the scout, calling the worker through a gate tests can
// close, and serves it on loopback.
func (st *Stack) startScout(ctx context.Context, opts Options, env map[string]string) error {
	var err error
	if st.gate, err = newGate(st.WorkerURL); err != nil {
		return err
	}
	gateURL, err := st.serve(st.gate, zap.NewNop())
	if err != nil {
		return err
	}
	senv := clone(env)
	senv["WORKER_URL"] = gateURL
	senv["STATE_DIR"] = filepath.Join(opts.Dir, "scout-state")
	scfg, err := scout.LoadConfig(ctx, envconfig.MapLookuper(senv))
	if err != nil {
		return err
	}
	// One bucket in production; here the worker's state directory, which
	// the scout reads the charge needs from (file stores are safe to share).
	needsStore, err := state.NewFile(filepath.Join(opts.Dir, "worker-state"))
	if err != nil {
		return err
	}
	st.Scout, err = scout.Build(ctx, scfg, scout.Options{Clock: opts.Clock, Logger: opts.Logger.Named("scout"), Secrets: st.Secrets,
		Needs: needsStore, Version: "devstack"})
	if err != nil {
		return err
	}
	st.stops = append(st.stops, st.Scout.Close)
	if st.ScoutURL, err = st.serve(st.Scout.Handler, opts.Logger.Named("scout")); err != nil {
		return err
	}
	return nil
}

// KeySecret is the secret the worker reads its command key from (the default
// of TESLA_PRIVATE_KEY_SECRET).
const KeySecret = "tesla-private-key"

// ensureKey returns the stored command key, generating one on first use, as
// `fleetctl keygen` would; the private half goes only into the store.
func ensureKey(ctx context.Context, store secrets.Store) (*carcmd.PrivateKey, error) {
	if v, err := store.Latest(ctx, KeySecret); err == nil {
		k, err := carcmd.ParsePrivateKey(v.Payload)
		if err != nil {
			return nil, fmt.Errorf("stored %s: %w", KeySecret, err)
		}
		return k, nil
	} else if !errors.Is(err, secrets.ErrNotFound) {
		return nil, err
	}
	k, pemBytes, err := carcmd.GenerateKey()
	if err != nil {
		return nil, err
	}
	if _, err := store.Add(ctx, KeySecret, pemBytes); err != nil {
		return nil, fmt.Errorf("store %s: %w", KeySecret, err)
	}
	return k, nil
}

// AddCar adds a simulated car and, unless unpaired, pairs the owner's key
// with it (what tapping the pairing link in the Tesla app does).
func (s *Stack) AddCar(c fleetsim.CarState, unpaired bool) error {
	s.Sim.AddCar(c)
	if unpaired || s.Key == nil {
		return nil
	}
	return s.Sim.PairKey(c.VIN, s.Key.Public)
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// serve runs h on a loopback port with the production server lifecycle.
func (s *Stack) serve(h http.Handler, log *zap.Logger) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := server.New(ln, h, log, server.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	s.stops = append(s.stops, func() error { cancel(); return <-done })
	return "http://" + ln.Addr().String(), nil
}

// Close stops every server gracefully, newest first.
func (s *Stack) Close() error {
	var errs []error
	s.stopped.Do(func() {
		for i := len(s.stops) - 1; i >= 0; i-- {
			errs = append(errs, s.stops[i]())
		}
	})
	return errors.Join(errs...)
}

// SeedTokens stores the app's client registration and a fresh token pair
// from a simulated browser login, as `fleetctl login` would.
func (s *Stack) SeedTokens(ctx context.Context) error {
	for name, value := range map[string]string{"tesla-client-id": fleetsim.DefaultClientID, "tesla-client-secret": fleetsim.DefaultClientSecret} {
		if _, err := s.Secrets.Add(ctx, name, []byte(value)); err != nil {
			return fmt.Errorf("seed %s: %w", name, err)
		}
	}
	p := s.Sim.Login()
	if s.loginScope != "" {
		p = s.Sim.LoginWithScope(s.loginScope)
	}
	now := s.Clock.Now()
	payload, err := tokens.Pair{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken,
		ExpiresAt: now.Add(time.Duration(p.ExpiresIn) * time.Second), RefreshTokenCreatedAt: now,
		UpdatedAt: now, Source: "login", TokenType: "Bearer", Scope: p.Scope}.Marshal()
	if err != nil {
		return err
	}
	_, err = s.Secrets.Add(ctx, "fleet-tokens", payload)
	return err
}

// Tick calls the scout's POST /tick the way Cloud Scheduler does.
func (s *Stack) Tick(ctx context.Context) (TickResult, error) {
	var out TickResult
	status, body, err := s.post(ctx, s.ScoutURL+"/tick", nil)
	if err != nil {
		return out, err
	}
	out.Status = status
	out.Raw = body
	_ = json.Unmarshal(body, &out.Body)
	return out, nil
}

// TickResult is the scout's answer.
type TickResult struct {
	Status int
	Body   scout.TickResponse
	Raw    []byte
}

// RefreshTokens calls the worker's POST /refresh-tokens.
func (s *Stack) RefreshTokens(ctx context.Context, force bool) (int, []byte, error) {
	return s.post(ctx, s.WorkerURL+"/refresh-tokens", map[string]any{"reason": "devstack", "force": force})
}

func (s *Stack) post(ctx context.Context, url string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+AuthToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// StoredPair reads the current fleet-tokens pair (for checks).
func (s *Stack) StoredPair(ctx context.Context) (tokens.Pair, string, error) {
	v, err := s.Secrets.Latest(ctx, "fleet-tokens")
	if err != nil {
		return tokens.Pair{}, "", err
	}
	p, err := tokens.ParsePair(v.Payload)
	return p, v.ID, err
}

// SetCar changes the simulated car.
func (s *Stack) SetCar(vin string, f func(*fleetsim.CarState)) error { return s.Sim.SetCar(vin, f) }

// RunCycle calls the worker's POST /run-cycle for vin, as the scout does.
func (s *Stack) RunCycle(ctx context.Context, vin string) (int, []byte, error) {
	return s.post(ctx, s.WorkerURL+"/run-cycle", map[string]any{"vin": vin, "reason": "devstack"})
}
