package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/offpeak-charging/offpeak/internal/httpclient"
)

// DefaultTokenURL is Tesla's current token endpoint (fleet-auth host; Tesla
// asked partners to leave auth.tesla.com from August 2025).
const DefaultTokenURL = "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"

// DefaultAuthorizeURL is where the browser step of a login starts.
const DefaultAuthorizeURL = "https://auth.tesla.com/oauth2/v3/authorize"

// Scopes this project needs: offline_access yields the refresh token; the
// vehicle scopes cover reading state and location and sending charging
// commands.
var Scopes = []string{"openid", "offline_access", "user_data", "vehicle_device_data", "vehicle_location", "vehicle_cmds", "vehicle_charging_cmds"}

// Client is the app's OAuth client registration.
type Client struct {
	ID     string
	Secret string
}

// Exchanger talks to Tesla's token endpoint through golang.org/x/oauth2.
type Exchanger struct {
	TokenURL     string
	AuthorizeURL string
	HTTPClient   *http.Client
}

// Issued is what the token endpoint answered.
type Issued struct {
	AccessToken  string
	RefreshToken string
	TokenType    string
	Scope        string
	ExpiresIn    time.Duration // 0 if Tesla sent none
	// Unrotated: a refresh answered without a new refresh token. The oauth2
	// library then copies the one sent into the answer, so RefreshToken is
	// that spent token, still in use.
	Unrotated bool
}

func (e *Exchanger) config(c Client, redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.ID,
		ClientSecret: c.Secret,
		RedirectURL:  redirectURL,
		Scopes:       Scopes,
		Endpoint: oauth2.Endpoint{
			TokenURL: e.TokenURL,
			AuthURL:  e.AuthorizeURL,
			// Never auto-detect: the probe retries a failed request with the
			// other style, which would spend a single-use refresh token twice.
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// ctx carries the HTTP client oauth2 uses. It follows no redirect whatever
// client it was given: Go re-sends a POST body on 307 and 308, and this
// body holds the client secret and a refresh token or code.
func (e *Exchanger) ctx(ctx context.Context) context.Context {
	hc := e.HTTPClient
	if hc == nil {
		hc = httpclient.New(20 * time.Second)
	}
	return context.WithValue(ctx, oauth2.HTTPClient, httpclient.NoRedirects(hc))
}

// Refresh spends refreshToken for a new pair. Errors are classified:
// errLoginRequired (this token is dead), ErrUpstreamUnavailable (try again;
// Tesla may or may not have rotated), ErrMisconfigured (bad client).
func (e *Exchanger) Refresh(ctx context.Context, c Client, refreshToken string) (Issued, error) {
	src := e.config(c, "").TokenSource(e.ctx(ctx), &oauth2.Token{RefreshToken: refreshToken})
	tok, err := src.Token()
	if err != nil {
		return Issued{}, classify(err)
	}
	if tok.RefreshToken == "" || tok.RefreshToken == refreshToken {
		tok.RefreshToken = refreshToken
		out, err := issued(tok)
		out.Unrotated = true
		return out, err
	}
	return issued(tok)
}

// NewVerifier is a fresh PKCE code verifier (RFC 7636), one per login.
func NewVerifier() string { return oauth2.GenerateVerifier() }

// AuthCodeURL is the browser URL of the authorization-code flow: PKCE
// S256 with verifier (RFC 7636 §4.2; Tesla's third-party-token docs list
// code_challenge), and prompt_missing_scopes / require_requested_scopes so
// Tesla asks again for scopes not yet granted and refuses partial consent
// (developer.tesla.com authentication/third-party-tokens).
func (e *Exchanger) AuthCodeURL(c Client, redirectURL, state, verifier string) string {
	return e.config(c, redirectURL).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("prompt_missing_scopes", "true"),
		oauth2.SetAuthURLParam("require_requested_scopes", "true"))
}

// ExchangeCode trades an authorization code for the first pair of a chain,
// proving the login with the PKCE verifier. audience is the Fleet API base
// URL of the account's region.
func (e *Exchanger) ExchangeCode(ctx context.Context, c Client, code, redirectURL, audience, verifier string) (Issued, error) {
	tok, err := e.config(c, redirectURL).Exchange(e.ctx(ctx), code, oauth2.SetAuthURLParam("audience", audience),
		oauth2.VerifierOption(verifier))
	if err != nil {
		return Issued{}, classify(err)
	}
	return issued(tok)
}

func issued(tok *oauth2.Token) (Issued, error) {
	if tok.RefreshToken == "" {
		return Issued{}, fmt.Errorf("%w: the answer carried no refresh token (is offline_access granted?)", ErrUpstreamUnavailable)
	}
	out := Issued{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType}
	if tok.ExpiresIn > 0 {
		out.ExpiresIn = time.Duration(tok.ExpiresIn) * time.Second
	}
	if s, ok := tok.Extra("scope").(string); ok {
		out.Scope = s
	}
	return out, nil
}

// classify turns an oauth2 error into one of ours. The oauth2 error text
// quotes the response body, so it is never passed on: only the status and
// the OAuth error code are.
func classify(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		code := re.ErrorCode
		desc := fmt.Sprintf("token endpoint answered HTTP %d", status)
		if code != "" {
			desc += " " + code
		}
		switch {
		case code == "login_required" || code == "invalid_grant":
			return fmt.Errorf("%w: %s", errLoginRequired, desc)
		case code == "invalid_client" || code == "unauthorized_client":
			return fmt.Errorf("%w: %s (check the tesla-client-id and tesla-client-secret secrets)", ErrMisconfigured, desc)
		case code == "invalid_auth_code":
			return fmt.Errorf("%w: %s (the code expired or was used; start the login again)", ErrInvalidAuthCode, desc)
		case status == http.StatusUnauthorized:
			// A 401 without a recognisable code: Tesla's documented answer for a
			// dead refresh token is login_required, so treat it the same.
			return fmt.Errorf("%w: %s", errLoginRequired, desc)
		default:
			return fmt.Errorf("%w: %s", ErrUpstreamUnavailable, desc)
		}
	}
	var redirect *httpclient.RedirectError
	if errors.As(err, &redirect) {
		// Nothing went to the Location; whether Tesla spent the token it was
		// sent is unknown, so this is "try again", like any failed answer.
		return fmt.Errorf("%w: %w (check TESLA_AUTH_URL)", ErrUpstreamUnavailable, redirect)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error names the token URL, which holds no secret; the body does.
		return fmt.Errorf("%w: %s %s: %v", ErrUpstreamUnavailable, ue.Op, redactURL(ue.URL), ue.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %v", ErrUpstreamUnavailable, err)
	}
	// oauth2's "cannot parse json" and "missing access_token" texts name no
	// token, but keep only their first words in case a future version does.
	msg := err.Error()
	if i := strings.Index(msg, ":"); i > 0 && strings.HasPrefix(msg, "oauth2") {
		if j := strings.Index(msg[i+1:], ":"); j > 0 {
			msg = msg[:i+1+j]
		}
	}
	return fmt.Errorf("%w: malformed answer (%s)", ErrUpstreamUnavailable, msg)
}

// ErrInvalidAuthCode: the authorization code was rejected.
var ErrInvalidAuthCode = errors.New("authorization code rejected")

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "token endpoint"
	}
	u.RawQuery = ""
	u.User = nil
	return u.String()
}
