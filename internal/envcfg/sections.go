package envcfg

import (
	"errors"
	"strings"

	"github.com/offpeak-charging/offpeak/internal/httpclient"
)

// The sections below are shared by the services' configurations (and
// fleetctl's). Each Validate reports every problem it finds and changes
// nothing; where a value is tidied (spaces, a trailing slash), Normalize
// does it, and the configuration that embeds the section calls it once,
// after Validate.

// Secrets selects the secret store.
type Secrets struct {
	Backend string `env:"SECRETS_BACKEND, default=file"`
	Dir     string `env:"SECRETS_DIR, default=.local/secrets"`
	Project string `env:"GOOGLE_CLOUD_PROJECT"`
}

// Validate checks the backend and what it needs. (A backend that is not
// known has no needs to check, so there is one problem at most.)
func (s Secrets) Validate() error {
	switch s.Backend {
	case "file":
		if s.Dir == "" {
			return Errorf("SECRETS_DIR", "required when SECRETS_BACKEND=file")
		}
	case "gcp":
		if s.Project == "" {
			return Errorf("GOOGLE_CLOUD_PROJECT", "required when SECRETS_BACKEND=gcp")
		}
	default:
		return Errorf("SECRETS_BACKEND", "%q is not one of file, gcp", s.Backend)
	}
	return nil
}

// State selects the store of small state objects (scout state, plan hashes,
// cycle leases).
type State struct {
	Backend string `env:"STATE_BACKEND, default=file"`
	Dir     string `env:"STATE_DIR, default=.local/state"`
	Bucket  string `env:"STATE_BUCKET"`
}

// Validate checks the backend and what it needs (one problem at most, as
// for Secrets).
func (s State) Validate() error {
	switch s.Backend {
	case "file":
		if s.Dir == "" {
			return Errorf("STATE_DIR", "required when STATE_BACKEND=file")
		}
	case "gcs":
		if s.Bucket == "" {
			return Errorf("STATE_BUCKET", "required when STATE_BACKEND=gcs")
		}
	default:
		return Errorf("STATE_BACKEND", "%q is not one of file, gcs", s.Backend)
	}
	return nil
}

// Home is where the car charges.
type Home struct {
	Lat     float64 `env:"HOME_LAT, required"`
	Lon     float64 `env:"HOME_LON, required"`
	RadiusM float64 `env:"HOME_RADIUS_M, default=100"`
}

// Validate checks that the position is a place and the radius a distance.
func (h Home) Validate() error {
	var problems []error
	latOK := h.Lat >= -90 && h.Lat <= 90
	lonOK := h.Lon >= -180 && h.Lon <= 180
	if !latOK {
		problems = append(problems, Errorf("HOME_LAT", "%v is not a latitude", h.Lat))
	}
	if !lonOK {
		problems = append(problems, Errorf("HOME_LON", "%v is not a longitude", h.Lon))
	}
	if latOK && lonOK && h.Lat == 0 && h.Lon == 0 {
		problems = append(problems, errors.New("HOME_LAT/HOME_LON: 0,0 is in the Gulf of Guinea; set your home's coordinates"))
	}
	if h.RadiusM <= 0 || h.RadiusM > 10000 {
		problems = append(problems, Errorf("HOME_RADIUS_M", "%v must be between 0 and 10000 metres", h.RadiusM))
	}
	return errors.Join(problems...)
}

// CheckURL requires, in the variable name, an absolute https URL, or http
// for a loopback host only (127.0.0.0/8, ::1, localhost): tokens, secrets
// and API keys never cross a network in clear text.
func CheckURL(name, v string) error {
	if err := httpclient.CheckURL(v); err != nil {
		return &VarError{Var: name, Err: err}
	}
	return nil
}

// BaseURL is a URL as the clients join paths to it: without a trailing slash.
func BaseURL(u string) string { return strings.TrimRight(u, "/") }

// IDToken is what a service in iam mode checks its callers' Google ID
// tokens against (internal/svcauth).
type IDToken struct {
	// ServiceURL is this service's own URL (or URLs: Cloud Run answers at
	// two, and callers may use either as the token's audience). Normalize
	// drops the spaces around each and its trailing slash, as a token's
	// audience has none.
	ServiceURL []string `env:"SERVICE_URL"`
	// GoogleCertsURL is where Google's signing keys (JWKS) are read; tests
	// point it at a loopback fake.
	GoogleCertsURL string `env:"GOOGLE_CERTS_URL, default=https://www.googleapis.com/oauth2/v3/certs"`
	// CloudRunService is K_SERVICE, which Cloud Run sets in every container.
	CloudRunService string `env:"K_SERVICE"`
}

// Validate checks every URL.
func (t IDToken) Validate() error {
	var problems []error
	for _, u := range t.ServiceURL {
		problems = append(problems, CheckURL("SERVICE_URL", strings.TrimSpace(u)))
	}
	problems = append(problems, CheckURL("GOOGLE_CERTS_URL", t.GoogleCertsURL))
	return errors.Join(problems...)
}

// Normalize trims the service URLs (see ServiceURL).
func (t *IDToken) Normalize() {
	urls := make([]string, len(t.ServiceURL))
	for i, u := range t.ServiceURL {
		urls[i] = BaseURL(strings.TrimSpace(u))
	}
	if t.ServiceURL != nil {
		t.ServiceURL = urls
	}
}

// OnCloudRun reports whether the process runs on Cloud Run.
func (t IDToken) OnCloudRun() bool { return t.CloudRunService != "" }
