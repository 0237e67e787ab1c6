package envcfg

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/offpeak-charging/offpeak/internal/tokens"
)

type inner struct {
	Lat float64 `env:"HOME_LAT"`
}

type sample struct {
	Port     string        `env:"PORT, default=8080"`
	Wait     time.Duration `env:"WAIT, default=1s"`
	URL      string        `env:"WORKER_URL, required"`
	Charging inner

	validated bool
}

func (s *sample) Validate() error {
	s.validated = true
	var problems []error
	if s.Port == "0" {
		problems = append(problems, Errorf("PORT", "must not be 0"))
	}
	if s.Wait > time.Minute {
		problems = append(problems, Errorf("WAIT", "%s is too long", s.Wait))
	}
	return errors.Join(problems...)
}

func TestErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"WAIT":       {"WORKER_URL": "x", "WAIT": "soon"},
		"HOME_LAT":   {"WORKER_URL": "x", "HOME_LAT": "north"},
		"WORKER_URL": {"WORKER_URL": ""},
	}
	for want, env := range cases {
		var s sample
		err := Load(context.Background(), envconfig.MapLookuper(env), &s)
		if err == nil || !strings.HasPrefix(err.Error(), want+":") {
			t.Errorf("env %v: err = %v, want it to start with %s", env, err, want)
		}
	}
	var s sample
	if err := Load(context.Background(), envconfig.MapLookuper(map[string]string{"WORKER_URL": "u", "HOME_LAT": "52.2"}), &s); err != nil || s.Port != "8080" || s.Charging.Lat != 52.2 || !s.validated {
		t.Errorf("load = %+v, %v", s, err)
	}
}

// Every problem at once, each a VarError naming its variable: values that
// do not parse, required ones missing, and what Validate finds, which it is
// asked only when every value was read.
func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env       map[string]string
		want      []string // the variables named, in order
		validated bool
	}{
		{map[string]string{"WORKER_URL": "x", "WAIT": "soon", "HOME_LAT": "north", "PORT": "0"}, []string{"WAIT", "HOME_LAT", "PORT"}, true},
		{map[string]string{"WORKER_URL": "x", "WAIT": "2m", "PORT": "0"}, []string{"PORT", "WAIT"}, true},
		{map[string]string{"WAIT": "soon", "PORT": "0"}, []string{"WAIT", "WORKER_URL"}, false},
	} {
		var s sample
		err := Load(context.Background(), envconfig.MapLookuper(tc.env), &s)
		var got []string
		for _, p := range Problems(err) {
			var ve *VarError
			if !errors.As(p, &ve) {
				t.Errorf("%v: %v is not a VarError", tc.env, p)
				continue
			}
			got = append(got, ve.Var)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") || s.validated != tc.validated {
			t.Errorf("%v: problems %q (validated %v), want %q (%v)\n%v", tc.env, got, s.validated, tc.want, tc.validated, err)
		}
		if _, present := tc.env["WORKER_URL"]; !present && !errors.Is(err, envconfig.ErrMissingRequired) {
			t.Errorf("%v: %v does not wrap envconfig.ErrMissingRequired", tc.env, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	got := Describe(reflect.TypeOf(TeslaApp{}))
	want := []Var{
		{Name: "TESLA_FLEET_API_URL", Default: "https://fleet-api.prd.eu.vn.cloud.tesla.com"},
		{Name: "FLEET_TOKENS_SECRET", Default: "fleet-tokens"},
		{Name: "TOKEN_REFRESH_BEFORE", Default: "30m"},
		{Name: "TESLA_AUTH_URL", Default: tokens.DefaultTokenURL},
		{Name: "TESLA_CLIENT_ID_SECRET", Default: "tesla-client-id"},
		{Name: "TESLA_CLIENT_SECRET_SECRET", Default: "tesla-client-secret"},
		{Name: "LEGACY_REFRESH_TOKEN_SECRET", Default: "tesla-refresh-token"},
		{Name: "TOKEN_KEEP_VERSIONS", Default: "3"},
		{Name: "TESLA_PRIVATE_KEY_SECRET", Default: "tesla-private-key"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Describe(TeslaApp) =\n%+v\nwant\n%+v", got, want)
	}
}

func TestVars(t *testing.T) {
	t.Parallel()
	got := Vars(reflect.TypeOf(sample{}))
	want := map[string]bool{"PORT": false, "WAIT": false, "WORKER_URL": true, "HOME_LAT": false}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Vars = %v, want %v", got, want)
	}
}

func TestCheckURLWantsHTTPSOffLoopback(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"https://fleet-api.prd.eu.vn.cloud.tesla.com", "http://127.0.0.1:8081/oauth2/v3/token", "http://[::1]:9", "http://localhost:8080"} {
		if err := CheckURL("TESLA_AUTH_URL", ok); err != nil {
			t.Errorf("CheckURL(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"http://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token", "http://192.168.1.5:8080", "fleet-auth", "ftp://127.0.0.1"} {
		if err := CheckURL("TESLA_AUTH_URL", bad); err == nil || !strings.HasPrefix(err.Error(), "TESLA_AUTH_URL: ") {
			t.Errorf("CheckURL(%q) = %v, want an error naming TESLA_AUTH_URL", bad, err)
		}
	}
}
