package svcauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// SignatureRemoved is what Cloud Run puts in place of the signature of an
// ID token it has verified before handing the request to the container.
const SignatureRemoved = "SIGNATURE_REMOVED_BY_GOOGLE"

// googleIssuers are the iss values of Google-signed ID tokens (Google's
// OpenID Connect documentation: "https://accounts.google.com or
// accounts.google.com").
var googleIssuers = []string{"https://accounts.google.com", "accounts.google.com"}

// clockSkew is the leeway on exp, nbf and iat.
const clockSkew = 30 * time.Second

// maxTokenBytes bounds what is parsed at all; Google's ID tokens are ~1 KiB.
const maxTokenBytes = 16 << 10

// googleClaims are the claims iam mode reads.
type googleClaims struct {
	jwt.Claims
	Email         string `json:"email"`
	EmailVerified any    `json:"email_verified"` // true, or "true" in some Google tokens
}

// verifyIDToken checks raw as iam mode requires and returns its claims.
// A signed token is verified with Google's keys wherever the service
// runs; a token whose signature Cloud Run removed is taken on Cloud Run's
// word, and only on Cloud Run. In both cases aud, iss, exp and
// email_verified must hold.
func (p Policy) verifyIDToken(ctx context.Context, raw string) (googleClaims, error) {
	var c googleClaims
	if len(raw) > maxTokenBytes {
		return c, fmt.Errorf("%w: token larger than %d bytes", ErrUnauthenticated, maxTokenBytes)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("%w: not a Google ID token (a JWS has three parts)", ErrUnauthenticated)
	}
	// RS256 only: alg "none", HS256 with the public key as secret and the
	// other classic forgeries fail right here.
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return c, fmt.Errorf("%w: not an RS256-signed JWT: %v", ErrUnauthenticated, err)
	}
	if parts[2] == SignatureRemoved {
		if !p.OnCloudRun {
			return c, fmt.Errorf("%w: the token's signature was removed, and off Cloud Run (K_SERVICE unset) nothing vouches for it", ErrUnauthenticated)
		}
		if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
			return c, fmt.Errorf("%w: unreadable claims: %v", ErrUnauthenticated, err)
		}
	} else {
		if p.Keys == nil {
			return c, fmt.Errorf("%w: no signing keys configured to verify a signed token", ErrUnauthenticated)
		}
		kid := tok.Headers[0].KeyID
		if kid == "" {
			return c, fmt.Errorf("%w: the token names no signing key (kid)", ErrUnauthenticated)
		}
		key, err := p.Keys.Key(ctx, kid)
		if err != nil {
			return c, err
		}
		if err := tok.Claims(key.Key, &c); err != nil {
			return c, fmt.Errorf("%w: bad signature: %v", ErrUnauthenticated, err)
		}
	}
	if err := p.checkClaims(c); err != nil {
		return c, err
	}
	return c, nil
}

func (p Policy) checkClaims(c googleClaims) error {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	if len(p.Audiences) == 0 {
		return fmt.Errorf("%w: this service has no audience configured", ErrUnauthenticated)
	}
	if !contains(googleIssuers, c.Issuer) {
		return fmt.Errorf("%w: issuer %q is not Google's", ErrUnauthenticated, c.Issuer)
	}
	if !audienceMatches(c.Audience, p.Audiences) {
		return fmt.Errorf("%w: audience %v is not this service (%v)", ErrUnauthenticated, []string(c.Audience), p.Audiences)
	}
	if c.Expiry == nil {
		return fmt.Errorf("%w: the token has no exp", ErrUnauthenticated)
	}
	err := c.Claims.ValidateWithLeeway(jwt.Expected{Time: now()}, clockSkew)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return fmt.Errorf("%w: the token expired at %s", ErrUnauthenticated, c.Expiry.Time().UTC().Format(time.RFC3339))
	case err != nil:
		return fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if v, ok := c.EmailVerified.(bool); !(ok && v) && c.EmailVerified != "true" {
		return fmt.Errorf("%w: email_verified is not true", ErrUnauthenticated)
	}
	return nil
}

// audienceMatches: one of the token's aud values is one of ours, a
// trailing slash aside (callers pass the base URL with or without one).
func audienceMatches(got jwt.Audience, ours []string) bool {
	for _, a := range got {
		for _, o := range ours {
			if a != "" && strings.TrimRight(a, "/") == strings.TrimRight(o, "/") {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
