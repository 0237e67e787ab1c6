// Package pubkey is the public-key service: the one public endpoint of the
// deployment. It serves the public half of the owner's command key at the
// path Tesla fetches it from when an app's domain is registered, and the
// owner's phone fetches it from when a car is paired:
//
//	GET https://<domain>/.well-known/appspecific/com.tesla.3p.public-key.pem
//
// The key is derived from the private key in the secret store (the one the
// worker signs with), read at start and again when it is older than
// PUBLIC_KEY_REFRESH. Only the public PEM is kept; the private key is parsed,
// reduced to its public half and dropped. Nothing else is served.
package pubkey

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// Why no public key can be served. Their text never carries key material.
var (
	// ErrNoKey: the secret does not exist, has no version, or its latest
	// version is disabled or destroyed.
	ErrNoKey = errors.New("no command key is stored")
	// ErrKeyInvalid: the latest version is not a PEM P-256 private key.
	ErrKeyInvalid = errors.New("the stored command key is not a PEM P-256 private key")
	// ErrStore: the store could not be read (unavailable, permission denied).
	ErrStore = errors.New("the key store could not be read")
)

// SecretReader is the one call the loader needs; every secrets.Store has it.
type SecretReader interface {
	Latest(ctx context.Context, secret string) (secrets.Version, error)
}

// Public is the key being served.
type Public struct {
	PEM         []byte // PKIX "PUBLIC KEY" PEM, what Tesla and the phone fetch
	Fingerprint string // hex SHA-256 of the uncompressed point, safe to log
	Version     string // the secret version it came from
}

// KeysConfig configures Keys. Zero durations take the defaults.
type KeysConfig struct {
	Secret string // the private key's secret, e.g. tesla-private-key
	// Refresh: a key read this long ago is read again on the next request.
	// Default 10 minutes.
	Refresh time.Duration
	// Retry: after a failed read, the next read waits at least this long,
	// however many requests arrive (the endpoint is public: requests must
	// not turn into billed Secret Manager accesses). Default 30 s.
	Retry time.Duration
	// Timeout bounds one read. Default 10 s.
	Timeout time.Duration
	Clock   clock.Clock
	Logger  *zap.Logger
}

// Keys reads the private key from the store and keeps its public half. It
// is safe for concurrent use; at most one read is in flight, and requests
// that arrive meanwhile get the answer already held.
type Keys struct {
	store SecretReader
	cfg   KeysConfig

	mu      sync.Mutex
	pub     Public // zero PEM when none
	err     error  // why pub is empty; nil when pub is set
	next    time.Time
	loading bool
}

// NewKeys returns a loader that has not read anything yet: call Load.
func NewKeys(store SecretReader, cfg KeysConfig) *Keys {
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Minute
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Keys{store: store, cfg: cfg, err: fmt.Errorf("%w: not read yet", ErrNoKey)}
}

// Load reads the key now, whatever the schedule, and reports what it found.
func (k *Keys) Load(ctx context.Context) (Public, error) {
	k.mu.Lock()
	k.loading = true
	k.mu.Unlock()
	return k.load(ctx)
}

// Current is the key to serve, read again first when it is due. A read
// that fails for a passing reason (the store unavailable, a permission
// problem) keeps serving the key read before; a key that is gone or
// invalid stops being served.
func (k *Keys) Current(ctx context.Context) (Public, error) {
	k.mu.Lock()
	if k.loading || k.cfg.Clock.Now().Before(k.next) {
		pub, err := k.pub, k.err
		k.mu.Unlock()
		return pub, err
	}
	k.loading = true
	k.mu.Unlock()
	return k.load(ctx)
}

// load reads and parses the key; the caller has set k.loading.
func (k *Keys) load(ctx context.Context) (Public, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.cfg.Timeout)
	defer cancel()
	pub, err := k.read(ctx)
	now := k.cfg.Clock.Now()

	k.mu.Lock()
	defer k.mu.Unlock()
	k.loading = false
	log := k.cfg.Logger.With(zap.String("secret", k.cfg.Secret))
	switch {
	case err == nil:
		if pub.Fingerprint != k.pub.Fingerprint {
			log.Info("serving the public key", zap.String("fingerprint", pub.Fingerprint), zap.String("secret_version", pub.Version))
		}
		k.pub, k.err, k.next = pub, nil, now.Add(k.cfg.Refresh)
	case errors.Is(err, ErrStore) && k.pub.PEM != nil:
		log.Warn("could not read the key again; still serving the one read before",
			zap.String("fingerprint", k.pub.Fingerprint), zap.Error(err))
		k.next = now.Add(k.cfg.Retry)
	default:
		if k.pub.PEM != nil || k.err == nil || k.err.Error() != err.Error() {
			log.Warn("no public key to serve", zap.Error(err))
		}
		k.pub, k.err, k.next = Public{}, err, now.Add(k.cfg.Retry)
	}
	return k.pub, k.err
}

func (k *Keys) read(ctx context.Context) (Public, error) {
	v, err := k.store.Latest(ctx, k.cfg.Secret)
	switch {
	case errors.Is(err, secrets.ErrNotFound) || errors.Is(err, secrets.ErrVersionUnavailable):
		return Public{}, fmt.Errorf("%w in secret %s (fleetctl keygen stores one): %w", ErrNoKey, k.cfg.Secret, err)
	case err != nil:
		return Public{}, fmt.Errorf("%w: secret %s: %w", ErrStore, k.cfg.Secret, err)
	}
	priv, err := carcmd.ParsePrivateKey(v.Payload)
	if err != nil {
		// carcmd's errors never quote the input.
		return Public{}, fmt.Errorf("%w: secret %s version %s: %w", ErrKeyInvalid, k.cfg.Secret, v.ID, err)
	}
	pem := priv.PublicPEM()
	if pem == nil {
		return Public{}, fmt.Errorf("%w: secret %s version %s: no public half", ErrKeyInvalid, k.cfg.Secret, v.ID)
	}
	return Public{PEM: pem, Fingerprint: priv.Fingerprint, Version: v.ID}, nil
}
