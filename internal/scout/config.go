package scout

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/offpeak-charging/offpeak/internal/envcfg"
	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/svcauth"
)

// Config is the scout's whole configuration, read from the environment.
type Config struct {
	Port      string `env:"PORT, default=8080"`
	LogFormat string `env:"LOG_FORMAT, default=json"`

	Secrets envcfg.Secrets
	// Tesla: TESLA_FLEET_API_URL, FLEET_TOKENS_SECRET (read only),
	// TOKEN_REFRESH_BEFORE, as the worker reads them. Embedded, so
	// cfg.TeslaFleetAPIURL and the rest read as the variables' names.
	envcfg.Tesla

	// VehicleVINs are the cars to watch (every car of the account if
	// none); Normalize upper-cases them and drops the spaces around them.
	VehicleVINs []string `env:"VEHICLE_VINS"`

	Home envcfg.Home

	State envcfg.State

	// How the scout calls the worker.
	WorkerURL       string `env:"WORKER_URL, required"`
	WorkerAuth      string `env:"WORKER_AUTH, default=iam"`
	WorkerAuthToken string `env:"WORKER_AUTH_TOKEN"`

	// Who may call the scout's /tick (Cloud Scheduler's service account).
	ScoutAuth            string   `env:"SCOUT_AUTH, default=iam"`
	ScoutAllowedInvokers []string `env:"SCOUT_ALLOWED_INVOKERS"`
	ScoutAuthToken       string   `env:"SCOUT_AUTH_TOKEN"`
	// IDToken: SERVICE_URL (the scout's own URL, the Scheduler job's
	// audience), GOOGLE_CERTS_URL, K_SERVICE.
	IDToken envcfg.IDToken

	PendingTriggerTTL time.Duration `env:"PENDING_TRIGGER_TTL, default=6h"`
	TickTimeout       time.Duration `env:"TICK_TIMEOUT, default=240s"`
}

// LoadConfig reads and validates the configuration, reporting every
// problem with the variable it names, and normalizes it (Normalize).
func LoadConfig(ctx context.Context, lookup envconfig.Lookuper) (Config, error) {
	var c Config
	if err := envcfg.Load(ctx, lookup, &c); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	c.Normalize()
	return c, nil
}

var vinPattern = regexp.MustCompile(`^[A-HJ-NPR-Z0-9]{17}$`)

// vin is a VIN as VEHICLE_VINS may give it, as the Fleet API spells it.
func vin(v string) string { return strings.ToUpper(strings.TrimSpace(v)) }

// Validate checks values that parse but make no sense. It reports every
// problem and changes nothing.
func (c *Config) Validate() error {
	var problems []error
	if _, err := logging.ParseFormat(c.LogFormat); err != nil {
		problems = append(problems, err)
	}
	problems = append(problems, c.Secrets.Validate(), c.State.Validate(), c.Home.Validate(), c.IDToken.Validate(), c.Tesla.Validate(),
		envcfg.CheckURL("WORKER_URL", c.WorkerURL))
	for _, v := range c.VehicleVINs {
		if !vinPattern.MatchString(vin(v)) {
			problems = append(problems, envcfg.Errorf("VEHICLE_VINS", "%q is not a 17-character VIN", vin(v)))
		}
	}
	if c.PendingTriggerTTL <= 0 {
		problems = append(problems, envcfg.Errorf("PENDING_TRIGGER_TTL", "must be positive"))
	}
	if c.TickTimeout < 10*time.Second {
		problems = append(problems, envcfg.Errorf("TICK_TIMEOUT", "%s is too short (at least 10s)", c.TickTimeout))
	}
	if _, err := c.WorkerCallPolicy(); err != nil {
		problems = append(problems, err)
	}
	if _, err := c.TickPolicy(); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}

// Normalize is the one place the loaded values are tidied: the URLs lose
// a trailing slash, the VINs are upper-cased and trimmed.
func (c *Config) Normalize() {
	c.Tesla.Normalize()
	c.IDToken.Normalize()
	c.WorkerURL = envcfg.BaseURL(c.WorkerURL)
	if c.VehicleVINs != nil {
		vins := make([]string, len(c.VehicleVINs))
		for i, v := range c.VehicleVINs {
			vins[i] = vin(v)
		}
		c.VehicleVINs = vins
	}
}

// WorkerCallPolicy is how the scout authenticates to the worker.
func (c Config) WorkerCallPolicy() (svcauth.Policy, error) {
	mode, err := svcauth.ParseMode("WORKER_AUTH", c.WorkerAuth)
	if err != nil {
		return svcauth.Policy{}, err
	}
	if mode == svcauth.ModeToken && len(c.WorkerAuthToken) < 16 {
		return svcauth.Policy{}, fmt.Errorf("WORKER_AUTH_TOKEN: required when WORKER_AUTH=token, at least 16 characters")
	}
	return svcauth.Policy{Mode: mode, Token: c.WorkerAuthToken}, nil
}

// TickPolicy says who may call /tick.
func (c Config) TickPolicy() (svcauth.Policy, error) {
	mode, err := svcauth.ParseMode("SCOUT_AUTH", c.ScoutAuth)
	if err != nil {
		return svcauth.Policy{}, err
	}
	p := svcauth.Policy{Mode: mode, AllowedInvokers: c.ScoutAllowedInvokers, Token: c.ScoutAuthToken}
	if mode == svcauth.ModeIAM {
		p.Audiences = c.IDToken.ServiceURL
		p.Keys = svcauth.NewGoogleKeys(c.IDToken.GoogleCertsURL, nil)
		p.OnCloudRun = c.IDToken.OnCloudRun()
	}
	return p, p.Validate("SCOUT_ALLOWED_INVOKERS", "SCOUT_AUTH_TOKEN", "SERVICE_URL")
}
