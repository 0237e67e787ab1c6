package carcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/teslamotors/vehicle-command/pkg/cache"
	"github.com/teslamotors/vehicle-command/pkg/protocol"
	universal "github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/universalmessage"
	"github.com/teslamotors/vehicle-command/pkg/vehicle"

	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleet"
)

// Errors of the signed path, tested with errors.Is. Each says what the
// operator does about it; none carries key material.
var (
	// ErrKeyNotPaired: the car does not know our public key (handshake
	// KEY_NOT_ON_WHITELIST or UNKNOWN_KEY_ID; vehicle-command
	// pkg/protocol/error.go ErrKeyNotPaired). Retrying cannot help.
	ErrKeyNotPaired = errors.New("the car does not know this app's key: pair it by opening " +
		"https://tesla.com/_ak/<your domain> in the Tesla app on the owner's phone (`fleetctl pair` prints the link)")
	// ErrKeyRejected: the car knows the key but refuses it: INACTIVE_KEY,
	// INSUFFICIENT_PRIVILEGES or REMOTE_ACCESS_DISABLED (universal_message.proto).
	ErrKeyRejected = errors.New("the car refuses this app's key (disabled key, too few privileges, " +
		"or mobile access turned off in the car): check Locks in the car, then pair again")
	// ErrSessionRejected: the car kept rejecting our signed messages
	// (signature, counter, epoch or expiry) after a fresh handshake.
	ErrSessionRejected = errors.New("the car rejected our signed session even after a new handshake")
	// ErrCarBusy: the car answered busy/waiting for the whole attempt.
	ErrCarBusy = errors.New("the car stayed busy")
)

// KeyLoader returns the PEM private key; an error wrapping ErrNoKey means
// there is none yet.
type KeyLoader func(ctx context.Context) ([]byte, error)

// SessionStore keeps a car's session cache between cycles and restarts.
// The blob holds counters, epochs and the car's public key, never a
// private key (vehicle-command pkg/cache; reference/vehicle-commands.md §3).
type SessionStore interface {
	LoadSessions(ctx context.Context, vin string) ([]byte, error) // nil, nil: none stored
	SaveSessions(ctx context.Context, vin string, blob []byte) error
}

// SignerConfig configures NewSigner. Zero durations take the defaults.
type SignerConfig struct {
	Transport Transport
	Key       KeyLoader
	// KeySecret names the key's secret in messages (TESLA_PRIVATE_KEY_SECRET).
	KeySecret string
	Sessions  SessionStore // nil: sessions live in memory only
	Clock     clock.Clock
	Logger    *zap.Logger
	// CommandTimeout bounds one command, handshake included; it also sets
	// the command's expiry on the car (vehicle-command
	// internal/dispatcher/session.go). Default 20 s.
	CommandTimeout time.Duration
	// RetryInterval is the pause before the library resends after a
	// temporary fault; default 1 s, as Tesla's own connector.
	RetryInterval time.Duration
	// KeyRetry is how long a missing or invalid key is believed before the
	// secret is read again; default 1 min.
	KeyRetry time.Duration
}

// Defaults of SignerConfig.
const (
	DefaultCommandTimeout = 20 * time.Second
	DefaultRetryInterval  = time.Second
	DefaultKeyRetry       = time.Minute
	// postsPerAttempt: the message, and one resend after the car attached
	// fresh session info to a sync fault (the library adopts it and resends;
	// reference/vehicle-commands.md §2).
	postsPerAttempt = 2
)

// Key states for /health.
const (
	KeyOK      = "ok"
	KeyMissing = "key_missing"
	KeyInvalid = "key_invalid"
	KeyUnknown = "not_loaded"
)

// Stats count signed_command requests, each billed (developer.tesla.com
// billing-and-limits).
type Stats struct {
	Requests   int64 // every POST to signed_command
	Handshakes int64 // session_info requests among them
	Commands   int64 // signed commands among them (resends included)
}

// Signer sends charge commands to cars signed with the owner's key over
// Tesla's Vehicle Command Protocol, using Tesla's own library
// (pkg/vehicle) over our connector. Commands to one car take turns, as
// tesla-http-proxy serialises them per VIN (pkg/proxy/proxy.go lockVIN):
// parallel commands with one cached counter cost extra resends.
type Signer struct {
	cfg SignerConfig
	log *zap.Logger

	keyMu    sync.Mutex
	key      *PrivateKey
	keyErr   error
	keyTried time.Time

	// vinMu guards the maps; a VIN's entries are used only under its lock.
	vinMu    sync.Mutex
	vinLocks map[string]*sync.Mutex
	sessions map[string]*cache.SessionCache // per VIN
	saved    map[string][]byte              // last blob stored per VIN

	requests, handshakes, commands atomic.Int64
}

// NewSigner builds a Signer; it reads nothing until the first command
// (or LoadKey).
func NewSigner(cfg SignerConfig) *Signer {
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.KeyRetry <= 0 {
		cfg.KeyRetry = DefaultKeyRetry
	}
	if cfg.KeySecret == "" {
		cfg.KeySecret = "tesla-private-key"
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Signer{cfg: cfg, log: log, vinLocks: map[string]*sync.Mutex{},
		sessions: map[string]*cache.SessionCache{}, saved: map[string][]byte{}}
}

// Stats returns the request counters.
func (s *Signer) Stats() Stats {
	return Stats{Requests: s.requests.Load(), Handshakes: s.handshakes.Load(), Commands: s.commands.Load()}
}

// LoadKey reads and parses the key now (the worker does so at start, so
// /health can tell a bad key before the first cycle).
func (s *Signer) LoadKey(ctx context.Context) error {
	_, err := s.privateKey(ctx, true)
	return err
}

// KeyState is one of KeyOK, KeyMissing, KeyInvalid, KeyUnknown.
func (s *Signer) KeyState() string {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	switch {
	case s.key != nil:
		return KeyOK
	case errors.Is(s.keyErr, ErrNoKey):
		return KeyMissing
	case errors.Is(s.keyErr, ErrKeyInvalid):
		return KeyInvalid
	}
	return KeyUnknown
}

// PublicKey is the loaded key's public half (nil before a key loaded).
func (s *Signer) PublicKey() *PrivateKey {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	return s.key
}

func (s *Signer) privateKey(ctx context.Context, force bool) (*PrivateKey, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	now := time.Now()
	if s.cfg.Clock != nil {
		now = s.cfg.Clock.Now()
	}
	if !force && s.keyErr != nil && now.Sub(s.keyTried) < s.cfg.KeyRetry {
		return nil, s.keyErr
	}
	s.keyTried = now
	pemBytes, err := s.cfg.Key(ctx)
	switch {
	case errors.Is(err, ErrNoKey):
		s.keyErr = fmt.Errorf("%w: secret %s has no key; run `fleetctl keygen` (or store a PEM key made with "+
			"`openssl ecparam -name prime256v1 -genkey -noout` as its new version), register it and pair it with the car; "+
			"or set TESLA_COMMAND_MODE=proxy with TESLA_COMMAND_URL for an external signer", ErrNoKey, s.cfg.KeySecret)
		return nil, s.keyErr
	case err != nil:
		// A store outage is not the key's fault: not remembered.
		return nil, fmt.Errorf("read private key %s: %w", s.cfg.KeySecret, err)
	}
	k, err := ParsePrivateKey(pemBytes)
	if err != nil {
		s.keyErr = fmt.Errorf("secret %s: %w; store a PEM P-256 key (SEC1 or PKCS#8) as its new version", s.cfg.KeySecret, err)
		return nil, s.keyErr
	}
	s.key, s.keyErr = k, nil
	s.log.Info("command key loaded", zap.String("key_sha256", k.Fingerprint))
	return k, nil
}

// reloadKey reads the key's secret again and reports whether it holds
// another key than old (which it then uses from now on).
func (s *Signer) reloadKey(ctx context.Context, old *PrivateKey) (*PrivateKey, bool) {
	pemBytes, err := s.cfg.Key(ctx)
	if err != nil {
		return old, false
	}
	k, err := ParsePrivateKey(pemBytes)
	if err != nil || k.Fingerprint == old.Fingerprint {
		return old, false
	}
	s.keyMu.Lock()
	s.key, s.keyErr = k, nil
	s.keyMu.Unlock()
	return k, true
}

func (s *Signer) lockVIN(vin string) func() {
	s.vinMu.Lock()
	l := s.vinLocks[vin]
	if l == nil {
		l = &sync.Mutex{}
		s.vinLocks[vin] = l
	}
	s.vinMu.Unlock()
	l.Lock()
	return l.Unlock
}

// AddChargeSchedule adds (same id: replaces) a schedule, signed.
func (s *Signer) AddChargeSchedule(ctx context.Context, vin string, sc charging.Schedule) error {
	if sc.ID <= 0 {
		return fmt.Errorf("charge schedule id %d: want a positive id: %w", sc.ID, fleet.ErrInvalidRequest)
	}
	cs := &vehicle.ChargeSchedule{
		Id: uint64(sc.ID), DaysOfWeek: int32(sc.DaysMask), StartTime: int32(sc.StartMin), EndTime: int32(sc.EndMin),
		Enabled: sc.Enabled, StartEnabled: sc.StartEnabled, EndEnabled: sc.EndEnabled, OneTime: sc.OneTime,
		Latitude: float32(sc.Lat), Longitude: float32(sc.Lon),
	}
	return s.do(ctx, vin, "add charge schedule", func(ctx context.Context, v *vehicle.Vehicle) error {
		return v.AddChargeSchedule(ctx, cs)
	})
}

// RemoveChargeSchedule removes one schedule by id, signed.
func (s *Signer) RemoveChargeSchedule(ctx context.Context, vin string, id int64) error {
	if id <= 0 {
		return fmt.Errorf("charge schedule id %d: want a positive id: %w", id, fleet.ErrInvalidRequest)
	}
	return s.do(ctx, vin, "remove charge schedule", func(ctx context.Context, v *vehicle.Vehicle) error {
		return v.RemoveChargeSchedule(ctx, uint64(id))
	})
}

// SetChargeLimit sets the charge limit in percent, signed.
func (s *Signer) SetChargeLimit(ctx context.Context, vin string, percent int) error {
	return s.do(ctx, vin, "set charge limit", func(ctx context.Context, v *vehicle.Vehicle) error {
		return v.ChangeChargeLimit(ctx, int32(percent))
	})
}

// Handshake starts a fresh session with the car's infotainment: the
// end-to-end check that the key is paired (1 request).
func (s *Signer) Handshake(ctx context.Context, vin string) error {
	unlock := s.lockVIN(vin)
	defer unlock()
	key, err := s.privateKey(ctx, false)
	if err != nil {
		return err
	}
	sc := cache.New(0)
	err = s.attempt(ctx, vin, key, sc, false, nil)
	if err == nil {
		s.setSessions(vin, sc)
		s.persist(ctx, vin, key, sc)
	}
	return err
}

// errStale marks an attempt that failed on a sync fault, worth one new handshake.
var errStale = errors.New("stale session")

// do runs one command: with the cached session if there is one (1 request
// when warm), else after a handshake (2); on a stale session, once more
// after a new handshake.
func (s *Signer) do(ctx context.Context, vin, what string, cmd func(context.Context, *vehicle.Vehicle) error) error {
	unlock := s.lockVIN(vin)
	defer unlock()
	key, err := s.privateKey(ctx, false)
	if err != nil {
		return err
	}
	sc, cached := s.sessionCache(ctx, vin, key)
	err = s.attempt(ctx, vin, key, sc, cached, cmd)
	if errors.Is(err, ErrKeyNotPaired) {
		// The owner may have stored a new key (fleetctl keygen --force) and
		// paired it while this instance kept the old one in memory.
		if fresh, changed := s.reloadKey(ctx, key); changed {
			s.log.Info("command key changed in the store: retrying with it", zap.String("vin", vin), zap.String("key_sha256", fresh.Fingerprint))
			key, sc = fresh, cache.New(0)
			err = s.attempt(ctx, vin, key, sc, false, cmd)
		}
	}
	if errors.Is(err, errStale) {
		s.log.Info("signed session stale: new handshake", zap.String("vin", vin), zap.String("command", what), zap.Error(err))
		sc = cache.New(0)
		err = s.attempt(ctx, vin, key, sc, false, cmd)
		if errors.Is(err, errStale) {
			err = fmt.Errorf("%w: %w", ErrSessionRejected, err)
		}
	}
	s.setSessions(vin, sc)
	s.persist(ctx, vin, key, sc)
	if err != nil {
		return fmt.Errorf("%s (signed): %w", what, err)
	}
	return nil
}

// attempt connects, handshakes unless cached, runs cmd (nil: handshake
// only) and keeps the sessions in sc.
func (s *Signer) attempt(ctx context.Context, vin string, key *PrivateKey, sc *cache.SessionCache, cached bool,
	cmd func(context.Context, *vehicle.Vehicle) error) error {
	conn := newConnection(vin, s.cfg.Transport, s.cfg.RetryInterval, s.cfg.CommandTimeout)
	v, err := vehicle.NewVehicle(conn, key.ecdh, sc)
	if err != nil {
		return fmt.Errorf("session cache for %s: %w", vin, err)
	}
	defer v.Disconnect()
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	defer cancel()
	if err := v.Connect(cctx); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer s.count(conn)
	if !cached {
		conn.begin(postsPerAttempt)
		if err := v.StartSession(cctx, []universal.Domain{universal.Domain_DOMAIN_INFOTAINMENT}); err != nil {
			return classify(err, conn.snapshot())
		}
		s.count(conn)
	}
	if cmd == nil {
		_ = v.UpdateCachedSessions(sc)
		return nil
	}
	conn.begin(postsPerAttempt)
	err = cmd(cctx, v)
	// The library adopts session info the car attaches to a sync fault:
	// keep it, success or not, so the next command starts from it.
	_ = v.UpdateCachedSessions(sc)
	if err != nil {
		return classify(err, conn.snapshot())
	}
	return nil
}

// count adds a connection's current operation to the totals once.
func (s *Signer) count(conn *connection) {
	conn.mu.Lock()
	st := conn.stats
	conn.stats.handshakes, conn.stats.commands = 0, 0
	conn.mu.Unlock()
	s.handshakes.Add(int64(st.handshakes))
	s.commands.Add(int64(st.commands))
	s.requests.Add(int64(st.handshakes + st.commands))
}

// syncFaults are the faults a fresh session can cure: bad tag, reused
// counter, new epoch after a reboot, expiry (protocol.md §Authorizing
// commands; the library marks them Temporary, pkg/protocol/error.go).
var syncFaults = map[universal.MessageFault_E]bool{
	universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_SIGNATURE:        true,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_INVALID_TOKEN_OR_COUNTER: true,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_INCORRECT_EPOCH:          true,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_TIME_EXPIRED:             true,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_TIME_TO_LIVE_TOO_LONG:    true,
}

var busyFaults = map[universal.MessageFault_E]bool{
	universal.MessageFault_E_MESSAGEFAULT_ERROR_BUSY:     true,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_TIMEOUT:  true,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_INTERNAL: true,
}

var keyFaults = map[universal.MessageFault_E]bool{
	universal.MessageFault_E_MESSAGEFAULT_ERROR_INACTIVE_KEY:            true,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_INSUFFICIENT_PRIVILEGES: true,
	universal.MessageFault_E_MESSAGEFAULT_ERROR_REMOTE_ACCESS_DISABLED:  true,
}

// classify turns the library's and the connector's errors into ours,
// keeping the Fleet client's kinds (asleep, 401, 429, outage) for errors.Is.
func classify(err error, st opStats) error {
	fault := st.lastFault
	var rme *protocol.RoutableMessageError
	if errors.As(err, &rme) {
		fault = rme.Code
	}
	switch {
	case errors.Is(err, protocol.ErrKeyNotPaired), fault == universal.MessageFault_E_MESSAGEFAULT_ERROR_UNKNOWN_KEY_ID:
		return ErrKeyNotPaired
	case errors.Is(err, fleet.ErrProtocolNotSupported):
		return err
	case errors.Is(err, fleet.ErrAsleep):
		return fmt.Errorf("%w: %w", charging.ErrAsleep, err)
	case st.lastErr != nil && errors.Is(err, st.lastErr):
		return err // the Fleet API's own answer: its kind says what to do
	case keyFaults[fault]:
		return fmt.Errorf("%w: %s", ErrKeyRejected, fault)
	case syncFaults[fault]:
		return fmt.Errorf("%w: the car answered %s", errStale, fault)
	case busyFaults[fault], st.waited, errors.Is(err, protocol.ErrBusy):
		return fmt.Errorf("%w: %s", ErrCarBusy, faultName(fault, "still waking or busy"))
	case protocol.IsNominalError(err):
		// The car authenticated the command and refused it (app layer).
		return fmt.Errorf("%w: %w", charging.ErrCommandRejected, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("no answer from the car in time: %w", err)
	}
	return fmt.Errorf("signed command: %w", err)
}

func faultName(f universal.MessageFault_E, otherwise string) string {
	if f == universal.MessageFault_E_MESSAGEFAULT_ERROR_NONE {
		return otherwise
	}
	return f.String()
}

// storedSessions is what SessionStore keeps per car: the library's
// exported cache and the fingerprint of the key it was made with (entries
// are keyed by VIN only, so a new key must not inherit them).
type storedSessions struct {
	KeySHA256 string          `json:"key_sha256"`
	Cache     json.RawMessage `json:"cache"`
}

// sessionCache returns the car's session cache: memory first, then the
// store; cached reports whether it holds a session to resume.
func (s *Signer) sessionCache(ctx context.Context, vin string, key *PrivateKey) (*cache.SessionCache, bool) {
	s.vinMu.Lock()
	sc, ok := s.sessions[vin]
	s.vinMu.Unlock()
	if ok {
		_, has := sc.GetEntry(vin)
		return sc, has
	}
	fresh := cache.New(0)
	if s.cfg.Sessions == nil {
		return fresh, false
	}
	blob, err := s.cfg.Sessions.LoadSessions(ctx, vin)
	if err != nil {
		s.log.Warn("session cache unreadable: handshaking", zap.String("vin", vin), zap.Error(err))
		return fresh, false
	}
	if blob == nil {
		return fresh, false
	}
	var st storedSessions
	if err := json.Unmarshal(blob, &st); err != nil || st.KeySHA256 != key.Fingerprint {
		return fresh, false
	}
	sc, err = cache.Import(bytes.NewReader(st.Cache))
	// Import("{}") leaves a nil map and the next Update panics
	// (reference/vehicle-commands.md §3): start fresh instead.
	if err != nil || sc.Vehicles == nil {
		return fresh, false
	}
	s.setSaved(vin, blob)
	_, has := sc.GetEntry(vin)
	return sc, has
}

// persist stores the car's sessions if they changed; a failure costs a
// handshake later, never a command, so it is only logged.
func (s *Signer) persist(ctx context.Context, vin string, key *PrivateKey, sc *cache.SessionCache) {
	if s.cfg.Sessions == nil {
		return
	}
	var buf bytes.Buffer
	if err := sc.Export(&buf); err != nil {
		return
	}
	blob, err := json.Marshal(storedSessions{KeySHA256: key.Fingerprint, Cache: bytes.TrimSpace(buf.Bytes())})
	s.vinMu.Lock()
	last := s.saved[vin]
	s.vinMu.Unlock()
	if err != nil || bytes.Equal(blob, last) {
		return
	}
	if err := s.cfg.Sessions.SaveSessions(context.WithoutCancel(ctx), vin, blob); err != nil {
		s.log.Warn("session cache not stored", zap.String("vin", vin), zap.Error(err))
		return
	}
	s.setSaved(vin, blob)
}

func (s *Signer) setSessions(vin string, sc *cache.SessionCache) {
	s.vinMu.Lock()
	defer s.vinMu.Unlock()
	s.sessions[vin] = sc
}

func (s *Signer) setSaved(vin string, blob []byte) {
	s.vinMu.Lock()
	defer s.vinMu.Unlock()
	s.saved[vin] = blob
}
