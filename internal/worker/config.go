// Package worker is the worker service's HTTP layer: configuration, routes
// and handlers. Handlers only decode, call the token manager or the charging
// cycle, and encode; every decision lives in those domain packages.
package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
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

	// TeslaApp: the token settings (TESLA_FLEET_API_URL, FLEET_TOKENS_SECRET,
	// TOKEN_REFRESH_BEFORE, TESLA_AUTH_URL, the client id and secret
	// secrets, LEGACY_REFRESH_TOKEN_SECRET, TOKEN_KEEP_VERSIONS,
	// TESLA_PRIVATE_KEY_SECRET), shared with fleetctl, and with the scout
	// for the part it reads. Embedded, so cfg.TeslaFleetAPIURL and the rest
	// read as the variables' names.
	envcfg.TeslaApp

	// TeslaCommandURL is an external signer (proxy mode). The Python
	// system's deploy set it to the Fleet API's own URL when it had none;
	// SignerURL reads that as unset.
	TeslaCommandURL string `env:"TESLA_COMMAND_URL"`
	// TeslaCommandMode chooses how commands travel (carcmd.ParseMode):
	// auto signs in the worker unless TESLA_COMMAND_URL names an external signer.
	TeslaCommandMode string `env:"TESLA_COMMAND_MODE, default=auto"`

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
// in main, a map in tests), validates it, reporting every problem with the
// variable it names, and normalizes it (Normalize).
func LoadConfig(ctx context.Context, lookup envconfig.Lookuper) (Config, error) {
	var c Config
	if err := envcfg.Load(ctx, lookup, &c); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	c.Normalize()
	return c, nil
}

// Validate checks values that parse but make no sense. It reports every
// problem and changes nothing.
func (c *Config) Validate() error {
	var problems []error
	if _, err := logging.ParseFormat(c.LogFormat); err != nil {
		problems = append(problems, err)
	}
	problems = append(problems, c.Secrets.Validate(), c.TeslaApp.Validate())
	if c.TeslaCommandURL != "" {
		problems = append(problems, envcfg.CheckURL("TESLA_COMMAND_URL", c.TeslaCommandURL))
	}
	if _, err := c.CommandMode(); err != nil {
		problems = append(problems, err)
	}
	problems = append(problems, c.IDToken.Validate())
	if _, err := c.AuthPolicy(); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(append(problems, c.Charging.validate())...)
}

// Normalize is the one place the loaded values are tidied: the URLs lose
// a trailing slash (the clients append paths; a token's audience has
// none).
func (c *Config) Normalize() {
	c.TeslaApp.Normalize()
	c.IDToken.Normalize()
	c.TeslaCommandURL = envcfg.BaseURL(c.TeslaCommandURL)
}

// SignerURL is where an external signer takes commands: TESLA_COMMAND_URL,
// unless it names the Fleet API itself, which is how the Python system's
// deploy said "no signer" (not "send unsigned commands").
func (c Config) SignerURL() string {
	u := envcfg.BaseURL(c.TeslaCommandURL)
	if u == envcfg.BaseURL(c.TeslaFleetAPIURL) {
		return ""
	}
	return u
}

// CommandMode is the resolved TESLA_COMMAND_MODE.
func (c Config) CommandMode() (carcmd.Mode, error) {
	return carcmd.ParseMode(c.TeslaCommandMode, c.SignerURL())
}

// AuthPolicy is the caller-authentication policy from WORKER_AUTH and its settings.
func (c Config) AuthPolicy() (svcauth.Policy, error) {
	mode, err := svcauth.ParseMode("WORKER_AUTH", c.WorkerAuth)
	if err != nil {
		return svcauth.Policy{}, err
	}
	p := svcauth.Policy{Mode: mode, AllowedInvokers: c.AllowedInvokers, Token: c.WorkerAuthToken}
	if mode == svcauth.ModeIAM {
		p.Audiences = c.IDToken.ServiceURL // see LoadConfig: trimmed (IDToken.Normalize)
		p.Keys = svcauth.NewGoogleKeys(c.IDToken.GoogleCertsURL, nil)
		p.OnCloudRun = c.IDToken.OnCloudRun()
	}
	return p, p.Validate("ALLOWED_INVOKERS", "WORKER_AUTH_TOKEN", "SERVICE_URL")
}

func (c ChargingConfig) validate() error {
	problems := []error{c.Home.Validate(), c.State.Validate()}
	// CHARGE_FLOOR_PERCENT is for a car left nearly empty: below it the
	// plan charges now, cheap or not, up to the floor; above it only in
	// cheap hours. The default 20 keeps an ordinary evening (a car home at
	// 40 %) in the cheap hours; the Python system forced charging only
	// below 30 %.
	for _, check := range []struct {
		ok      bool
		problem error
	}{
		{c.ChargeTargetPercent >= 1 && c.ChargeTargetPercent <= 100, envcfg.Errorf("CHARGE_TARGET_PERCENT", "%d is not 1..100", c.ChargeTargetPercent)},
		{c.ChargeFloorPercent >= 0 && c.ChargeFloorPercent <= c.ChargeTargetPercent,
			envcfg.Errorf("CHARGE_FLOOR_PERCENT", "%d must be between 0 and CHARGE_TARGET_PERCENT", c.ChargeFloorPercent)},
		{c.BatteryKWh > 0, envcfg.Errorf("BATTERY_KWH", "must be positive")},
		{c.ChargerKW > 0, envcfg.Errorf("CHARGER_KW", "must be positive")},
		{c.ChargeEfficiency > 0 && c.ChargeEfficiency <= 1, envcfg.Errorf("CHARGE_EFFICIENCY", "%v must be in (0, 1]", c.ChargeEfficiency)},
		{isPrice(c.TariffPricePeak), envcfg.Errorf("TARIFF_PRICE_PEAK", "%v must be a positive price per kWh", c.TariffPricePeak)},
		{isPrice(c.TariffPriceOffpeak), envcfg.Errorf("TARIFF_PRICE_OFFPEAK", "%v must be a positive price per kWh", c.TariffPriceOffpeak)},
		{c.CommandSpacing >= 0, envcfg.Errorf("COMMAND_SPACING", "must not be negative")},
		{c.PlannerDailyQuota >= 0, envcfg.Errorf("PLANNER_DAILY_QUOTA", "must not be negative")},
	} {
		if !check.ok {
			problems = append(problems, check.problem)
		}
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		problems = append(problems, envcfg.Errorf("TIMEZONE", "%q: %w", c.Timezone, err))
	}
	if c.PlannerURL != "" {
		problems = append(problems, envcfg.CheckURL("PLANNER_URL", c.PlannerURL))
	}
	return errors.Join(problems...)
}

// isPrice: positive and finite (NaN is neither).
func isPrice(p float64) bool { return p > 0 && !math.IsInf(p, 0) }
