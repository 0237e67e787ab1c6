package envcfg

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// vars are the variables a Validate's problems name, in order.
func vars(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, p := range Problems(err) {
		var ve *VarError
		if errors.As(p, &ve) {
			out = append(out, ve.Var)
		} else {
			name, _, _ := strings.Cut(p.Error(), ":")
			out = append(out, name)
		}
	}
	return out
}

// Each section reports every problem at once, and Validate changes nothing.
func TestSectionsReportEveryProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		section Validator
		want    []string
	}{
		{"secrets", Secrets{Backend: "vault"}, []string{"SECRETS_BACKEND"}},
		{"secrets gcp", Secrets{Backend: "gcp"}, []string{"GOOGLE_CLOUD_PROJECT"}},
		{"state", State{Backend: "file"}, []string{"STATE_DIR"}},
		{"home", Home{Lat: 91, Lon: -181, RadiusM: 0}, []string{"HOME_LAT", "HOME_LON", "HOME_RADIUS_M"}},
		{"home 0,0", Home{RadiusM: 100}, []string{"HOME_LAT/HOME_LON"}},
		{"id token", IDToken{ServiceURL: []string{"http://a.example", " https://b.example/ ", "ftp://c"}, GoogleCertsURL: "http://certs.example"},
			[]string{"SERVICE_URL", "SERVICE_URL", "GOOGLE_CERTS_URL"}},
		{"tesla", Tesla{TeslaFleetAPIURL: "http://fleet.example", TokenRefreshBefore: 9 * time.Hour},
			[]string{"TESLA_FLEET_API_URL", "FLEET_TOKENS_SECRET", "TOKEN_REFRESH_BEFORE"}},
		{"tesla app", TeslaApp{Tesla: Tesla{TeslaFleetAPIURL: "https://fleet.example/", FleetTokensSecret: "t", TokenRefreshBefore: time.Hour},
			TeslaAuthURL: "auth", ClientSecretSecret: "s", LegacyRefreshTokenSecret: "l", PrivateKeySecret: "k"},
			[]string{"TESLA_AUTH_URL", "TESLA_CLIENT_ID_SECRET", "TOKEN_KEEP_VERSIONS"}},
	} {
		before := reflect.ValueOf(tc.section).Interface()
		got := vars(t, tc.section.Validate())
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: problems name %q, want %q", tc.name, got, tc.want)
		}
		if !reflect.DeepEqual(before, tc.section) {
			t.Errorf("%s: Validate changed the section: %+v", tc.name, tc.section)
		}
	}
	// IDToken's slice is not rewritten either (its Validate trimmed in place once).
	id := IDToken{ServiceURL: []string{" https://svc.example/ "}, GoogleCertsURL: "https://certs.example"}
	if err := id.Validate(); err != nil || id.ServiceURL[0] != " https://svc.example/ " {
		t.Errorf("Validate = %v, ServiceURL %q", err, id.ServiceURL)
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	id := IDToken{ServiceURL: []string{" https://svc.example/ ", "https://svc-2.example"}}
	raw := id.ServiceURL
	id.Normalize()
	if !reflect.DeepEqual(id.ServiceURL, []string{"https://svc.example", "https://svc-2.example"}) || raw[0] != " https://svc.example/ " {
		t.Errorf("ServiceURL %q (the loaded slice: %q)", id.ServiceURL, raw)
	}
	a := TeslaApp{Tesla: Tesla{TeslaFleetAPIURL: "https://fleet.example/"}, TeslaAuthURL: "https://auth.example/oauth2/v3/token/"}
	a.Normalize()
	if a.TeslaFleetAPIURL != "https://fleet.example" || a.TeslaAuthURL != "https://auth.example/oauth2/v3/token" {
		t.Errorf("normalized %+v", a)
	}
}
