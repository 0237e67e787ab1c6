// Command fleetsim runs the Tesla simulator: the OAuth token endpoint with
// Tesla's refresh-token rotation, the Fleet API with sleeping cars, the
// signing proxy's charge-schedule commands, and a /sim/ admin API to drive it.
//
//	go run ./cmd/fleetsim -manual-clock -cars 5YJ3E7EB0KF000001@52.2297,21.0122
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

// defaultCars is one car at home in Warsaw.
const defaultCars = "5YJ3E7EB0KF000001@52.2297,21.0122"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

// realMain parses flags (defaults from FLEETSIM_* variables), starts the
// simulator and serves until ctx ends.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fleetsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := envDefaults{}
	addr := fs.String("addr", env.str("FLEETSIM_ADDR", "127.0.0.1:8081"), "listen address (env FLEETSIM_ADDR)")
	expiresIn := env.duration(fs, "expires-in", "FLEETSIM_EXPIRES_IN", fleetsim.DefaultAccessTokenTTL, "access token lifetime, e.g. 8h or 28800")
	sleepAfter := env.duration(fs, "sleep-after", "FLEETSIM_SLEEP_AFTER", fleetsim.DefaultSleepAfter, "idle time before an online car falls asleep")
	wakeDelay := env.duration(fs, "wake-delay", "FLEETSIM_WAKE_DELAY", fleetsim.DefaultWakeDelay, "time from wake_up to online")
	grace := env.duration(fs, "grace", "FLEETSIM_GRACE", fleetsim.DefaultGrace, "how long the last used refresh token stays accepted")
	manual := fs.Bool("manual-clock", env.boolean("FLEETSIM_MANUAL_CLOCK"), "run on a clock that only moves through POST /sim/clock (env FLEETSIM_MANUAL_CLOCK)")
	revoke := fs.Bool("revoke-access-on-rotate", env.boolean("FLEETSIM_REVOKE_ACCESS_ON_ROTATE"), "a refresh invalidates older access tokens (env FLEETSIM_REVOKE_ACCESS_ON_ROTATE)")
	cars := fs.String("cars", env.str("FLEETSIM_CARS", defaultCars), "cars as VIN@lat,lon[,VIN@lat,lon...] (env FLEETSIM_CARS)")
	region := fs.String("region", env.str("FLEETSIM_REGION", fleetsim.DefaultRegion), "account region: EU, NA or CN (env FLEETSIM_REGION)")
	clientID := fs.String("client-id", env.str("FLEETSIM_CLIENT_ID", fleetsim.DefaultClientID), "OAuth client id (env FLEETSIM_CLIENT_ID)")
	clientSecret := fs.String("client-secret", env.str("FLEETSIM_CLIENT_SECRET", fleetsim.DefaultClientSecret), "OAuth client secret (env FLEETSIM_CLIENT_SECRET)")
	verbose := fs.Bool("v", env.boolean("FLEETSIM_VERBOSE"), "log every request (env FLEETSIM_VERBOSE)")
	if err := errors.Join(env.errs...); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	carList, err := parseCars(*cars)
	if err != nil {
		return fmt.Errorf("-cars: %w", err)
	}

	logger := newLogger(stderr, *verbose)
	defer func() { _ = logger.Sync() }()

	var clk clock.Clock = clock.Real{}
	if *manual {
		clk = clock.NewManual(time.Now())
	}
	sim := fleetsim.New(fleetsim.Options{
		ClientID:             *clientID,
		ClientSecret:         *clientSecret,
		Clock:                clk,
		AccessTokenTTL:       time.Duration(*expiresIn),
		Grace:                time.Duration(*grace),
		Region:               *region,
		SleepAfter:           time.Duration(*sleepAfter),
		WakeDelay:            time.Duration(*wakeDelay),
		RevokeAccessOnRotate: *revoke,
		Logger:               logger,
	})
	for _, c := range carList {
		sim.AddCar(c)
	}
	base, err := sim.Start(*addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, base)
	logger.Info("fleetsim started", zap.String("url", base), zap.Int("cars", len(carList)), zap.Bool("manual_clock", *manual))

	<-ctx.Done()
	logger.Info("fleetsim stopping")
	return sim.Close()
}

// parseCars reads "VIN@lat,lon,VIN@lat,lon" (";" also separates cars; a bare
// VIN is parked in Warsaw). Every car starts online and unplugged.
func parseCars(spec string) ([]fleetsim.CarState, error) {
	fields := strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == ';' })
	var out []fleetsim.CarState
	for i := 0; i < len(fields); i++ {
		vin, latText, hasPos := strings.Cut(strings.TrimSpace(fields[i]), "@")
		if vin == "" {
			return nil, fmt.Errorf("empty VIN in %q", spec)
		}
		c := fleetsim.CarState{VIN: vin, State: fleetsim.StateOnline, Latitude: 52.2297, Longitude: 21.0122, BatteryLevel: 60}
		if hasPos {
			if i+1 >= len(fields) {
				return nil, fmt.Errorf("%s: want VIN@lat,lon", vin)
			}
			lat, err1 := strconv.ParseFloat(strings.TrimSpace(latText), 64)
			lon, err2 := strconv.ParseFloat(strings.TrimSpace(fields[i+1]), 64)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("%s: position: %w", vin, err)
			}
			c.Latitude, c.Longitude = lat, lon
			i++
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no cars")
	}
	return out, nil
}

func newLogger(w io.Writer, verbose bool) *zap.Logger {
	level := zapcore.InfoLevel
	if verbose {
		level = zapcore.DebugLevel
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), level)
	return zap.New(core)
}

// envDefaults reads flag defaults from the environment, remembering bad
// values so the start fails with the variable's name.
type envDefaults struct{ errs []error }

func (e *envDefaults) str(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envDefaults) boolean(name string) bool {
	v := os.Getenv(name)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: want true or false, got %q", name, v))
	}
	return b
}

// duration defines a duration flag that also accepts plain seconds.
func (e *envDefaults) duration(fs *flag.FlagSet, flagName, envName string, def time.Duration, usage string) *seconds {
	d := seconds(def)
	if v := os.Getenv(envName); v != "" {
		if err := d.Set(v); err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s: %w", envName, err))
		}
	}
	fs.Var(&d, flagName, usage+" (env "+envName+")")
	return &d
}

// seconds is a duration flag written as a Go duration ("8h") or as seconds ("28800").
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }

func (s *seconds) Set(v string) error {
	if n, err := strconv.Atoi(v); err == nil {
		*s = seconds(time.Duration(n) * time.Second)
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration like 15m or a number of seconds, got %q", v)
	}
	*s = seconds(d)
	return nil
}
