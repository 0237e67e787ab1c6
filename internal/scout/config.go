package scout

import (
	"context"
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

	Secrets            envcfg.Secrets
	FleetTokensSecret  string        `env:"FLEET_TOKENS_SECRET, default=fleet-tokens"`
	TokenRefreshBefore time.Duration `env:"TOKEN_REFRESH_BEFORE, default=30m"`

	TeslaFleetAPIURL string   `env:"TESLA_FLEET_API_URL, default=https://fleet-api.prd.eu.vn.cloud.tesla.com"`
	VehicleVINs      []string `env:"VEHICLE_VINS"`

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

// LoadConfig reads and validates the configuration; errors name the variable.
func LoadConfig(ctx context.Context, lookup envconfig.Lookuper) (Config, error) {
	var c Config
	if err := envcfg.Load(ctx, lookup, &c); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

var vinPattern = regexp.MustCompile(`^[A-HJ-NPR-Z0-9]{17}$`)

// Validate checks values that parse but make no sense.
func (c *Config) Validate() error {
	if _, err := logging.ParseFormat(c.LogFormat); err != nil {
		return err
	}
	for _, check := range []func() error{c.Secrets.Validate, c.State.Validate, c.Home.Validate, c.IDToken.Validate} {
		if err := check(); err != nil {
			return err
		}
	}
	for name, v := range map[string]*string{"TESLA_FLEET_API_URL": &c.TeslaFleetAPIURL, "WORKER_URL": &c.WorkerURL} {
		if err := envcfg.CheckURL(name, *v); err != nil {
			return err
		}
		*v = strings.TrimRight(*v, "/")
	}
	for i, vin := range c.VehicleVINs {
		vin = strings.ToUpper(strings.TrimSpace(vin))
		if !vinPattern.MatchString(vin) {
			return fmt.Errorf("VEHICLE_VINS: %q is not a 17-character VIN", vin)
		}
		c.VehicleVINs[i] = vin
	}
	switch {
	case c.TokenRefreshBefore <= 0 || c.TokenRefreshBefore >= 8*time.Hour:
		return fmt.Errorf("TOKEN_REFRESH_BEFORE: %s must be between 0 and 8h", c.TokenRefreshBefore)
	case c.PendingTriggerTTL <= 0:
		return fmt.Errorf("PENDING_TRIGGER_TTL: must be positive")
	case c.TickTimeout < 10*time.Second:
		return fmt.Errorf("TICK_TIMEOUT: %s is too short (at least 10s)", c.TickTimeout)
	}
	if _, err := c.WorkerCallPolicy(); err != nil {
		return err
	}
	_, err := c.TickPolicy()
	return err
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
