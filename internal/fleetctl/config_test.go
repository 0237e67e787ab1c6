package fleetctl

import (
	"context"
	"flag"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/envcfg"
	"github.com/offpeak-charging/offpeak/internal/secrets"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/tokens"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

// loadConfig is what a command sees: the environment, then flags.
func loadConfig(t *testing.T, env map[string]string, args ...string) (Config, []error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := addConfigFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cf.load(context.Background(), envconfig.MapLookuper(env))
}

// The CLI must open the secrets the worker opens and apply its token
// rules: from one environment, the worker's LoadConfig and fleetctl read
// the same secret store and token settings, and build token managers with
// the same configuration.
func TestConfigIsTheWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// What the worker needs besides, to start at all.
	workerOnly := map[string]string{"HOME_LAT": "52.2", "HOME_LON": "21.0", "WORKER_AUTH": "token", "WORKER_AUTH_TOKEN": "worker-token-0123456789"}
	for name, env := range map[string]map[string]string{
		"defaults": {},
		"every token variable set": {
			"SECRETS_BACKEND": "gcp", "GOOGLE_CLOUD_PROJECT": "p", "TESLA_FLEET_API_URL": "https://fleet-api.prd.na.vn.cloud.tesla.com/",
			"FLEET_TOKENS_SECRET": "ft", "TOKEN_REFRESH_BEFORE": "1h", "TESLA_AUTH_URL": "https://auth.example.com/oauth2/v3/token/",
			"TESLA_CLIENT_ID_SECRET": "id", "TESLA_CLIENT_SECRET_SECRET": "cs", "LEGACY_REFRESH_TOKEN_SECRET": "legacy",
			"TOKEN_KEEP_VERSIONS": "7", "TESLA_PRIVATE_KEY_SECRET": "key",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			wenv := map[string]string{}
			for _, m := range []map[string]string{env, workerOnly} {
				for k, v := range m {
					wenv[k] = v
				}
			}
			wcfg, err := worker.LoadConfig(ctx, envconfig.MapLookuper(wenv))
			if err != nil {
				t.Fatal(err)
			}
			fcfg, problems := loadConfig(t, env)
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			if fcfg.Secrets != wcfg.Secrets || fcfg.TeslaApp != wcfg.TeslaApp {
				t.Errorf("fleetctl reads\n%+v %+v\nthe worker\n%+v %+v", fcfg.Secrets, fcfg.TeslaApp, wcfg.Secrets, wcfg.TeslaApp)
			}

			// The token managers: the worker's from Build, fleetctl's as a command builds it.
			clk := clock.NewManual(start)
			app, err := worker.Build(ctx, wcfg, worker.Options{Clock: clk, Secrets: secrets.NewMemory(clk), State: state.NewMemory()})
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			want := app.Tokens.Config()
			got := tokens.New(secrets.NewMemory(clk), nil, clk, zap.NewNop(), fcfg.managerConfig(want.Holder)).Config()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("fleetctl's token manager\n%+v\nthe worker's\n%+v", got, want)
			}
		})
	}
}

// A flag stands in for its variable; every problem is reported, named by
// the flag when one was given, by the variable and its flag otherwise.
func TestConfigFlagsOnTheEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SECRETS_BACKEND": "s3", "TESLA_FLEET_API_URL": " https://fleet-api.prd.na.vn.cloud.tesla.com/ ", "TOKEN_REFRESH_BEFORE": "soon",
		"TOKEN_KEEP_VERSIONS": "0"}
	c, problems := loadConfig(t, env, "--backend", "file", "--auth-url", "http://auth.example.com")
	var got []string
	for _, p := range problems {
		got = append(got, p.Error())
	}
	want := []string{
		`TOKEN_REFRESH_BEFORE: time: invalid duration "soon"`,
		`--auth-url: "http://auth.example.com" must use https (http only for 127.0.0.1, ::1 or localhost)`,
		"TOKEN_KEEP_VERSIONS: must be at least 1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c.Secrets.Backend != "file" || c.TeslaFleetAPIURL != "https://fleet-api.prd.na.vn.cloud.tesla.com" || c.TokenRefreshBefore != 30*time.Minute {
		t.Errorf("config %+v", c)
	}
}

// The top-level help lists every setting with the default its tag gives,
// and the tags agree with the token package's own defaults.
func TestSettingsDefaults(t *testing.T) {
	t.Parallel()
	defaults := map[string]string{}
	for _, v := range settings() {
		defaults[v.Name] = v.Default
	}
	for name, want := range map[string]string{"TESLA_AUTH_URL": tokens.DefaultTokenURL, "TESLA_AUTHORIZE_URL": tokens.DefaultAuthorizeURL,
		"FLEET_TOKENS_SECRET": "fleet-tokens", "SECRETS_BACKEND": "file"} {
		if defaults[name] != want {
			t.Errorf("%s: default %q, want %q", name, defaults[name], want)
		}
	}
	for _, v := range envcfg.Describe(reflect.TypeOf(commandVars{})) {
		if _, listed := defaults[v.Name]; listed {
			t.Errorf("%s, a command's own, is in the top-level list", v.Name)
		}
	}
}

// Every variable fleetctl reads is in its README's table.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../cmd/fleetctl/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range envcfg.Describe(reflect.TypeOf(Config{})) {
		if !strings.Contains(string(readme), "| `"+v.Name+"`") && !strings.Contains(string(readme), ", `"+v.Name+"` |") {
			t.Errorf("fleetctl reads %s, which cmd/fleetctl/README.md's table does not list", v.Name)
		}
	}
}
