package fleetctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strings"

	"github.com/sethvargo/go-envconfig"

	"github.com/offpeak-charging/offpeak/internal/envcfg"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// Config is what every command needs to reach the same secrets and Tesla
// endpoints as the worker: the worker's own sections (envcfg.Secrets and
// envcfg.TeslaApp, so the variables, defaults and checks are the same by
// construction), what only the CLI reads, and the variables single
// commands fall back on. It is loaded by envcfg from the environment, with
// the configuration flags on top (configFlags.load).
type Config struct {
	Secrets envcfg.Secrets
	// TeslaApp: the token settings, as the worker reads them.
	envcfg.TeslaApp

	// TeslaAuthorizeURL is where the browser step of a login starts.
	TeslaAuthorizeURL string `env:"TESLA_AUTHORIZE_URL, default=https://auth.tesla.com/oauth2/v3/authorize"`
	// DomainSecret holds the app's domain: register writes it, pair and
	// doctor read it (the Python system's name for it).
	DomainSecret string `env:"TESLA_DOMAIN_SECRET, default=tesla-domain"`

	// Command holds what one command reads when its flag is not given;
	// the top-level help does not list it.
	Command commandVars
}

// commandVars are read by one command each.
type commandVars struct {
	RedirectURI string `env:"TESLA_REDIRECT_URI"` // login --redirect-uri
	WorkerURL   string `env:"WORKER_URL"`         // doctor --worker-url
	Region      string `env:"REGION"`             // doctor --region
	// How the worker sends commands (its variables, read raw as the
	// worker's own carcmd.ParseMode takes them), for doctor's verdict on
	// each car.
	TeslaCommandMode string `env:"TESLA_COMMAND_MODE"`
	TeslaCommandURL  string `env:"TESLA_COMMAND_URL"`
}

// Validate checks the worker's sections and the CLI's own settings.
func (c *Config) Validate() error {
	problems := []error{c.Secrets.Validate(), c.TeslaApp.Validate(), envcfg.CheckURL("TESLA_AUTHORIZE_URL", c.TeslaAuthorizeURL)}
	if c.DomainSecret == "" {
		problems = append(problems, envcfg.Errorf("TESLA_DOMAIN_SECRET", "must not be empty"))
	}
	return errors.Join(problems...)
}

// Normalize drops the URLs' trailing slashes, as the worker does.
func (c *Config) Normalize() {
	c.TeslaApp.Normalize()
	c.TeslaAuthorizeURL = envcfg.BaseURL(c.TeslaAuthorizeURL)
}

// configFlag is a flag every command has that overrides a variable.
type configFlag struct {
	name  string
	env   string
	usage string
}

// configFlagList are the flags that override a variable, on every command.
var configFlagList = []configFlag{
	{"backend", "SECRETS_BACKEND", "secret backend: file or gcp"},
	{"secrets-dir", "SECRETS_DIR", "directory of the file backend"},
	{"project", "GOOGLE_CLOUD_PROJECT", "Google Cloud project of the gcp backend"},
	{"auth-url", "TESLA_AUTH_URL", "Tesla's token endpoint"},
	{"authorize-url", "TESLA_AUTHORIZE_URL", "Tesla's authorize page (login)"},
	{"fleet-api-url", "TESLA_FLEET_API_URL", "the account's regional Fleet API URL"},
}

// flagOf is the configuration flag of a variable ("" for none).
func flagOf(env string) string {
	for _, f := range configFlagList {
		if f.env == env {
			return f.name
		}
	}
	return ""
}

// settings are the variables the top-level help lists, in Config's order,
// with their defaults: every one but the commands' own.
func settings() []envcfg.Var {
	own := envcfg.Vars(reflect.TypeOf(commandVars{}))
	var out []envcfg.Var
	for _, v := range envcfg.Describe(reflect.TypeOf(Config{})) {
		if _, ok := own[v.Name]; !ok {
			out = append(out, v)
		}
	}
	return out
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
	defaults := map[string]string{}
	for _, v := range settings() {
		defaults[v.Name] = v.Default
	}
	for _, f := range configFlagList {
		def := defaults[f.env]
		if def == "" {
			def = "none"
		}
		cf.values[f.name] = fs.String(f.name, "", fmt.Sprintf("%s (env %s, default %s)", f.usage, f.env, def))
	}
	return cf
}

// load builds the Config: envcfg reads it from the environment, a flag
// given on the command line standing in for its variable, and validates
// it. Values are read trimmed of spaces (a pasted value often carries one);
// an empty one, from a flag as from a variable, counts as unset. Every
// problem names the variable (and the flag, where there is one: the flag
// alone if it was given), and all of them are reported at once so doctor
// can list each on its own line.
func (cf *configFlags) load(ctx context.Context, lookup envconfig.Lookuper) (Config, []error) {
	given := map[string]bool{}
	if cf != nil {
		cf.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	}
	layered := envconfig.LookuperFunc(func(key string) (string, bool) {
		if name := flagOf(key); given[name] {
			return strings.TrimSpace(*cf.values[name]), true
		}
		v, ok := lookup.Lookup(key)
		return strings.TrimSpace(v), ok
	})
	var c Config
	var problems []error
	for _, p := range envcfg.Problems(envcfg.Load(ctx, layered, &c)) {
		problems = append(problems, withFlag(p, given))
	}
	c.Normalize()
	return c, problems
}

// withFlag names a problem's flag: "--fleet-api-url: …" when the flag was
// given, "TESLA_FLEET_API_URL (--fleet-api-url): …" when the variable (or
// its default) was read.
func withFlag(problem error, given map[string]bool) error {
	var ve *envcfg.VarError
	if !errors.As(problem, &ve) {
		return problem
	}
	name := flagOf(ve.Var)
	switch {
	case name == "":
		return problem
	case given[name]:
		return fmt.Errorf("--%s: %w", name, ve.Err)
	default:
		return fmt.Errorf("%s (--%s): %w", ve.Var, name, ve.Err)
	}
}

// managerConfig maps Config onto the token manager's settings exactly as
// the worker's Build does, so both apply the same rules (a test builds
// both from one environment and compares them).
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
