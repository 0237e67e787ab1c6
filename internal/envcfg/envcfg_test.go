package envcfg

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
)

type inner struct {
	Lat float64 `env:"HOME_LAT"`
}

type sample struct {
	Port     string        `env:"PORT, default=8080"`
	Wait     time.Duration `env:"WAIT, default=1s"`
	URL      string        `env:"WORKER_URL, required"`
	Charging inner
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
	if err := Load(context.Background(), envconfig.MapLookuper(map[string]string{"WORKER_URL": "u", "HOME_LAT": "52.2"}), &s); err != nil || s.Port != "8080" || s.Charging.Lat != 52.2 {
		t.Errorf("load = %+v, %v", s, err)
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
