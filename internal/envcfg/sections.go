package envcfg

import (
	"fmt"
	"strings"

	"github.com/offpeak-charging/offpeak/internal/httpclient"
)

// The sections below are shared by the worker's and the scout's
// configuration, so the two read the same variables with the same defaults
// and reject the same mistakes with the same words.

// Secrets selects the secret store.
type Secrets struct {
	Backend string `env:"SECRETS_BACKEND, default=file"`
	Dir     string `env:"SECRETS_DIR, default=.local/secrets"`
	Project string `env:"GOOGLE_CLOUD_PROJECT"`
}

// Validate checks the backend and what it needs.
func (s Secrets) Validate() error {
	switch s.Backend {
	case "file":
		if s.Dir == "" {
			return fmt.Errorf("SECRETS_DIR: required when SECRETS_BACKEND=file")
		}
	case "gcp":
		if s.Project == "" {
			return fmt.Errorf("GOOGLE_CLOUD_PROJECT: required when SECRETS_BACKEND=gcp")
		}
	default:
		return fmt.Errorf("SECRETS_BACKEND: %q is not one of file, gcp", s.Backend)
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

// Validate checks the backend and what it needs.
func (s State) Validate() error {
	switch s.Backend {
	case "file":
		if s.Dir == "" {
			return fmt.Errorf("STATE_DIR: required when STATE_BACKEND=file")
		}
	case "gcs":
		if s.Bucket == "" {
			return fmt.Errorf("STATE_BUCKET: required when STATE_BACKEND=gcs")
		}
	default:
		return fmt.Errorf("STATE_BACKEND: %q is not one of file, gcs", s.Backend)
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
	switch {
	case h.Lat < -90 || h.Lat > 90:
		return fmt.Errorf("HOME_LAT: %v is not a latitude", h.Lat)
	case h.Lon < -180 || h.Lon > 180:
		return fmt.Errorf("HOME_LON: %v is not a longitude", h.Lon)
	case h.Lat == 0 && h.Lon == 0:
		return fmt.Errorf("HOME_LAT/HOME_LON: 0,0 is in the Gulf of Guinea; set your home's coordinates")
	case h.RadiusM <= 0 || h.RadiusM > 10000:
		return fmt.Errorf("HOME_RADIUS_M: %v must be between 0 and 10000 metres", h.RadiusM)
	}
	return nil
}

// CheckURL requires, in the variable name, an absolute https URL, or http
// for a loopback host only (127.0.0.0/8, ::1, localhost): tokens, secrets
// and API keys never cross a network in clear text.
func CheckURL(name, v string) error {
	if err := httpclient.CheckURL(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// IDToken is what a service in iam mode checks its callers' Google ID
// tokens against (internal/svcauth).
type IDToken struct {
	// ServiceURL is this service's own URL (or URLs: Cloud Run answers at
	// two, and callers may use either as the token's audience).
	ServiceURL []string `env:"SERVICE_URL"`
	// GoogleCertsURL is where Google's signing keys (JWKS) are read; tests
	// point it at a loopback fake.
	GoogleCertsURL string `env:"GOOGLE_CERTS_URL, default=https://www.googleapis.com/oauth2/v3/certs"`
	// CloudRunService is K_SERVICE, which Cloud Run sets in every container.
	CloudRunService string `env:"K_SERVICE"`
}

// Validate checks the URLs and trims their trailing slashes.
func (t *IDToken) Validate() error {
	for i, u := range t.ServiceURL {
		u = strings.TrimSpace(u)
		if err := CheckURL("SERVICE_URL", u); err != nil {
			return err
		}
		t.ServiceURL[i] = strings.TrimRight(u, "/")
	}
	return CheckURL("GOOGLE_CERTS_URL", t.GoogleCertsURL)
}

// OnCloudRun reports whether the process runs on Cloud Run.
func (t IDToken) OnCloudRun() bool { return t.CloudRunService != "" }
