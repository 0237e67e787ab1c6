// Package fleetsim simulates the parts of Tesla this project talks to: the
// OAuth token endpoint (with Tesla's refresh-token rotation and 24-hour grace),
// the Fleet API's vehicle endpoints (with sleeping cars and billing counters),
// the charge-schedule commands as the signing proxy shapes them, and the
// car's side of the Vehicle Command Protocol: like a real Model 3/Y a car
// takes only signed commands (POST …/signed_command) from keys paired with
// it, and answers unsigned REST commands 403; a legacy car
// (CommandSigning "off") takes REST commands only. The partner side is
// there too: client-credentials partner tokens, partner_accounts
// registration of the app's domain (the simulator fetches the domain's
// public key), the 412 of an unregistered app, and the pairing link's
// effect (partner.go).
//
// Everything runs on an injected clock, so tests move a clock.Manual to let
// hours of token lifetime or car idling pass without sleeping. Time-driven
// changes (cars falling asleep, waking up, charging by their schedules,
// scripted trips) are applied lazily whenever the simulator looks at its
// clock: on every request and on Tick. The cars charge like a Tesla
// (charge.go): by the charge schedules that apply where they are plugged
// in, or at once where none does, at min(wall, car) kW × efficiency, up to
// the charge limit; driving uses energy per kilometre.
package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

// Defaults of Options.
const (
	DefaultClientID        = "sim-client-id"
	DefaultClientSecret    = "sim-client-secret"
	DefaultAccessTokenTTL  = 8 * time.Hour
	DefaultGrace           = 24 * time.Hour
	DefaultRefreshTokenTTL = 90 * 24 * time.Hour
	DefaultRegion          = "EU"
	DefaultSleepAfter      = 15 * time.Minute
	DefaultWakeDelay       = 20 * time.Second
	DefaultScope           = "openid offline_access user_data vehicle_device_data vehicle_location vehicle_cmds vehicle_charging_cmds"
	// UserID is the fixed `sub` of every token the simulator issues.
	UserID = "2d3b7f0e-6c1a-4f4e-9a57-5f0c0ffee001"
)

// Options configure a Sim. Zero values mean the defaults named per field.
type Options struct {
	// ClientID is checked on every token request (401 invalid_client if wrong);
	// default "sim-client-id".
	ClientID string
	// ClientSecret is checked when sent, and required for authorization_code;
	// default "sim-client-secret".
	ClientSecret string
	// Clock is the sim clock; default clock.Real{}.
	Clock clock.Clock
	// AccessTokenTTL is expires_in; default 8h.
	AccessTokenTTL time.Duration
	// Grace is how long the most recently used refresh token stays accepted
	// after its first use; default 24h.
	Grace time.Duration
	// RefreshTokenTTL is a refresh token's life from issue; default 90 days.
	RefreshTokenTTL time.Duration
	// Region is the ou_code claim, the refresh-token prefix and the
	// /users/region answer; default "EU".
	Region string
	// SleepAfter is the idle time after which an online car falls asleep; default 15 min.
	SleepAfter time.Duration
	// WakeDelay is the time between wake_up and the car being online;
	// default 20 s. Negative: online at the next request, for tests whose
	// manual clock stands still while a service waits for the wake.
	WakeDelay time.Duration
	// RevokeAccessOnRotate makes every refresh invalidate the access tokens
	// issued before it (Tesla's announced but unconfirmed policy).
	RevokeAccessOnRotate bool
	// RedirectURIs, when set, are the only redirect URIs the authorize
	// endpoint accepts; when empty any absolute http(s) URL is accepted.
	RedirectURIs []string
	// BaseURL is the URL the sim is reached at, used for the iss/aud claims
	// and the /users/region answer. Start sets it; set it yourself when you
	// serve Handler() elsewhere (otherwise each request's Host is used).
	BaseURL string
	// Location is the cars' time zone (vehicle_config.utc_offset, and the
	// local time their charge schedules' minutes are read in); default
	// Europe/Warsaw, or a fixed UTC+1 if the zone database is missing.
	Location *time.Location
	// ScheduleRadiusM is how near a car must be to a charge schedule's
	// position for the schedule to apply; default DefaultScheduleRadiusM
	// (150 m, UNCONFIRMED).
	ScheduleRadiusM float64
	// AppPublicKey is the app's registered public key (what Tesla fetched
	// from the app's .well-known URL at partner registration): fleet_status
	// lists a VIN in key_paired_vins when this key is paired with the car.
	// A 65-byte uncompressed P-256 point or a PEM "PUBLIC KEY" block (see
	// ParsePublicKey); an invalid key is logged and ignored. When unset, a
	// VIN counts as key-paired when any key is paired. See SetAppPublicKey.
	AppPublicKey []byte
	// MaxCommandTTL is how far ahead of the car's clock a signed command may
	// expire before the car refuses it with TIME_TO_LIVE_TOO_LONG; default
	// DefaultMaxCommandTTL (1 h).
	MaxCommandTTL time.Duration
	// RequireRegistration makes every Fleet API call with a user token
	// answer Tesla's 412 "Account <client_id> must be registered in the
	// current region …" until the app registered a domain with POST
	// /api/1/partner_accounts (or RegisterPartner) in this simulator, which
	// plays one region (evcc-io/evcc issue 19886). Default false: existing
	// setups need no registration step.
	RequireRegistration bool
	// DomainBaseURL maps a partner domain to the base URL its public key is
	// fetched from (at registration and at pairing), e.g. a loopback
	// httptest server; an empty answer, or a nil func, means
	// https://<domain>. The path is always PublicKeyPath.
	DomainBaseURL func(domain string) string
	// KeyFetchTimeout bounds one public-key fetch; default 10 s.
	KeyFetchTimeout time.Duration
	// KeyFetchClient fetches public keys; default an http.Client{} (the
	// timeout is KeyFetchTimeout). Redirects are never followed, whatever
	// the client says.
	KeyFetchClient *http.Client
	// PartnerTokenTTL is a partner token's expires_in; default 8 h.
	PartnerTokenTTL time.Duration
	// PartnerAudiences are Fleet API base URLs, besides this simulator's
	// own, that the client_credentials grant accepts as audience (other
	// simulated regions; see AllowAudience).
	PartnerAudiences []string
	// Logger may be nil.
	Logger *zap.Logger
}

// Sim is the simulator. All methods are safe for concurrent use.
type Sim struct {
	opts   Options
	clock  clock.Clock
	log    *zap.Logger
	mux    http.Handler
	closed chan struct{}

	urlMu  sync.RWMutex
	url    string
	server *http.Server
	closeO sync.Once

	// mu guards the token chain, authorization codes, access tokens, cars and scripts.
	mu       sync.Mutex
	chain    chainState
	codes    map[string]authCode
	access   map[string]accessToken
	accessOp int // issues since the last prune of expired access tokens
	cars     map[string]*car
	carOrder []string
	appKey   []byte // Options.AppPublicKey as a 65-byte point; nil when unset
	// partners are the partner_accounts registrations of this region, by domain.
	partners  map[string]*partnerAccount
	audiences []string // extra partner-token audiences (Options.PartnerAudiences, AllowAudience)
	keyClient *http.Client
	nextID    int64
	steps     []scheduledStep
	stepSeq   int

	faults   faultTable
	counters counterSet
}

// withDefaults fills every zero option with its default.
func (opts Options) withDefaults() Options {
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.RefreshTokenTTL <= 0 {
		opts.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	opts.Region = strings.ToUpper(opts.Region)
	if opts.SleepAfter <= 0 {
		opts.SleepAfter = DefaultSleepAfter
	}
	switch {
	case opts.WakeDelay == 0:
		opts.WakeDelay = DefaultWakeDelay
	case opts.WakeDelay < 0:
		opts.WakeDelay = 0
	}
	if opts.Location == nil {
		loc, err := time.LoadLocation("Europe/Warsaw")
		if err != nil {
			loc = time.FixedZone("CET", 3600)
		}
		opts.Location = loc
	}
	if opts.ScheduleRadiusM <= 0 {
		opts.ScheduleRadiusM = DefaultScheduleRadiusM
	}
	if opts.MaxCommandTTL <= 0 {
		opts.MaxCommandTTL = DefaultMaxCommandTTL
	}
	if opts.KeyFetchTimeout <= 0 {
		opts.KeyFetchTimeout = DefaultKeyFetchTimeout
	}
	if opts.PartnerTokenTTL <= 0 {
		opts.PartnerTokenTTL = DefaultPartnerTokenTTL
	}
	return opts
}

// New builds a simulator with no cars and no valid tokens.
func New(opts Options) *Sim {
	opts = opts.withDefaults()
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	var appKey []byte
	if len(opts.AppPublicKey) > 0 {
		k, err := ParsePublicKey(opts.AppPublicKey)
		if err != nil {
			log.Error("fleetsim: Options.AppPublicKey ignored", zap.Error(err))
		}
		appKey = k
	}
	s := &Sim{
		opts:   opts,
		clock:  opts.Clock,
		log:    log,
		closed: make(chan struct{}),
		url:    strings.TrimRight(opts.BaseURL, "/"),
		codes:  make(map[string]authCode),
		access: make(map[string]accessToken),
		cars:   make(map[string]*car),
		appKey: appKey,
		nextID: 1,

		partners:  make(map[string]*partnerAccount),
		keyClient: noRedirects(opts.KeyFetchClient),
	}
	for _, a := range opts.PartnerAudiences {
		s.audiences = append(s.audiences, strings.TrimRight(a, "/"))
	}
	s.faults.init()
	s.counters.reset()
	s.mux = s.routes()
	return s
}

// Handler returns the simulator's HTTP handler (token endpoint, Fleet API, /sim/ admin API).
func (s *Sim) Handler() http.Handler { return s.mux }

// Start listens on addr ("127.0.0.1:0" for tests) and serves in the
// background. It returns the base URL, e.g. "http://127.0.0.1:41234".
func (s *Sim) Start(addr string) (string, error) {
	s.urlMu.Lock()
	defer s.urlMu.Unlock()
	if s.server != nil {
		return "", errors.New("fleetsim: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("fleetsim: listen %s: %w", addr, err)
	}
	s.server = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.url = "http://" + ln.Addr().String()
	srv := s.server
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("fleetsim serve", zap.Error(err))
		}
	}()
	s.log.Info("fleetsim listening", zap.String("url", s.url))
	return s.url, nil
}

// Close stops the server started by Start, cutting open connections and
// releasing requests held by faults. It is safe to call more than once.
func (s *Sim) Close() error {
	s.closeO.Do(func() { close(s.closed) })
	s.urlMu.RLock()
	srv := s.server
	s.urlMu.RUnlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}

// URL is the base URL given by Start (or Options.BaseURL); empty before either.
func (s *Sim) URL() string {
	s.urlMu.RLock()
	defer s.urlMu.RUnlock()
	return s.url
}

// baseURL is the URL to put in claims and the region answer: the known URL,
// else the request's Host, else a placeholder.
func (s *Sim) baseURL(r *http.Request) string {
	if u := s.URL(); u != "" {
		return u
	}
	if r != nil && r.Host != "" {
		return "http://" + r.Host
	}
	return "http://fleetsim.invalid"
}

// now is the sim clock's time.
func (s *Sim) now() time.Time { return s.clock.Now() }

// Tick applies due script steps and sleep/wake transitions now.
func (s *Sim) Tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(s.now())
}

// noRedirects is a copy of c (or a default client) that never follows a
// redirect: Tesla and the phone take the key only from a 200.
func noRedirects(c *http.Client) *http.Client {
	out := &http.Client{}
	if c != nil {
		cp := *c
		out = &cp
	}
	out.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return out
}

// sleepCtx waits d of real time, or less if ctx ends or the sim closes.
func (s *Sim) sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.closed:
	}
}
