// Package svcauth authenticates calls between the services: who may call the
// worker (and the scout), and how the scout proves who it is when it calls
// the worker.
//
// Modes:
//   - iam: the caller sends a Google ID token. A token that carries its
//     signature is verified (RS256 against Google's published keys, aud
//     this service's own URL, iss Google, exp, email_verified), wherever
//     the service runs. Cloud Run, once it has verified a token itself,
//     hands it on with the signature replaced by SIGNATURE_REMOVED_BY_GOOGLE,
//     so the container cannot verify it again (Cloud Run's documentation:
//     https://cloud.google.com/run/docs/authenticating/service-to-service,
//     and https://cloud.google.com/run/docs/troubleshooting#signature-removed);
//     such a token is accepted only on Cloud Run (K_SERVICE set), and only
//     if its exp, iss and aud hold. Anywhere else it is rejected: there
//     nothing vouches for it. Then the email claim must be on the allow-list.
//   - token: a static bearer token, compared in constant time. For local
//     runs and hosting outside Google.
//   - none: no check at all. Only when chosen explicitly; logged loudly.
package svcauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/api/idtoken"

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/server"
)

// Mode is an authentication mode.
type Mode string

// Modes.
const (
	ModeIAM   Mode = "iam"
	ModeToken Mode = "token"
	ModeNone  Mode = "none"
)

// ParseMode validates a mode name; varName is named in the error.
func ParseMode(varName, s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeIAM, ModeToken, ModeNone:
		return m, nil
	default:
		return "", fmt.Errorf("%s: %q is not one of iam, token, none", varName, s)
	}
}

// Policy says who may call.
type Policy struct {
	Mode            Mode
	AllowedInvokers []string // iam: service-account emails
	Token           string   // token: the shared bearer

	// iam mode: what a Google ID token must hold and how it is checked.
	Audiences []string // this service's own URL(s): a token's aud must be one of them
	// Keys verifies signatures (Google's JWKS); nil rejects every signed
	// token, which leaves only Cloud Run's signature-stripped ones.
	Keys *GoogleKeys
	// OnCloudRun: the process runs on Cloud Run (K_SERVICE is set), whose
	// front end has verified the token before stripping its signature.
	OnCloudRun bool
	// Now is the clock for exp; nil means time.Now.
	Now func() time.Time
}

// Validate checks that the mode has what it needs; the names are the
// environment variables' of the service (passed in so the message names them).
func (p Policy) Validate(invokersVar, tokenVar, audienceVar string) error {
	switch p.Mode {
	case ModeIAM:
		if len(p.AllowedInvokers) == 0 {
			return fmt.Errorf("%s: required when the mode is iam (comma-separated service-account emails)", invokersVar)
		}
		if len(p.Audiences) == 0 {
			return fmt.Errorf("%s: required when the mode is iam: this service's own URL, which callers' ID tokens must name as audience", audienceVar)
		}
		for _, a := range p.Audiences {
			if err := httpclient.CheckURL(a); err != nil {
				return fmt.Errorf("%s: %w", audienceVar, err)
			}
		}
		if p.Keys == nil && !p.OnCloudRun {
			// Off Cloud Run only a signature vouches for a token.
			return errors.New("GOOGLE_CERTS_URL: iam mode off Cloud Run (K_SERVICE unset) needs Google's signing keys to verify ID tokens")
		}
	case ModeToken:
		if len(p.Token) < 16 {
			return fmt.Errorf("%s: required when the mode is token, at least 16 characters", tokenVar)
		}
	case ModeNone:
	default:
		return fmt.Errorf("unknown auth mode %q", p.Mode)
	}
	return nil
}

// Errors of Check, mapped to 401 and 403 (and ErrKeysUnavailable to 503).
var (
	ErrUnauthenticated = errors.New("missing or invalid credentials")
	ErrForbidden       = errors.New("caller is not allowed")
)

// Check authenticates one request and returns the caller's identity (an
// email in iam mode, "token" or "anonymous" otherwise).
func (p Policy) Check(r *http.Request) (string, error) {
	switch p.Mode {
	case ModeNone:
		return "anonymous", nil
	case ModeToken:
		got, ok := bearer(r.Header.Get("Authorization"))
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(p.Token)) != 1 {
			return "", ErrUnauthenticated
		}
		return "token", nil
	case ModeIAM:
		// Cloud Run accepts the ID token in X-Serverless-Authorization too,
		// leaving Authorization to the application; prefer it when present.
		raw, ok := bearer(r.Header.Get("X-Serverless-Authorization"))
		if !ok {
			raw, ok = bearer(r.Header.Get("Authorization"))
		}
		if !ok {
			return "", ErrUnauthenticated
		}
		claims, err := p.verifyIDToken(r.Context(), raw)
		if err != nil {
			return "", err
		}
		email := claims.Email
		if email == "" {
			return "", fmt.Errorf("%w: ID token has no email claim", ErrUnauthenticated)
		}
		for _, allowed := range p.AllowedInvokers {
			if strings.EqualFold(strings.TrimSpace(allowed), email) {
				return email, nil
			}
		}
		return "", fmt.Errorf("%w: %s", ErrForbidden, email)
	}
	return "", ErrUnauthenticated
}

// Middleware enforces the policy with the error shape: 401 for missing or
// bad credentials, 403 for a caller not on the list.
func (p Policy) Middleware(logger *zap.Logger) func(http.Handler) http.Handler {
	if p.Mode == ModeNone {
		logger.Warn("caller authentication is OFF (auth mode none): anyone who can reach this service can call it")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			who, err := p.Check(r)
			switch {
			case errors.Is(err, ErrForbidden):
				logger.Warn("caller not on the allow-list", zap.Error(err))
				server.WriteError(w, http.StatusForbidden, contract.CodeForbidden, "caller is not allowed to call this service")
				return
			case errors.Is(err, ErrKeysUnavailable):
				logger.Error("cannot verify the caller's ID token", zap.Error(err))
				server.WriteRetryableError(w, http.StatusServiceUnavailable, contract.CodeUpstreamUnavailable,
					"cannot verify the caller's ID token now: Google's signing keys are unavailable", time.Minute)
				return
			case err != nil:
				// The reason is logged, never answered: it would coach a forger.
				logger.Warn("caller not authenticated", zap.Error(err))
				w.Header().Set("WWW-Authenticate", `Bearer realm="offpeak"`)
				server.WriteError(w, http.StatusUnauthorized, contract.CodeUnauthorized, "missing or invalid credentials")
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, who)))
		})
	}
}

type callerKey struct{}

// Caller returns the authenticated caller stored by Middleware.
func Caller(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// NewClient returns an HTTP client that authenticates as the policy's mode
// requires when calling a service at audience (its base URL): a Google ID
// token in iam mode (from the metadata server on Cloud Run), the static
// bearer in token mode, nothing in none. It follows no redirect: its
// transport puts the credential on every request it sends, wherever to.
func NewClient(ctx context.Context, p Policy, audience string, base *http.Client) (*http.Client, error) {
	if base == nil {
		base = &http.Client{}
	}
	switch p.Mode {
	case ModeIAM:
		c, err := idtoken.NewClient(ctx, audience)
		if err != nil {
			return nil, fmt.Errorf("google ID token client for %s: %w", audience, err)
		}
		c.Timeout = base.Timeout
		return httpclient.NoRedirects(c), nil
	case ModeToken:
		inner := base.Transport
		if inner == nil {
			inner = http.DefaultTransport
		}
		return httpclient.NoRedirects(&http.Client{Timeout: base.Timeout, Transport: bearerTransport{token: p.Token, inner: inner}}), nil
	default:
		return httpclient.NoRedirects(base), nil
	}
}

type bearerTransport struct {
	token string
	inner http.RoundTripper
}

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.inner.RoundTrip(r)
}
