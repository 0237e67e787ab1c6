package svcauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/httpclient/httpclienttest"
	"github.com/offpeak-charging/offpeak/internal/svcauth/svcauthtest"
)

const (
	scoutSA   = "scout@proj.iam.gserviceaccount.com"
	workerURL = "https://offpeak-worker-123.europe-central2.run.app"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func iamPolicy(g *svcauthtest.Google, onCloudRun bool) Policy {
	return Policy{
		Mode: ModeIAM, AllowedInvokers: []string{scoutSA}, Audiences: []string{workerURL},
		Keys: NewGoogleKeys(g.CertsURL, nil), OnCloudRun: onCloudRun, Now: func() time.Time { return testNow },
	}
}

// claims is a valid token's claims with changes (nil deletes a claim).
func claims(changes map[string]any) map[string]any {
	c := svcauthtest.Claims(scoutSA, workerURL, testNow.Add(-time.Minute))
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func TestIAMModeVerifiesTheToken(t *testing.T) {
	t.Parallel()
	g := svcauthtest.NewGoogle(t, 3600)
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := g.Sign(t, claims(nil))
	head, _, _ := strings.Cut(valid, ".")
	otherPayload := strings.Split(g.Sign(t, claims(map[string]any{"email": "mallory@evil.example"})), ".")[1]
	forged1970 := svcauthtest.Unsigned(t, map[string]any{"alg": "none", "typ": "JWT"},
		map[string]any{"email": scoutSA, "exp": 0, "iss": svcauthtest.Issuer, "aud": workerURL}, "")

	cases := []struct {
		name       string
		onCloudRun bool
		token      string
		header     string // default Authorization
		status     int
	}{
		{"signed", false, valid, "", 200},
		{"signed in X-Serverless-Authorization", false, valid, "X-Serverless-Authorization", 200},
		{"signed on Cloud Run too", true, valid, "", 200},
		{"signed, other issuer spelling", false, g.Sign(t, claims(map[string]any{"iss": "accounts.google.com"})), "", 200},
		{"signed, aud list and trailing slash", false, g.Sign(t, claims(map[string]any{"aud": []string{"https://x.example", workerURL + "/"}})), "", 200},
		{"signed, email_verified as a string", false, g.Sign(t, claims(map[string]any{"email_verified": "true"})), "", 200},
		{"signed, inside the clock skew", false, g.Sign(t, claims(map[string]any{"exp": testNow.Add(-20 * time.Second).Unix()})), "", 200},
		{"signed, email not on the list", false, g.Sign(t, claims(map[string]any{"email": "mallory@evil.example"})), "", 403},

		{"forged alg none, exp 1970", false, forged1970, "", 401},
		{"forged alg none on Cloud Run", true, forged1970, "", 401},
		{"forged alg none, valid claims", true, svcauthtest.Unsigned(t, map[string]any{"alg": "none"}, claims(nil), ""), "", 401},
		{"forged alg none with the marker", true, svcauthtest.Unsigned(t, map[string]any{"alg": "none"}, claims(nil), SignatureRemoved), "", 401},
		{"HS256 forgery", false, svcauthtest.Unsigned(t, map[string]any{"alg": "HS256", "kid": g.KeyID}, claims(nil), "c2lnbmF0dXJl"), "", 401},
		{"expired", false, g.Sign(t, claims(map[string]any{"exp": testNow.Add(-time.Minute).Unix()})), "", 401},
		{"no exp", false, g.Sign(t, claims(map[string]any{"exp": nil})), "", 401},
		{"issued in the future", false, g.Sign(t, claims(map[string]any{"iat": testNow.Add(time.Hour).Unix(), "exp": testNow.Add(2 * time.Hour).Unix()})), "", 401},
		{"wrong audience", false, g.Sign(t, claims(map[string]any{"aud": "https://offpeak-scout-123.europe-central2.run.app"})), "", 401},
		{"no audience", false, g.Sign(t, claims(map[string]any{"aud": nil})), "", 401},
		{"wrong issuer", false, g.Sign(t, claims(map[string]any{"iss": "https://evil.example"})), "", 401},
		{"email not verified", false, g.Sign(t, claims(map[string]any{"email_verified": false})), "", 401},
		{"email_verified missing", false, g.Sign(t, claims(map[string]any{"email_verified": nil})), "", 401},
		{"no email", false, g.Sign(t, claims(map[string]any{"email": nil})), "", 401},
		{"bad signature: another key, same kid", false, svcauthtest.SignWith(t, forger, g.KeyID, claims(nil)), "", 401},
		{"bad signature on Cloud Run", true, svcauthtest.SignWith(t, forger, g.KeyID, claims(nil)), "", 401},
		{"bad signature: payload swapped", false, head + "." + otherPayload + "." + strings.Split(valid, ".")[2], "", 401},
		{"unknown kid", false, svcauthtest.SignWith(t, forger, "other-kid", claims(nil)), "", 401},
		{"no kid", false, svcauthtest.SignWith(t, forger, "", claims(nil)), "", 401},
		{"garbage", false, "not-a-jwt", "", 401},
		{"too long", false, strings.Repeat("a", maxTokenBytes+1), "", 401},

		{"stripped off Cloud Run", false, g.Stripped(t, claims(nil)), "", 401},
		{"stripped on Cloud Run", true, g.Stripped(t, claims(nil)), "", 200},
		{"stripped on Cloud Run, X-Serverless-Authorization", true, g.Stripped(t, claims(nil)), "X-Serverless-Authorization", 200},
		{"stripped on Cloud Run, not on the list", true, g.Stripped(t, claims(map[string]any{"email": "mallory@evil.example"})), "", 403},
		{"stripped on Cloud Run, expired", true, g.Stripped(t, claims(map[string]any{"exp": testNow.Add(-time.Hour).Unix()})), "", 401},
		{"stripped on Cloud Run, wrong audience", true, g.Stripped(t, claims(map[string]any{"aud": "https://elsewhere.example"})), "", 401},
		{"stripped on Cloud Run, wrong issuer", true, g.Stripped(t, claims(map[string]any{"iss": "https://evil.example"})), "", 401},
		{"stripped on Cloud Run, no exp", true, g.Stripped(t, claims(map[string]any{"exp": nil})), "", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			header := tc.header
			if header == "" {
				header = "Authorization"
			}
			caller := ""
			if tc.status == 200 {
				caller = scoutSA
			}
			checkMiddleware(t, iamPolicy(g, tc.onCloudRun), map[string]string{header: "Bearer " + tc.token}, tc.status, caller)
		})
	}
	t.Run("missing header", func(t *testing.T) {
		checkMiddleware(t, iamPolicy(g, true), nil, 401, "")
	})
}

func TestUnavailableKeysAnswer503(t *testing.T) {
	t.Parallel()
	g := svcauthtest.NewGoogle(t, 3600)
	g.Fail(true)
	p := iamPolicy(g, false)
	checkMiddleware(t, p, map[string]string{"Authorization": "Bearer " + g.Sign(t, claims(nil))}, 503, "")
	// A forged unsigned token is still a plain 401: no key is needed to refuse it.
	checkMiddleware(t, p, map[string]string{"Authorization": "Bearer " + g.Stripped(t, claims(nil))}, 401, "")
}

func TestKeysAreCachedAsCacheControlSays(t *testing.T) {
	t.Parallel()
	g := svcauthtest.NewGoogle(t, 600)
	keys := NewGoogleKeys(g.CertsURL, nil)
	var mu sync.Mutex
	now := testNow
	keys.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := context.Background()

	for i := 0; i < 5; i++ {
		if _, err := keys.Key(ctx, g.KeyID); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.Fetches(); n != 1 {
		t.Fatalf("fetches = %d after 5 lookups inside max-age, want 1", n)
	}
	// Unknown kids: none refetch a set just read; a minute later one early
	// refetch, then none for another minute.
	if _, err := keys.Key(ctx, "rotated-in"); !errors.Is(err, ErrUnauthenticated) || g.Fetches() != 1 {
		t.Fatalf("unknown kid right after a fetch: %v, fetches %d", err, g.Fetches())
	}
	advance(2 * time.Minute)
	for i := 0; i < 5; i++ {
		if _, err := keys.Key(ctx, "rotated-in"); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := g.Fetches(); n != 2 {
		t.Fatalf("fetches = %d after unknown kids, want 2", n)
	}
	advance(7 * time.Minute)
	if _, err := keys.Key(ctx, g.KeyID); err != nil || g.Fetches() != 2 {
		t.Fatalf("inside max-age: err %v, fetches %d", err, g.Fetches())
	}
	advance(4 * time.Minute) // past max-age=600 of the last fetch
	if _, err := keys.Key(ctx, g.KeyID); err != nil || g.Fetches() != 3 {
		t.Fatalf("past max-age: err %v, fetches %d, want a refetch", err, g.Fetches())
	}
	// Google fails: the old set keeps serving, refetched at most once a minute.
	g.Fail(true)
	advance(11 * time.Minute)
	for i := 0; i < 3; i++ {
		if _, err := keys.Key(ctx, g.KeyID); err != nil {
			t.Fatalf("stale set while Google fails: %v", err)
		}
	}
	if n := g.Fetches(); n != 4 {
		t.Errorf("fetches = %d while failing, want one attempt", n)
	}
}

func TestKeysWithoutAnySetAreUnavailable(t *testing.T) {
	t.Parallel()
	g := svcauthtest.NewGoogle(t, 600)
	g.Fail(true)
	keys := NewGoogleKeys(g.CertsURL, nil)
	if _, err := keys.Key(context.Background(), g.KeyID); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("err = %v, want ErrKeysUnavailable", err)
	}
	g.Fail(false)
	keys.now = func() time.Time { return time.Now().Add(10 * time.Second) }
	if _, err := keys.Key(context.Background(), g.KeyID); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestKeysAreNotReadThroughARedirect(t *testing.T) {
	t.Parallel()
	for _, status := range []int{302, 307, 308} {
		trap := httpclienttest.NewTrap(t, status)
		_, err := NewGoogleKeys(trap.URL+"/oauth2/v3/certs", nil).Key(context.Background(), "k")
		if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "not followed") {
			t.Errorf("%d: err = %v", status, err)
		}
		if len(trap.Seen()) != 0 {
			t.Errorf("%d: the key fetch followed the redirect", status)
		}
	}
}

func TestCacheTTL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		header map[string]string
		want   time.Duration
	}{
		{map[string]string{"Cache-Control": "public, max-age=19302, must-revalidate, no-transform"}, 19302 * time.Second},
		{map[string]string{"Cache-Control": "public, max-age=19302", "Age": "302"}, 19000 * time.Second},
		{map[string]string{"Cache-Control": "max-age=5"}, minKeysTTL},
		{map[string]string{"Cache-Control": "max-age=999999"}, maxKeysTTL},
		{map[string]string{"Cache-Control": "no-cache"}, minKeysTTL},
		{map[string]string{"Date": "Sun, 01 Mar 2026 12:00:00 GMT", "Expires": "Sun, 01 Mar 2026 14:00:00 GMT"}, 2 * time.Hour},
		{map[string]string{}, defaultKeysTTL},
		{map[string]string{"Cache-Control": "max-age=banana"}, defaultKeysTTL},
	}
	for _, tc := range cases {
		h := http.Header{}
		for k, v := range tc.header {
			h.Set(k, v)
		}
		if got := cacheTTL(h); got != tc.want {
			t.Errorf("cacheTTL(%v) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestWorkerClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{302, 307, 308} {
		trap := httpclienttest.NewTrap(t, status)
		p := Policy{Mode: ModeToken, Token: "local-shared-secret-0123456789"}
		c, err := NewClient(context.Background(), p, trap.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Post(trap.URL+"/run-cycle", "application/json", strings.NewReader(`{"vin":"x"}`))
		if resp != nil {
			resp.Body.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "not followed") {
			t.Errorf("%d: err = %v, want a refused redirect", status, err)
		}
		trap.AssertNothingLeaked(t, "local-shared-secret-0123456789")
	}
	// The unauthenticated client, too.
	trap := httpclienttest.NewTrap(t, 307)
	c, _ := NewClient(context.Background(), Policy{Mode: ModeNone}, trap.URL, &http.Client{})
	if resp, err := c.Get(trap.URL + "/x"); err == nil {
		resp.Body.Close()
		t.Error("mode none followed a redirect")
	}
}
