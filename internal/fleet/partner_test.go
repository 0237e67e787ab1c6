package fleet

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

const partnerDomain = "app.example.com"

func newP256(t *testing.T) ([]byte, string) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes(), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// servedKey serves a mutable answer at PublicKeyPath.
type servedKey struct {
	srv      *httptest.Server
	mu       sync.Mutex
	status   int
	body     string
	location string
}

func newServedKey(t *testing.T, body string) *servedKey {
	t.Helper()
	sk := &servedKey{status: http.StatusOK, body: body}
	sk.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sk.mu.Lock()
		defer sk.mu.Unlock()
		if r.URL.Path != PublicKeyPath {
			http.NotFound(w, r)
			return
		}
		if sk.location != "" {
			w.Header().Set("Location", sk.location)
		}
		w.WriteHeader(sk.status)
		_, _ = w.Write([]byte(sk.body))
	}))
	t.Cleanup(sk.srv.Close)
	return sk
}

func (sk *servedKey) set(status int, body, location string) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	sk.status, sk.body, sk.location = status, body, location
}

// partnerSim is a simulator on loopback whose domains are served by sk.
func partnerSim(t *testing.T, sk *servedKey) (*fleetsim.Sim, string) {
	t.Helper()
	sim := fleetsim.New(fleetsim.Options{Clock: clock.NewManual(time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)),
		DomainBaseURL: func(string) string { return sk.srv.URL }})
	base, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim, base
}

func partnerAuth(base string) PartnerAuth {
	return PartnerAuth{TokenURL: base + "/oauth2/v3/token", ClientID: fleetsim.DefaultClientID, ClientSecret: fleetsim.DefaultClientSecret}
}

func TestPartnerToken(t *testing.T) {
	t.Parallel()
	_, base := partnerSim(t, newServedKey(t, ""))
	ctx := context.Background()
	tok, err := partnerAuth(base).Token(ctx, base+"/")
	if err != nil || tok.Token == "" || tok.ExpiresIn != 8*time.Hour {
		t.Fatalf("token: %+v %v", tok.ExpiresIn, err)
	}
	if s := tok.String() + " " + tok.GoString(); strings.Contains(s, tok.Token) {
		t.Errorf("String shows the token: %s", s)
	}
	for _, tc := range []struct {
		name     string
		auth     PartnerAuth
		audience string
		kind     error
	}{
		{"wrong secret", PartnerAuth{TokenURL: base + "/oauth2/v3/token", ClientID: fleetsim.DefaultClientID, ClientSecret: "WRONG-SECRET-MARK"}, base, ErrPartnerClient},
		{"wrong client", PartnerAuth{TokenURL: base + "/oauth2/v3/token", ClientID: "nobody", ClientSecret: fleetsim.DefaultClientSecret}, base, ErrPartnerClient},
		{"wrong audience", partnerAuth(base), RegionNA, ErrPartnerGrant},
		{"no audience", partnerAuth(base), "", ErrInvalidRequest},
		{"unreachable", PartnerAuth{TokenURL: "http://127.0.0.1:1/token", ClientID: "a", ClientSecret: "WRONG-SECRET-MARK"}, base, ErrUpstream},
	} {
		_, err := tc.auth.Token(ctx, tc.audience)
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
		}
		if err != nil && strings.Contains(err.Error(), "WRONG-SECRET-MARK") {
			t.Errorf("%s: the error shows the secret: %v", tc.name, err)
		}
	}
	if _, err := partnerAuth(base).Token(ctx, RegionNA); err == nil || !strings.Contains(err.Error(), "invalid_audience") {
		t.Errorf("invalid_audience not named: %v", err)
	}
}

func TestRegisterPartnerAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	point, pemText := newP256(t)
	sk := newServedKey(t, pemText)
	sim, base := partnerSim(t, sk)
	tok, err := partnerAuth(base).Token(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	c := New(base, tok)

	if _, err := c.PartnerPublicKey(ctx, partnerDomain); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("before registering: %v", err)
	}
	acc, err := c.RegisterPartner(ctx, partnerDomain)
	if err != nil || acc.Domain != partnerDomain || acc.ClientID != fleetsim.DefaultClientID || !bytes.Equal(acc.PublicKey, point) {
		t.Fatalf("register: %+v %v", acc, err)
	}
	if _, err := c.RegisterPartner(ctx, partnerDomain); err != nil {
		t.Errorf("again: %v", err)
	}
	held, err := c.PartnerPublicKey(ctx, partnerDomain)
	if err != nil || !bytes.Equal(held, point) {
		t.Errorf("public key %x %v", held, err)
	}

	_, otherPEM := newP256(t)
	for _, tc := range []struct {
		name   string
		domain string
		before func()
		kind   error
	}{
		{"scheme", "https://" + partnerDomain, nil, ErrInvalidDomain},
		{"key not served", "b.example.com", func() { sk.set(http.StatusFound, "", "https://x.example.com/") }, ErrKeyDownload},
		{"domain taken", "taken.example.com", func() {
			sk.set(http.StatusOK, pemText, "")
			_ = sim.RegisterOtherApp("other-app", "taken.example.com", []byte(otherPEM))
		}, ErrAlreadyTaken},
		{"account disabled", partnerDomain, func() {
			sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: 403, Body: `{"response":null,"error":"account disabled: EXCEEDED_LIMIT","error_description":""}`})
		}, ErrAccountDisabled},
		{"421", partnerDomain, func() {
			sim.InjectFault(fleetsim.EndpointPartnerAccounts, fleetsim.Fault{Status: 421, Body: `{"response":null,"error":"user out of region, use base URL: https://fleet-api.prd.na.vn.cloud.tesla.com","error_description":""}`})
		}, ErrWrongRegion},
	} {
		if tc.before != nil {
			tc.before()
		}
		_, err := c.RegisterPartner(ctx, tc.domain)
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
		}
		assertNoToken(t, err)
		if err != nil && strings.Contains(err.Error(), tok.Token) {
			t.Errorf("%s: the error shows the partner token", tc.name)
		}
		if tc.kind == ErrAccountDisabled && !AccountDisabled(err) {
			t.Errorf("AccountDisabled(%v) = false", err)
		}
	}

	// A user token on a partner endpoint.
	user := New(base, staticToken(sim.Login().AccessToken))
	if _, err := user.RegisterPartner(ctx, partnerDomain); !errors.Is(err, ErrPartnerTokenRequired) {
		t.Errorf("user token: %v", err)
	}
	// A partner token on a user endpoint.
	if _, err := c.Vehicles(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("partner token on /vehicles: %v", err)
	}
}

func TestDecodePublicKey(t *testing.T) {
	t.Parallel()
	point, pemText := newP256(t)
	der, _ := x509.MarshalPKIXPublicKey(mustECDH(t, point))
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der384, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"hex", hex.EncodeToString(point), true},
		{"hex with space", "  " + hex.EncodeToString(point) + "\n", true},
		{"pem", pemText, true},
		{"base64", base64.StdEncoding.EncodeToString(point), true},
		{"der hex", hex.EncodeToString(der), true},
		{"empty", "", false},
		{"short", hex.EncodeToString(point[:33]), false},
		{"off curve", "04" + strings.Repeat("11", 64), false},
		{"P-384 PEM", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der384})), false},
		{"private PEM", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", false},
	} {
		got, err := DecodePublicKey(tc.in)
		if tc.ok != (err == nil) || (tc.ok && !bytes.Equal(got, point)) {
			t.Errorf("%s: %x %v", tc.name, got, err)
		}
		if err != nil && !errors.Is(err, ErrPublicKeyInvalid) {
			t.Errorf("%s: %v is not ErrPublicKeyInvalid", tc.name, err)
		}
	}
}

func mustECDH(t *testing.T, point []byte) *ecdh.PublicKey {
	t.Helper()
	k, err := ecdh.P256().NewPublicKey(point)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestValidateDomain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		ok   bool
		hint string
	}{
		{"app.example.com", true, ""},
		{"a-b.c.example.co.uk", true, ""},
		{"https://app.example.com/", false, `give "app.example.com"`},
		{"app.example.com:443", false, `give "app.example.com"`},
		{"app.example.com/path", false, "not a bare host"},
		{"App.Example.com", false, `give "app.example.com"`},
		{"localhost", false, "not a host name"},
		{"-x.example.com", false, "not a host name"},
		{"", false, "empty"},
	} {
		err := ValidateDomain(tc.in)
		if tc.ok != (err == nil) || (err != nil && (!errors.Is(err, ErrInvalidDomain) || !strings.Contains(err.Error(), tc.hint))) {
			t.Errorf("ValidateDomain(%q) = %v", tc.in, err)
		}
	}
}

func TestFetchPublicKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	point, pemText := newP256(t)
	sk := newServedKey(t, pemText)
	got, err := FetchPublicKey(ctx, nil, sk.srv.URL+"/")
	if err != nil || !bytes.Equal(got, point) {
		t.Fatalf("fetch: %x %v", got, err)
	}
	for _, tc := range []struct {
		name           string
		status         int
		body, location string
		want           string
	}{
		{"redirect", http.StatusMovedPermanently, "", "https://elsewhere.example.com/k.pem", "redirect (HTTP 301"},
		{"missing", http.StatusNotFound, "", "", "HTTP 404"},
		{"too big", http.StatusOK, strings.Repeat(pemText, 10), "", "over 1024 bytes"},
		{"not PEM", http.StatusOK, hex.EncodeToString(point), "", "no PEM block"},
	} {
		sk.set(tc.status, tc.body, tc.location)
		_, err := FetchPublicKey(ctx, nil, sk.srv.URL)
		if !errors.Is(err, ErrKeyNotServed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := FetchPublicKey(ctx, nil, "http://127.0.0.1:1"); !errors.Is(err, ErrUpstream) {
		t.Errorf("unreachable: %v", err)
	}
}
