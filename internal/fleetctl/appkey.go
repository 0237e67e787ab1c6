package fleetctl

// What keygen, register and pair share: reading small secrets, the
// command key's public half, the app's domain, and the key its domain serves.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/secrets"
)

// readValue reads a secret's latest version as trimmed text; ok is false
// when the secret or its latest version does not exist (or is empty).
func readValue(ctx context.Context, store secrets.Store, name string) (value, version string, ok bool, err error) {
	v, err := store.Latest(ctx, name)
	if errors.Is(err, secrets.ErrNotFound) || errors.Is(err, secrets.ErrVersionUnavailable) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("read %s: %w", name, err)
	}
	value = strings.TrimSpace(string(v.Payload))
	return value, v.ID, value != "", nil
}

// appCredentials reads the app's client id and secret, which the
// client-credentials grant needs both of.
func appCredentials(ctx context.Context, store secrets.Store, cfg Config) (id, secret string, err error) {
	for _, it := range []struct {
		name string
		dst  *string
	}{{cfg.ClientIDSecret, &id}, {cfg.ClientSecretSecret, &secret}} {
		v, _, ok, err := readValue(ctx, store, it.name)
		if err != nil {
			return "", "", err
		}
		if !ok {
			return "", "", fmt.Errorf("secret %s is missing or empty: store your Tesla app's value from developer.tesla.com in it", it.name)
		}
		*it.dst = v
	}
	return id, secret, nil
}

// commandKey reads the command key (TESLA_PRIVATE_KEY_SECRET). Its errors
// never quote the secret.
func commandKey(ctx context.Context, store secrets.Store, cfg Config) (*carcmd.PrivateKey, error) {
	v, err := store.Latest(ctx, cfg.PrivateKeySecret)
	switch {
	case errors.Is(err, secrets.ErrNotFound), errors.Is(err, secrets.ErrVersionUnavailable):
		return nil, fmt.Errorf("%w: secret %s has no usable version: run fleetctl keygen (or store the Python system's key in it)", carcmd.ErrNoKey, cfg.PrivateKeySecret)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", cfg.PrivateKeySecret, err)
	}
	if len(bytes.TrimSpace(v.Payload)) == 0 {
		return nil, fmt.Errorf("%w: secret %s is empty: run fleetctl keygen (or store the Python system's key in it)", carcmd.ErrNoKey, cfg.PrivateKeySecret)
	}
	k, err := carcmd.ParsePrivateKey(v.Payload)
	if err != nil {
		return nil, fmt.Errorf("secret %s (version %s): %w", cfg.PrivateKeySecret, v.ID, err)
	}
	return k, nil
}

// fingerprint is the short, safe name of a public point: the first 16 hex
// digits of its SHA-256, as carcmd.PrivateKey.Fingerprint begins.
func fingerprint(point []byte) string {
	sum := sha256.Sum256(point)
	return hex.EncodeToString(sum[:])[:16]
}

// appDomain is --domain, else the domain secret (the Python system's
// tesla-domain, which register writes). from says which.
func (s *session) appDomain(ctx context.Context, store secrets.Store, flagValue string) (domain, from string, err error) {
	domain, from = strings.TrimSpace(flagValue), "--domain"
	if domain == "" {
		v, _, ok, err := readValue(ctx, store, s.cfg.DomainSecret)
		if err != nil {
			return "", "", err
		}
		if !ok {
			return "", "", usageError{fmt.Errorf("give --domain (the bare host of your app's Allowed Origin, e.g. app.example.com); secret %s holds none yet (fleetctl register stores it)", s.cfg.DomainSecret)}
		}
		domain, from = v, "secret "+s.cfg.DomainSecret
	}
	domain = strings.TrimSuffix(domain, ".")
	if err := fleet.ValidateDomain(domain); err != nil {
		return "", "", usageError{fmt.Errorf("%s: %w", from, err)}
	}
	return domain, from, nil
}

// domainBaseURL is where the domain's files are fetched from: the Runner's
// mapping (tests), else https://<domain>.
func (s *session) domainBaseURL(domain string) string {
	if s.runner.DomainBaseURL != nil {
		if u := s.runner.DomainBaseURL(domain); u != "" {
			return u
		}
	}
	return "https://" + domain
}

// keyURL is the public-key URL of domain as Tesla and the phone use it.
func keyURL(domain string) string { return "https://" + domain + fleet.PublicKeyPath }

// servedKey fetches the key the domain serves and compares it with ours.
// match is false with a nil error when it serves another key.
func (s *session) servedKey(ctx context.Context, domain string, ours []byte) (served []byte, match bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	served, err = fleet.FetchPublicKey(cctx, s.httpClient(), s.domainBaseURL(domain))
	if err != nil {
		return nil, false, err
	}
	return served, bytes.Equal(served, ours), nil
}
