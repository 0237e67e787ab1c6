package scout

import (
	"context"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
)

func TestConfigIAMAndURLs(t *testing.T) {
	t.Parallel()
	base := map[string]string{"HOME_LAT": "52.2", "HOME_LON": "21.0", "WORKER_URL": "https://offpeak-worker-1.europe-central2.run.app",
		"SCOUT_ALLOWED_INVOKERS": "scheduler@p.iam.gserviceaccount.com", "SERVICE_URL": "https://offpeak-scout-1.europe-central2.run.app/"}
	load := func(override map[string]string) (Config, error) {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range override {
			m[k] = v
		}
		return LoadConfig(context.Background(), envconfig.MapLookuper(m))
	}
	cfg, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.TickPolicy()
	if err != nil || len(p.Audiences) != 1 || p.Audiences[0] != "https://offpeak-scout-1.europe-central2.run.app" || p.Keys == nil || p.OnCloudRun {
		t.Errorf("tick policy = %+v, %v", p, err)
	}
	if cfg, _ := load(map[string]string{"K_SERVICE": "offpeak-scout"}); !cfg.IDToken.OnCloudRun() {
		t.Error("K_SERVICE set: not on Cloud Run?")
	}
	for want, override := range map[string]map[string]string{
		"SERVICE_URL":      {"SERVICE_URL": ""},
		"WORKER_URL":       {"WORKER_URL": "http://offpeak-worker-1.europe-central2.run.app"},
		"GOOGLE_CERTS_URL": {"GOOGLE_CERTS_URL": "http://www.googleapis.com/oauth2/v3/certs"},
	} {
		if _, err := load(override); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: err = %v, want it to name %s", override, err, want)
		}
	}
	// Loopback http stays allowed (local stacks, tests); token mode needs no SERVICE_URL.
	if _, err := load(map[string]string{"WORKER_URL": "http://127.0.0.1:8081", "SERVICE_URL": "", "SCOUT_AUTH": "token",
		"SCOUT_AUTH_TOKEN": "scout-token-0123456789"}); err != nil {
		t.Errorf("loopback worker, token mode: %v", err)
	}
}

// Every problem at once; the VINs and URLs are tidied after the checks.
func TestConfigReportsEveryProblemAndNormalizes(t *testing.T) {
	t.Parallel()
	env := map[string]string{"HOME_LAT": "52.2", "HOME_LON": "21.0", "WORKER_URL": "https://offpeak-worker-1.europe-central2.run.app/",
		"SCOUT_AUTH": "token", "SCOUT_AUTH_TOKEN": "scout-token-0123456789", "VEHICLE_VINS": " 5yj3e7eb0kf000001 ,5YJSA1E2XJF000002",
		"TESLA_FLEET_API_URL": "https://fleet-api.prd.na.vn.cloud.tesla.com/"}
	cfg, err := LoadConfig(context.Background(), envconfig.MapLookuper(env))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.VehicleVINs, ",") != "5YJ3E7EB0KF000001,5YJSA1E2XJF000002" || cfg.WorkerURL != "https://offpeak-worker-1.europe-central2.run.app" ||
		cfg.TeslaFleetAPIURL != "https://fleet-api.prd.na.vn.cloud.tesla.com" {
		t.Errorf("normalized: VINs %q, worker %q, Fleet API %q", cfg.VehicleVINs, cfg.WorkerURL, cfg.TeslaFleetAPIURL)
	}
	env["VEHICLE_VINS"] = "not-a-vin"
	env["TICK_TIMEOUT"] = "1s"
	env["TOKEN_REFRESH_BEFORE"] = "8h"
	env["HOME_RADIUS_M"] = "-1"
	_, err = LoadConfig(context.Background(), envconfig.MapLookuper(env))
	for _, want := range []string{"VEHICLE_VINS", "TICK_TIMEOUT", "TOKEN_REFRESH_BEFORE", "HOME_RADIUS_M"} {
		if err == nil || !strings.Contains(err.Error(), want+": ") {
			t.Errorf("err = %v, want it to name %s too", err, want)
		}
	}
}
