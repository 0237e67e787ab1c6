// Package svcauthtest fakes the Google side of iam mode for tests: a JWKS
// served on loopback (what https://www.googleapis.com/oauth2/v3/certs
// answers) and ID tokens signed with its key, or with their signature
// replaced as Cloud Run forwards them.
package svcauthtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Issuer is Google's iss.
const Issuer = "https://accounts.google.com"

// Google serves a JWKS with one RS256 key and signs tokens with it.
type Google struct {
	CertsURL string // the JWKS URL: GOOGLE_CERTS_URL
	KeyID    string
	Key      *rsa.PrivateKey
	fetches  atomic.Int64
	failing  atomic.Bool
}

// NewGoogle starts the JWKS server for the test; it answers with
// Cache-Control max-age=maxAge seconds, as Google's does.
func NewGoogle(t testing.TB, maxAge int) *Google {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	g := &Google{KeyID: "test-key-1", Key: key}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: g.KeyID, Algorithm: "RS256", Use: "sig"}}}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.fetches.Add(1)
		if g.failing.Load() {
			http.Error(w, "backend error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.Header().Set("Cache-Control", "public, max-age="+itoa(maxAge)+", must-revalidate, no-transform")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	g.CertsURL = srv.URL
	return g
}

// Fetches is how many times the JWKS was asked for.
func (g *Google) Fetches() int { return int(g.fetches.Load()) }

// Fail makes the JWKS server answer 500 (or recover).
func (g *Google) Fail(fail bool) { g.failing.Store(fail) }

// Claims returns the claims of a valid token from email for audience at now.
func Claims(email, audience string, now time.Time) map[string]any {
	return map[string]any{
		"iss": Issuer, "aud": audience, "azp": "1234567890", "sub": "1234567890",
		"email": email, "email_verified": true,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// Sign returns claims as a JWT signed by the fake's key.
func (g *Google) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	return SignWith(t, g.Key, g.KeyID, claims)
}

// SignWith signs claims with any RSA key under kid (a forger's key, say).
func SignWith(t testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Stripped returns claims as Cloud Run forwards a verified token: header
// and payload intact, the signature replaced by SIGNATURE_REMOVED_BY_GOOGLE.
func (g *Google) Stripped(t testing.TB, claims map[string]any) string {
	t.Helper()
	signed := g.Sign(t, claims)
	return signed[:strings.LastIndex(signed, ".")] + ".SIGNATURE_REMOVED_BY_GOOGLE"
}

// Unsigned builds a token by hand with any header, e.g. {"alg":"none"},
// and signature (often "").
func Unsigned(t testing.TB, header, claims map[string]any, signature string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(claims) + "." + signature
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
