package fleetctl

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/envcfg"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// Config is what every command needs to reach the same secrets and Tesla
// endpoints as the worker. It is read from the worker's environment
// variables (with the worker's defaults), then overridden by flags.
type Config struct {
	SecretsBackend           string // SECRETS_BACKEND: file or gcp
	SecretsDir               string // SECRETS_DIR
	GoogleCloudProject       string // GOOGLE_CLOUD_PROJECT
	FleetTokensSecret        string // FLEET_TOKENS_SECRET
	ClientIDSecret           string // TESLA_CLIENT_ID_SECRET
	ClientSecretSecret       string // TESLA_CLIENT_SECRET_SECRET
	LegacyRefreshTokenSecret string // LEGACY_REFRESH_TOKEN_SECRET
	PrivateKeySecret         string // TESLA_PRIVATE_KEY_SECRET: the command key (keygen, register, pair)
	DomainSecret             string // TESLA_DOMAIN_SECRET: the app's domain (register writes it, pair reads it)
	TokenRefreshBefore       time.Duration
	TokenKeepVersions        int
	TeslaAuthURL             string // token endpoint
	TeslaAuthorizeURL        string // browser step of a login
	TeslaFleetAPIURL         string // the account's regional Fleet API host
}

// DefaultFleetAPIURL is the worker's default region (Europe).
const DefaultFleetAPIURL = "https://fleet-api.prd.eu.vn.cloud.tesla.com"

// setting is one configuration value: its variable, its flag (if any), its
// default and where it lands in Config.
type setting struct {
	env   string
	flag  string
	def   string
	usage string
	set   func(c *Config, v string) error
}

// settings lists every variable fleetctl reads. The variables and defaults
// are the worker's (a test compares them with worker.Config's tags), so the
// CLI and the worker always open the same secrets.
var settings = []setting{
	{"SECRETS_BACKEND", "backend", "file", "secret backend: file or gcp", func(c *Config, v string) error {
		if v != "file" && v != "gcp" {
			return fmt.Errorf("%q is not one of file, gcp", v)
		}
		c.SecretsBackend = v
		return nil
	}},
	{"SECRETS_DIR", "secrets-dir", ".local/secrets", "directory of the file backend", func(c *Config, v string) error {
		c.SecretsDir = v
		return nil
	}},
	{"GOOGLE_CLOUD_PROJECT", "project", "", "Google Cloud project of the gcp backend", func(c *Config, v string) error {
		c.GoogleCloudProject = v
		return nil
	}},
	{"FLEET_TOKENS_SECRET", "", "fleet-tokens", "secret holding the token pair (JSON)", secretName(func(c *Config) *string { return &c.FleetTokensSecret })},
	{"TESLA_CLIENT_ID_SECRET", "", "tesla-client-id", "secret holding the app's client id", secretName(func(c *Config) *string { return &c.ClientIDSecret })},
	{"TESLA_CLIENT_SECRET_SECRET", "", "tesla-client-secret", "secret holding the app's client secret", secretName(func(c *Config) *string { return &c.ClientSecretSecret })},
	{"LEGACY_REFRESH_TOKEN_SECRET", "", "tesla-refresh-token", "secret holding the old system's raw refresh token", secretName(func(c *Config) *string { return &c.LegacyRefreshTokenSecret })},
	{"TESLA_PRIVATE_KEY_SECRET", "", "tesla-private-key", "secret holding the P-256 command key (PEM)", secretName(func(c *Config) *string { return &c.PrivateKeySecret })},
	{"TESLA_DOMAIN_SECRET", "", "tesla-domain", "secret holding the app's domain (the Python system's name)", secretName(func(c *Config) *string { return &c.DomainSecret })},
	{"TOKEN_REFRESH_BEFORE", "", "30m", "refresh when less than this is left", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 30m)", v)
		}
		if d <= 0 || d >= 8*time.Hour {
			return fmt.Errorf("%s must be between 0 and 8h (access tokens live about 8 h)", d)
		}
		c.TokenRefreshBefore = d
		return nil
	}},
	{"TOKEN_KEEP_VERSIONS", "", "3", "token versions kept whatever their age", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("%q must be a whole number of at least 1", v)
		}
		c.TokenKeepVersions = n
		return nil
	}},
	{"TESLA_AUTH_URL", "auth-url", tokens.DefaultTokenURL, "Tesla's token endpoint", httpURL(func(c *Config) *string { return &c.TeslaAuthURL })},
	{"TESLA_AUTHORIZE_URL", "authorize-url", tokens.DefaultAuthorizeURL, "Tesla's authorize page (login)", httpURL(func(c *Config) *string { return &c.TeslaAuthorizeURL })},
	{"TESLA_FLEET_API_URL", "fleet-api-url", DefaultFleetAPIURL, "the account's regional Fleet API URL", httpURL(func(c *Config) *string { return &c.TeslaFleetAPIURL })},
}

func secretName(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		*field(c) = v
		return nil
	}
}

// httpURL checks a URL by the services' rule (envcfg.CheckURL): https, or
// http for a loopback host only, so fleetctl never sends the client secret
// or a refresh token across a network in clear text.
func httpURL(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if err := envcfg.CheckURL("URL", v); err != nil {
			// load names the variable or the flag; envcfg.CheckURL's own
			// prefix would only repeat it.
			if inner := errors.Unwrap(err); inner != nil {
				return inner
			}
			return err
		}
		*field(c) = strings.TrimRight(v, "/")
		return nil
	}
}

// configFlags holds the values of the configuration flags of one FlagSet.
type configFlags struct {
	fs     *flag.FlagSet
	values map[string]*string // by flag name
}

// addConfigFlags registers the configuration flags on fs. Their defaults are
// empty so that an unset flag falls back to the environment; the usage text
// names the variable and its default.
func addConfigFlags(fs *flag.FlagSet) *configFlags {
	cf := &configFlags{fs: fs, values: map[string]*string{}}
	for _, s := range settings {
		if s.flag == "" {
			continue
		}
		def := s.def
		if def == "" {
			def = "none"
		}
		cf.values[s.flag] = fs.String(s.flag, "", fmt.Sprintf("%s (env %s, default %s)", s.usage, s.env, def))
	}
	return cf
}

// load builds the Config: default, then environment, then flag. Every
// problem names the variable (and the flag, where there is one), and all of
// them are reported at once so doctor can list each on its own line.
func (cf *configFlags) load(env func(string) string) (Config, []error) {
	setFlags := map[string]bool{}
	if cf != nil {
		cf.fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })
	}
	var c Config
	var problems []error
	for _, s := range settings {
		v, from := s.def, s.env
		if e := strings.TrimSpace(env(s.env)); e != "" {
			v = e
		}
		if s.flag != "" && setFlags[s.flag] {
			v, from = strings.TrimSpace(*cf.values[s.flag]), "--"+s.flag
		} else if s.flag != "" {
			from = s.env + " (--" + s.flag + ")"
		}
		if err := s.set(&c, v); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", from, err))
		}
	}
	switch {
	case c.SecretsBackend == "file" && c.SecretsDir == "":
		problems = append(problems, errors.New("SECRETS_DIR (--secrets-dir): required when SECRETS_BACKEND=file"))
	case c.SecretsBackend == "gcp" && c.GoogleCloudProject == "":
		problems = append(problems, errors.New("GOOGLE_CLOUD_PROJECT (--project): required when SECRETS_BACKEND=gcp"))
	}
	return c, problems
}

// managerConfig maps Config onto the token manager's settings exactly as
// the worker's Build does, so both apply the same rules.
func (c Config) managerConfig(holder string) tokens.Config {
	return tokens.Config{
		FleetSecret:        c.FleetTokensSecret,
		ClientIDSecret:     c.ClientIDSecret,
		ClientSecretSecret: c.ClientSecretSecret,
		LegacySecret:       c.LegacyRefreshTokenSecret,
		RefreshBefore:      c.TokenRefreshBefore,
		KeepVersions:       c.TokenKeepVersions,
		Holder:             holder,
	}
}
