// Package worker is the worker service's HTTP layer: configuration, routes
// and handlers. Handlers only decode, call the token manager or the charging
// cycle, and encode; every decision lives in those domain packages.
package worker

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/envcfg"
	"github.com/offpeak-charging/offpeak/internal/logging"
	"github.com/offpeak-charging/offpeak/internal/svcauth"
)

// Config is the worker's whole configuration, read from the environment
// (Cloud Run's convention). Every field's variable is in the README's table
// and in deploy/worker.yaml where it matters in production.
type Config struct {
	Port      string `env:"PORT, default=8080"`
	LogFormat string `env:"LOG_FORMAT, default=json"`

	Secrets envcfg.Secrets

	FleetTokensSecret        string        `env:"FLEET_TOKENS_SECRET, default=fleet-tokens"`
	ClientIDSecret           string        `env:"TESLA_CLIENT_ID_SECRET, default=tesla-client-id"`
	ClientSecretSecret       string        `env:"TESLA_CLIENT_SECRET_SECRET, default=tesla-client-secret"`
	LegacyRefreshTokenSecret string        `env:"LEGACY_REFRESH_TOKEN_SECRET, default=tesla-refresh-token"`
	TokenRefreshBefore       time.Duration `env:"TOKEN_REFRESH_BEFORE, default=30m"`
	TokenKeepVersions        int           `env:"TOKEN_KEEP_VERSIONS, default=3"`

	TeslaAuthURL     string `env:"TESLA_AUTH_URL, default=https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"`
	TeslaFleetAPIURL string `env:"TESLA_FLEET_API_URL, default=https://fleet-api.prd.eu.vn.cloud.tesla.com"`
	TeslaCommandURL  string `env:"TESLA_COMMAND_URL"`
	// TeslaCommandMode chooses how commands travel (carcmd.ParseMode):
	// auto signs in the worker unless TESLA_COMMAND_URL names an external signer.
	TeslaCommandMode string `env:"TESLA_COMMAND_MODE, default=auto"`
	// PrivateKeySecret holds the owner's PEM P-256 command key; the default
	// is the Python system's secret, so its key and the cars' pairing carry over.
	PrivateKeySecret string `env:"TESLA_PRIVATE_KEY_SECRET, default=tesla-private-key"`

	WorkerAuth      string   `env:"WORKER_AUTH, default=iam"`
	AllowedInvokers []string `env:"ALLOWED_INVOKERS"`
	WorkerAuthToken string   `env:"WORKER_AUTH_TOKEN"`
	// IDToken: SERVICE_URL (the worker's own URL), GOOGLE_CERTS_URL, K_SERVICE.
	IDToken envcfg.IDToken

	Charging ChargingConfig
}

// ChargingConfig configures the charging cycle behind POST /run-cycle.
type ChargingConfig struct {
	Home                 envcfg.Home
	TariffWindows        string        `env:"TARIFF_WINDOWS, default=22:00-06:00,13:00-15:00"`
	TariffWindowsWeekend string        `env:"TARIFF_WINDOWS_WEEKEND"`
	TariffHolidays       string        `env:"TARIFF_HOLIDAYS"`
	Timezone             string        `env:"TIMEZONE, default=Europe/Warsaw"`
	ChargeTargetPercent  int           `env:"CHARGE_TARGET_PERCENT, default=80"`
	ChargeFloorPercent   int           `env:"CHARGE_FLOOR_PERCENT, default=20"` // for a car left nearly empty (see validate)
	BatteryKWh           float64       `env:"BATTERY_KWH, default=75"`
	ChargerKW            float64       `env:"CHARGER_KW, default=11"`
	ChargeEfficiency     float64       `env:"CHARGE_EFFICIENCY, default=0.9"`
	ReadyBy              string        `env:"READY_BY, default=07:00"`
	CommandSpacing       time.Duration `env:"COMMAND_SPACING, default=3s"`
	PlannerURL           string        `env:"PLANNER_URL"`
	PlannerAPIKeySecret  string        `env:"PLANNER_API_KEY_SECRET, default=planner-api-key"`
	PlannerDailyQuota    int           `env:"PLANNER_DAILY_QUOTA, default=30"`
	State                envcfg.State

	// TariffPricePeak and TariffPriceOffpeak are what a kWh costs at peak
	// and in the cheap hours, all variable charges included (energy and
	// distribution; G12 in Poland in 2026: about 1.05 and 0.55 PLN gross).
	// They price the energy the car took: the simulated year, make bench.
	TariffPricePeak    float64 `env:"TARIFF_PRICE_PEAK, default=1.05"`
	TariffPriceOffpeak float64 `env:"TARIFF_PRICE_OFFPEAK, default=0.55"`
}

// LoadConfig reads the configuration from lookup (the process environment
// in main, a map in tests) and validates it. Errors name the variable.
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

// Validate checks values that parse but make no sense.
func (c *Config) Validate() error {
	if _, err := logging.ParseFormat(c.LogFormat); err != nil {
		return err
	}
	if err := c.Secrets.Validate(); err != nil {
		return err
	}
	for name, v := range map[string]*string{"TESLA_AUTH_URL": &c.TeslaAuthURL, "TESLA_FLEET_API_URL": &c.TeslaFleetAPIURL, "TESLA_COMMAND_URL": &c.TeslaCommandURL} {
		if *v == "" && name == "TESLA_COMMAND_URL" {
			continue
		}
		if err := envcfg.CheckURL(name, *v); err != nil {
			return err
		}
		*v = strings.TrimRight(*v, "/")
	}
	if c.TeslaCommandURL == c.TeslaFleetAPIURL {
		// The Python system's deploy set it so when it had no proxy: that
		// is "no external signer", not "send unsigned commands".
		c.TeslaCommandURL = ""
	}
	if _, err := c.CommandMode(); err != nil {
		return err
	}
	if c.PrivateKeySecret == "" {
		return fmt.Errorf("TESLA_PRIVATE_KEY_SECRET: must not be empty")
	}
	if c.TokenRefreshBefore <= 0 || c.TokenRefreshBefore >= 8*time.Hour {
		return fmt.Errorf("TOKEN_REFRESH_BEFORE: %s must be between 0 and 8h (access tokens live about 8 h)", c.TokenRefreshBefore)
	}
	if c.TokenKeepVersions < 1 {
		return fmt.Errorf("TOKEN_KEEP_VERSIONS: must be at least 1")
	}
	if err := c.IDToken.Validate(); err != nil {
		return err
	}
	if _, err := c.AuthPolicy(); err != nil {
		return err
	}
	return c.Charging.validate()
}

// CommandMode is the resolved TESLA_COMMAND_MODE.
func (c Config) CommandMode() (carcmd.Mode, error) {
	return carcmd.ParseMode(c.TeslaCommandMode, c.TeslaCommandURL)
}

// AuthPolicy is the caller-authentication policy from WORKER_AUTH and its settings.
func (c Config) AuthPolicy() (svcauth.Policy, error) {
	mode, err := svcauth.ParseMode("WORKER_AUTH", c.WorkerAuth)
	if err != nil {
		return svcauth.Policy{}, err
	}
	p := svcauth.Policy{Mode: mode, AllowedInvokers: c.AllowedInvokers, Token: c.WorkerAuthToken}
	if mode == svcauth.ModeIAM {
		p.Audiences = c.IDToken.ServiceURL
		p.Keys = svcauth.NewGoogleKeys(c.IDToken.GoogleCertsURL, nil)
		p.OnCloudRun = c.IDToken.OnCloudRun()
	}
	return p, p.Validate("ALLOWED_INVOKERS", "WORKER_AUTH_TOKEN", "SERVICE_URL")
}

func (c ChargingConfig) validate() error {
	if err := c.Home.Validate(); err != nil {
		return err
	}
	if err := c.State.Validate(); err != nil {
		return err
	}
	// CHARGE_FLOOR_PERCENT is for a car left nearly empty: below it the
	// plan charges now, cheap or not, up to the floor; above it only in
	// cheap hours. The default 20 keeps an ordinary evening (a car home at
	// 40 %) in the cheap hours; the Python system forced charging only
	// below 30 %.
	switch {
	case c.ChargeTargetPercent < 1 || c.ChargeTargetPercent > 100:
		return fmt.Errorf("CHARGE_TARGET_PERCENT: %d is not 1..100", c.ChargeTargetPercent)
	case c.ChargeFloorPercent < 0 || c.ChargeFloorPercent > c.ChargeTargetPercent:
		return fmt.Errorf("CHARGE_FLOOR_PERCENT: %d must be between 0 and CHARGE_TARGET_PERCENT", c.ChargeFloorPercent)
	case c.BatteryKWh <= 0:
		return fmt.Errorf("BATTERY_KWH: must be positive")
	case c.ChargerKW <= 0:
		return fmt.Errorf("CHARGER_KW: must be positive")
	case c.ChargeEfficiency <= 0 || c.ChargeEfficiency > 1:
		return fmt.Errorf("CHARGE_EFFICIENCY: %v must be in (0, 1]", c.ChargeEfficiency)
	case !(c.TariffPricePeak > 0) || math.IsInf(c.TariffPricePeak, 0):
		return fmt.Errorf("TARIFF_PRICE_PEAK: %v must be a positive price per kWh", c.TariffPricePeak)
	case !(c.TariffPriceOffpeak > 0) || math.IsInf(c.TariffPriceOffpeak, 0):
		return fmt.Errorf("TARIFF_PRICE_OFFPEAK: %v must be a positive price per kWh", c.TariffPriceOffpeak)
	case c.CommandSpacing < 0:
		return fmt.Errorf("COMMAND_SPACING: must not be negative")
	case c.PlannerDailyQuota < 0:
		return fmt.Errorf("PLANNER_DAILY_QUOTA: must not be negative")
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		return fmt.Errorf("TIMEZONE: %q: %w", c.Timezone, err)
	}
	if c.PlannerURL != "" {
		if err := envcfg.CheckURL("PLANNER_URL", c.PlannerURL); err != nil {
			return err
		}
	}
	return nil
}
