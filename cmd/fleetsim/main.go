// Command fleetsim runs the Tesla simulator: the OAuth token endpoint with
// Tesla's refresh-token rotation, the Fleet API with sleeping cars, the
// signing proxy's charge-schedule commands, the cars' side of the Vehicle
// Command Protocol (POST /api/1/vehicles/{vin}/signed_command, fleet_status),
// and a /sim/ admin API to drive it.
//
//	go run ./cmd/fleetsim -manual-clock -cars 5YJ3E7EB0KF000001@52.2297,21.0122
//
// By default there are two cars in Warsaw: a Model 3 (5YJ3E7EB0KF000001)
// that, like every Model 3/Y, takes only signed commands from paired keys
// and answers REST commands 403, and a legacy 2018 Model S
// (5YJSA1E2XJF000002) that takes REST commands and answers signed_command
// 422. In -cars a VIN may carry a command-signing mode after a colon:
// VIN:legacy (or VIN:off) takes REST only, VIN:allowed takes both,
// VIN:hardlocked needs signing and answers REST commands 200
// {"result":false,"reason":"unsigned_cmds_hardlocked"}, VIN:required is the
// default. Example: -cars 5YJ3E7EB0KF000001@52.2,21.0,5YJSA1E2XJF000002:legacy@52.2,21.0
//
// -app-key FILE names the app's public key (PEM "PUBLIC KEY", hex or raw
// point) that fleet_status checks; -pair-app-key also pairs it with every
// car at start, as if the owner had approved the pairing link. Keys are
// otherwise paired through POST /sim/cars/{vin}/keys, or through
// POST /sim/pair/{domain}, what approving https://tesla.com/_ak/<domain> does.
//
// Partner registration: -require-registration makes every user call answer
// 412 until POST /api/1/partner_accounts (with a client_credentials partner
// token) registered a domain; the key is fetched from https://<domain>, or
// from -domain-url DOMAIN=URL (a local server). -partner-audience names
// another simulator's URL (another region) the token endpoint may issue
// partner tokens for.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
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

// defaultCars: a Model 3 that needs signed commands and a legacy 2018
// Model S that takes REST commands, both at home in Warsaw.
const defaultCars = "5YJ3E7EB0KF000001@52.2297,21.0122,5YJSA1E2XJF000002:legacy@52.2297,21.0122"

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
	cars := fs.String("cars", env.str("FLEETSIM_CARS", defaultCars), "cars as VIN[:mode]@lat,lon[,…]; mode required (default), legacy/off, allowed or hardlocked (env FLEETSIM_CARS)")
	appKeyFile := fs.String("app-key", env.str("FLEETSIM_APP_KEY", ""), "file with the app's public key (PEM, hex or raw point) for fleet_status (env FLEETSIM_APP_KEY)")
	pairAppKey := fs.Bool("pair-app-key", env.boolean("FLEETSIM_PAIR_APP_KEY"), "pair the -app-key with every car at start (env FLEETSIM_PAIR_APP_KEY)")
	region := fs.String("region", env.str("FLEETSIM_REGION", fleetsim.DefaultRegion), "account region: EU, NA or CN (env FLEETSIM_REGION)")
	clientID := fs.String("client-id", env.str("FLEETSIM_CLIENT_ID", fleetsim.DefaultClientID), "OAuth client id (env FLEETSIM_CLIENT_ID)")
	clientSecret := fs.String("client-secret", env.str("FLEETSIM_CLIENT_SECRET", fleetsim.DefaultClientSecret), "OAuth client secret (env FLEETSIM_CLIENT_SECRET)")
	requireReg := fs.Bool("require-registration", env.boolean("FLEETSIM_REQUIRE_REGISTRATION"), "answer every user call 412 until the app registered a domain with POST /api/1/partner_accounts (env FLEETSIM_REQUIRE_REGISTRATION)")
	domainURLs := fs.String("domain-url", env.str("FLEETSIM_DOMAIN_URL", ""), "where partner domains' public keys are fetched: DOMAIN=URL[,DOMAIN=URL…] or a bare URL for every domain; default https://<domain> (env FLEETSIM_DOMAIN_URL)")
	audiences := fs.String("partner-audience", env.str("FLEETSIM_PARTNER_AUDIENCE", ""), "more Fleet API base URLs the client_credentials grant accepts as audience, comma-separated (env FLEETSIM_PARTNER_AUDIENCE)")
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

	domainURL, err := parseDomainURLs(*domainURLs)
	if err != nil {
		return fmt.Errorf("-domain-url: %w", err)
	}
	var partnerAudiences []string
	for _, a := range strings.Split(*audiences, ",") {
		if a = strings.TrimSpace(a); a != "" {
			partnerAudiences = append(partnerAudiences, a)
		}
	}

	var appKey []byte
	if *appKeyFile != "" {
		data, err := os.ReadFile(*appKeyFile)
		if err != nil {
			return fmt.Errorf("-app-key: %w", err)
		}
		if appKey, err = fleetsim.ParsePublicKey(data); err != nil {
			return fmt.Errorf("-app-key %s: %w", *appKeyFile, err)
		}
	} else if *pairAppKey {
		return errors.New("-pair-app-key needs -app-key")
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
		AppPublicKey:         appKey,
		RequireRegistration:  *requireReg,
		DomainBaseURL:        domainURL,
		PartnerAudiences:     partnerAudiences,
		Logger:               logger,
	})
	for _, c := range carList {
		sim.AddCar(c)
		if *pairAppKey {
			if err := sim.PairKey(c.VIN, appKey); err != nil {
				return err
			}
		}
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

// parseCars reads "VIN[:mode]@lat,lon,VIN[:mode]@lat,lon" (";" also
// separates cars; a bare VIN is parked in Warsaw). Every car starts online
// and unplugged. mode is the car's command signing: required (the
// default), legacy or off (REST commands only), allowed (both), or
// hardlocked (required, and REST commands answer unsigned_cmds_hardlocked).
func parseCars(spec string) ([]fleetsim.CarState, error) {
	fields := strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == ';' })
	var out []fleetsim.CarState
	for i := 0; i < len(fields); i++ {
		id, latText, hasPos := strings.Cut(strings.TrimSpace(fields[i]), "@")
		vin, mode, hasMode := strings.Cut(id, ":")
		if vin == "" {
			return nil, fmt.Errorf("empty VIN in %q", spec)
		}
		c := fleetsim.CarState{VIN: vin, State: fleetsim.StateOnline, Latitude: 52.2297, Longitude: 21.0122, BatteryLevel: 60}
		if hasMode {
			switch strings.ToLower(mode) {
			case "required":
				c.CommandSigning = fleetsim.CommandSigningRequired
			case "legacy", "off":
				c.CommandSigning = fleetsim.CommandSigningOff
			case "allowed":
				c.CommandSigning = fleetsim.CommandSigningAllowed
			case "hardlocked":
				c.CommandSigning, c.UnsignedHardlocked = fleetsim.CommandSigningRequired, true
			default:
				return nil, fmt.Errorf("%s: unknown mode %q (want required, legacy, off, allowed or hardlocked)", vin, mode)
			}
		}
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

// parseDomainURLs reads -domain-url: "DOMAIN=URL,DOMAIN=URL" maps each
// domain, a bare "URL" serves every domain; nil when spec is empty.
func parseDomainURLs(spec string) (func(string) string, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	byDomain := map[string]string{}
	all := ""
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		domain, u, mapped := strings.Cut(item, "=")
		if !mapped {
			domain, u = "", item
		}
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, fmt.Errorf("%q: want DOMAIN=http(s)://host[:port] or a bare http(s) URL", item)
		}
		if !mapped {
			all = strings.TrimRight(u, "/")
			continue
		}
		byDomain[domain] = strings.TrimRight(u, "/")
	}
	return func(domain string) string {
		if u, ok := byDomain[domain]; ok {
			return u
		}
		return all
	}, nil
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
