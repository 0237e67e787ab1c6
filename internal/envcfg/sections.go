package envcfg

import (
	"fmt"
	"net/url"
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

// CheckURL requires an absolute http(s) URL in the variable name.
func CheckURL(name, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http(s) URL", name, v)
	}
	return nil
}
