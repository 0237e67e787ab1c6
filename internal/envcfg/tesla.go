package envcfg

import (
	"errors"
	"time"
)

// The token settings: the one place that says what each variable means
// and its default. The worker (the only writer of the token pair), the
// scout (a reader) and fleetctl (an operator's writer) embed these
// sections, so all three open the same secrets with the same rules.
//
// The field names are the variables' names in Go's spelling, which keeps
// them the same at every call site that reads them through the embedding
// (cfg.TeslaFleetAPIURL, cfg.FleetTokensSecret, …).

// Tesla is what everything that calls the Fleet API with the stored
// token pair needs: the worker, the scout and fleetctl.
type Tesla struct {
	// TeslaFleetAPIURL is the account's regional Fleet API host (Europe by
	// default; NA/APAC https://fleet-api.prd.na.vn.cloud.tesla.com, China
	// https://fleet-api.prd.cn.vn.cloud.tesla.cn). It is also the audience
	// a login asks tokens for. Normalize drops a trailing slash.
	TeslaFleetAPIURL string `env:"TESLA_FLEET_API_URL, default=https://fleet-api.prd.eu.vn.cloud.tesla.com"`
	// FleetTokensSecret holds the token pair (JSON, one version per pair).
	FleetTokensSecret string `env:"FLEET_TOKENS_SECRET, default=fleet-tokens"`
	// TokenRefreshBefore: an access token with less than this left is
	// refreshed (by the worker; the scout asks the worker to). Tesla's
	// access tokens live about 8 h.
	TokenRefreshBefore time.Duration `env:"TOKEN_REFRESH_BEFORE, default=30m"`
}

// Validate checks the URL, the secret name and the refresh margin.
func (t Tesla) Validate() error {
	var problems []error
	problems = append(problems, CheckURL("TESLA_FLEET_API_URL", t.TeslaFleetAPIURL))
	if t.FleetTokensSecret == "" {
		problems = append(problems, Errorf("FLEET_TOKENS_SECRET", "must not be empty"))
	}
	if t.TokenRefreshBefore <= 0 || t.TokenRefreshBefore >= 8*time.Hour {
		problems = append(problems, Errorf("TOKEN_REFRESH_BEFORE", "%s must be between 0 and 8h (access tokens live about 8 h)", t.TokenRefreshBefore))
	}
	return errors.Join(problems...)
}

// Normalize drops the Fleet API URL's trailing slash.
func (t *Tesla) Normalize() {
	t.TeslaFleetAPIURL = BaseURL(t.TeslaFleetAPIURL)
}

// TeslaApp is Tesla plus what writing the token pair and signing commands
// need: the app's registration and the command key. The worker and
// fleetctl read it; the scout, which only reads the pair, does not.
type TeslaApp struct {
	Tesla

	// TeslaAuthURL is Tesla's token endpoint (refresh, login, partner
	// tokens). Normalize drops a trailing slash.
	TeslaAuthURL string `env:"TESLA_AUTH_URL, default=https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"`
	// ClientIDSecret and ClientSecretSecret hold the app's client id and
	// secret from developer.tesla.com (a refresh needs the id; a login and
	// partner tokens both).
	ClientIDSecret     string `env:"TESLA_CLIENT_ID_SECRET, default=tesla-client-id"`
	ClientSecretSecret string `env:"TESLA_CLIENT_SECRET_SECRET, default=tesla-client-secret"`
	// LegacyRefreshTokenSecret holds the Python system's raw refresh token,
	// adopted once by a migration.
	LegacyRefreshTokenSecret string `env:"LEGACY_REFRESH_TOKEN_SECRET, default=tesla-refresh-token"`
	// TokenKeepVersions versions of the pair are kept whatever their age
	// (and besides them every one whose refresh token was spent less than
	// 25 h ago: Tesla's grace).
	TokenKeepVersions int `env:"TOKEN_KEEP_VERSIONS, default=3"`
	// PrivateKeySecret holds the owner's PEM P-256 command key; the default
	// is the Python system's secret, so its key and the cars' pairing carry
	// over.
	PrivateKeySecret string `env:"TESLA_PRIVATE_KEY_SECRET, default=tesla-private-key"`
}

// Validate checks Tesla, the token endpoint, the secret names and the
// number of versions kept.
func (a TeslaApp) Validate() error {
	problems := []error{a.Tesla.Validate(), CheckURL("TESLA_AUTH_URL", a.TeslaAuthURL)}
	for _, s := range []struct{ name, value string }{
		{"TESLA_CLIENT_ID_SECRET", a.ClientIDSecret},
		{"TESLA_CLIENT_SECRET_SECRET", a.ClientSecretSecret},
		{"LEGACY_REFRESH_TOKEN_SECRET", a.LegacyRefreshTokenSecret},
		{"TESLA_PRIVATE_KEY_SECRET", a.PrivateKeySecret},
	} {
		if s.value == "" {
			problems = append(problems, Errorf(s.name, "must not be empty"))
		}
	}
	if a.TokenKeepVersions < 1 {
		problems = append(problems, Errorf("TOKEN_KEEP_VERSIONS", "must be at least 1"))
	}
	return errors.Join(problems...)
}

// Normalize drops the URLs' trailing slashes.
func (a *TeslaApp) Normalize() {
	a.Tesla.Normalize()
	a.TeslaAuthURL = BaseURL(a.TeslaAuthURL)
}
