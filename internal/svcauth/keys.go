package svcauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/offpeak-charging/offpeak/internal/httpclient"
)

// DefaultGoogleCertsURL is where Google publishes the keys that sign its ID
// tokens, as a JWKS (the jwks_uri of https://accounts.google.com's OpenID
// configuration).
const DefaultGoogleCertsURL = "https://www.googleapis.com/oauth2/v3/certs"

// ErrKeysUnavailable: Google's signing keys could not be read, so a signed
// token could not be checked. Not the caller's fault: the middleware answers
// 503 and the caller retries.
var ErrKeysUnavailable = errors.New("google's ID-token signing keys are unavailable")

// Bounds of how long a fetched key set is kept. Google's certs endpoint
// answers Cache-Control: max-age of several hours; its keys are published
// well before they sign anything, and a token whose kid is unknown triggers
// one early refetch at most every minRefetch.
const (
	defaultKeysTTL = time.Hour
	minKeysTTL     = time.Minute
	maxKeysTTL     = 24 * time.Hour
	minRefetch     = time.Minute
	// retryWithoutKeys spaces fetches while no set was ever read.
	retryWithoutKeys = 5 * time.Second
	maxJWKSBytes     = 256 << 10
	keysTimeout      = 10 * time.Second
)

// GoogleKeys is a cache of the JWKS at a URL (Google's certs endpoint in
// production, a loopback fake in tests), kept for as long as the answer's
// Cache-Control max-age says. Safe for concurrent use.
//
// Why our own few lines over a library's verifier: google.golang.org/api's
// idtoken.Validator reads a fixed googleapis.com URL that no test can point
// at a fake; github.com/coreos/go-oidc's RemoteKeySet refetches the key set
// for every token whose signature fails (an attacker's flood of forged
// tokens becomes a flood of fetches) and ignores Cache-Control. Signature
// checking itself stays with github.com/go-jose/go-jose/v4 (jwt.ParseSigned
// with an algorithm allow-list).
type GoogleKeys struct {
	url    string
	client *http.Client
	now    func() time.Time

	mu        sync.Mutex
	keys      jose.JSONWebKeySet
	have      bool
	expires   time.Time // when the cached set must be fetched again
	lastFetch time.Time // last attempt, successful or not
	lastErr   error
}

// NewGoogleKeys reads keys from url ("" means DefaultGoogleCertsURL) with hc
// (nil: a client with a 10 s timeout); hc never follows redirects.
func NewGoogleKeys(url string, hc *http.Client) *GoogleKeys {
	if url == "" {
		url = DefaultGoogleCertsURL
	}
	if hc == nil {
		hc = httpclient.New(keysTimeout)
	}
	return &GoogleKeys{url: url, client: httpclient.NoRedirects(hc), now: time.Now}
}

// URL is where the keys are read.
func (g *GoogleKeys) URL() string { return g.url }

// Key returns the key with id kid. A set past its max-age is fetched again;
// if that fails, the old set serves until a fetch succeeds (retried at
// most every minRefetch), so a blip at Google does not lock every caller
// out. An unknown kid refetches early, at most every minRefetch.
func (g *GoogleKeys) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if (!g.have || !now.Before(g.expires)) && g.mayFetch(now) {
		g.fetch(ctx, now)
	}
	if k := g.find(kid); k != nil {
		return k, nil
	}
	if g.have && g.mayFetch(now) {
		g.fetch(ctx, now)
		if k := g.find(kid); k != nil {
			return k, nil
		}
	}
	if !g.have {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, g.lastErr)
	}
	return nil, fmt.Errorf("%w: no Google signing key has id %q", ErrUnauthenticated, kid)
}

// mayFetch spaces fetches: minRefetch apart while a set is cached,
// retryWithoutKeys apart while none is (every caller waits on those).
func (g *GoogleKeys) mayFetch(now time.Time) bool {
	if g.lastFetch.IsZero() {
		return true
	}
	gap := minRefetch
	if !g.have {
		gap = retryWithoutKeys
	}
	return now.Sub(g.lastFetch) >= gap
}

func (g *GoogleKeys) find(kid string) *jose.JSONWebKey {
	if !g.have {
		return nil
	}
	for _, k := range g.keys.Key(kid) {
		if k.Valid() && k.IsPublic() && (k.Use == "" || k.Use == "sig") {
			k := k
			return &k
		}
	}
	return nil
}

// fetch reads the set; on failure the cached set (if any) is kept.
func (g *GoogleKeys) fetch(ctx context.Context, now time.Time) {
	g.lastFetch = now
	set, ttl, err := g.get(ctx)
	if err != nil {
		g.lastErr = err
		return
	}
	g.keys, g.have, g.lastErr = set, true, nil
	g.expires = now.Add(ttl)
}

func (g *GoogleKeys) get(ctx context.Context) (jose.JSONWebKeySet, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, keysTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url, nil)
	if err != nil {
		return jose.JSONWebKeySet{}, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("GET %s: %w", g.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("GET %s: HTTP %d", g.url, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("GET %s: %w", g.url, err)
	}
	if len(data) > maxJWKSBytes {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("GET %s: key set larger than %d bytes", g.url, maxJWKSBytes)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("GET %s: not a JWKS: %w", g.url, err)
	}
	if len(set.Keys) == 0 {
		return jose.JSONWebKeySet{}, 0, fmt.Errorf("GET %s: the key set is empty", g.url)
	}
	return set, cacheTTL(resp.Header), nil
}

// cacheTTL reads Cache-Control's max-age (less Age), or Expires, within
// [minKeysTTL, maxKeysTTL]; no-store and no-cache mean the minimum.
func cacheTTL(h http.Header) time.Duration {
	ttl := time.Duration(-1)
	for _, directive := range strings.Split(h.Get("Cache-Control"), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(strings.ToLower(directive)), "=")
		switch name {
		case "no-store", "no-cache":
			return minKeysTTL
		case "max-age":
			if secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64); err == nil && secs >= 0 {
				ttl = time.Duration(secs) * time.Second
			}
		}
	}
	if ttl >= 0 {
		if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
			ttl -= time.Duration(age) * time.Second
		}
	} else if exp, err := http.ParseTime(h.Get("Expires")); err == nil {
		if date, err := http.ParseTime(h.Get("Date")); err == nil {
			ttl = exp.Sub(date)
		}
	}
	switch {
	case ttl < 0:
		return defaultKeysTTL
	case ttl < minKeysTTL:
		return minKeysTTL
	case ttl > maxKeysTTL:
		return maxKeysTTL
	}
	return ttl
}
