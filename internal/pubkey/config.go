package pubkey

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/offpeak-charging/offpeak/internal/envcfg"
	"github.com/offpeak-charging/offpeak/internal/logging"
)

// Config is the public-key service's whole configuration, read from the
// environment. It reads the same secret-store variables as the worker and
// the same key secret, so both serve and sign with one key.
type Config struct {
	Port      string `env:"PORT, default=8080"`
	LogFormat string `env:"LOG_FORMAT, default=json"`

	Secrets envcfg.Secrets
	// PrivateKeySecret holds the owner's PEM P-256 command key; only its
	// public half is kept in memory and served.
	PrivateKeySecret string `env:"TESLA_PRIVATE_KEY_SECRET, default=tesla-private-key"`
	// KeyRefresh is how long a key read from the store is served before it
	// is read again (on the next request after that): a new key from
	// `fleetctl keygen --force` is served within this time.
	KeyRefresh time.Duration `env:"PUBLIC_KEY_REFRESH, default=10m"`
}

// LoadConfig reads the configuration from lookup and validates it
// (envcfg.Load). Errors name the variable.
func LoadConfig(ctx context.Context, lookup envconfig.Lookuper) (Config, error) {
	var c Config
	if err := envcfg.Load(ctx, lookup, &c); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// Validate checks values that parse but make no sense, every one.
func (c Config) Validate() error {
	var problems []error
	if _, err := logging.ParseFormat(c.LogFormat); err != nil {
		problems = append(problems, err)
	}
	problems = append(problems, c.Secrets.Validate())
	if c.PrivateKeySecret == "" {
		problems = append(problems, envcfg.Errorf("TESLA_PRIVATE_KEY_SECRET", "must not be empty"))
	}
	if c.KeyRefresh < 10*time.Second || c.KeyRefresh > 24*time.Hour {
		problems = append(problems, envcfg.Errorf("PUBLIC_KEY_REFRESH", "%s must be between 10s and 24h", c.KeyRefresh))
	}
	return errors.Join(problems...)
}
