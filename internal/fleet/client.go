// Package fleet is a small client for Tesla's Fleet API and for the signing
// proxy (tesla-http-proxy) that sits in front of it for commands.
//
// It serves two callers with different budgets: the scout, which must never
// wake a car and may make at most one billed data call per car per tick
// (Vehicle, then one VehicleData), and the worker's charging cycle, which
// reads schedules, writes them through the proxy and may wake a car once.
// The client itself never retries, never wakes on its own and never
// refreshes tokens: each of those costs money or touches the token
// lifecycle, so the caller decides, guided by the error kinds in errors.go.
package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
)

// TokenSource hands out the current access token. It is called once per
// request, so a rotated token is picked up at once. On ErrUnauthorized the
// caller refreshes (or re-reads) its token and retries once.
type TokenSource interface {
	AccessToken(ctx context.Context) (string, error)
}

// TokenRenewer is told that the Fleet API refused an access token it handed
// out (HTTP 401): it makes sure the source hands out a different token next
// (re-read the store; refresh if the store still holds the refused one),
// or says why none can be had.
type TokenRenewer interface {
	TokenRejected(ctx context.Context, accessToken string) error
}

const (
	// maxBodyBytes bounds every response body read. vehicle_data with every
	// endpoint is a few KiB; anything near this is not an answer we want.
	maxBodyBytes = 1 << 20
	// vehiclesPerPage is the page size Tesla's list endpoint allows.
	vehiclesPerPage = 100
	// maxVehiclePages stops a pagination loop that never ends (10,000 cars).
	maxVehiclePages = 100
	defaultTimeout  = 10 * time.Second
	// DefaultUserAgent is sent unless WithUserAgent says otherwise.
	DefaultUserAgent = "offpeak-fleet/1"
)

// Client talks to the Fleet API (reads, wake_up) and to the signing proxy
// (commands). It is safe for concurrent use.
type Client struct {
	baseURL    string
	commandURL string
	tokens     TokenSource
	http       *http.Client
	userAgent  string
	clock      clock.Clock
	renewer    TokenRenewer
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client, e.g. one that trusts the proxy's
// certificate. Default: a client with a 10 s timeout. Either way the client
// follows no redirect (the bearer token goes to the configured host only).
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) {
		if h != nil {
			c.http = h
		}
	}
}

// WithCommandURL sets where POST …/command/* goes: the tesla-http-proxy,
// which signs commands on the way through. Default: the base URL (which
// works only for cars that still accept unsigned commands).
func WithCommandURL(u string) Option {
	return func(c *Client) { c.commandURL = strings.TrimRight(u, "/") }
}

// UserAgent is how our programs introduce themselves to the Fleet API,
// as Tesla asks API clients to: offpeak-<service>/<version> ("dev" for a
// build without a version).
func UserAgent(service, version string) string {
	if version == "" {
		version = "dev"
	}
	return "offpeak-" + service + "/" + version
}

// WithUserAgent sets the User-Agent header (see UserAgent).
func WithUserAgent(ua string) Option {
	return func(c *Client) {
		if ua != "" {
			c.userAgent = ua
		}
	}
}

// WithClock sets the clock used to turn a Retry-After date into a duration.
func WithClock(clk clock.Clock) Option {
	return func(c *Client) {
		if clk != nil {
			c.clock = clk
		}
	}
}

// WithTokenRenewal makes the client answer a 401 itself: it tells r which
// token was refused and, once r says a new one can be had, sends the
// request once more with the source's then current token. A 401 means the
// request was refused before anything ran, so even a command or a wake is
// safe to send again. Without this option a 401 is the caller's to handle.
func WithTokenRenewal(r TokenRenewer) Option {
	return func(c *Client) { c.renewer = r }
}

// New returns a client for the Fleet API at baseURL (the account's regional
// host, e.g. https://fleet-api.prd.eu.vn.cloud.tesla.com).
func New(baseURL string, tokens TokenSource, opts ...Option) *Client {
	c := &Client{
		baseURL:   strings.TrimRight(baseURL, "/"),
		tokens:    tokens,
		http:      httpclient.New(defaultTimeout),
		userAgent: DefaultUserAgent,
		clock:     clock.Real{},
	}
	for _, opt := range opts {
		opt(c)
	}
	if c.commandURL == "" {
		c.commandURL = c.baseURL
	}
	c.http = httpclient.NoRedirects(c.http)
	return c
}

// request is one HTTP exchange.
type request struct {
	method   string
	base     string // c.baseURL or c.commandURL
	path     string // already escaped
	rawQuery string // already encoded
	body     any    // marshalled as JSON when non-nil
}

func (r request) endpoint() string { return r.method + " " + r.path }

// reply is a 2xx answer. token is the access token the request carried, kept
// only so that text taken from the body can be scrubbed of it.
type reply struct {
	status int
	body   []byte
	token  string
}

// do sends one request and returns a 2xx answer; every other outcome is an
// error of a kind from errors.go. With WithTokenRenewal a 401 is answered
// by renewing the token and sending the request once more.
func (c *Client) do(ctx context.Context, r request) (reply, error) {
	rep, token, err := c.send(ctx, r)
	if c.renewer == nil || token == "" || !errors.Is(err, ErrUnauthorized) {
		return rep, err
	}
	if rerr := c.renewer.TokenRejected(ctx, token); rerr != nil {
		return reply{}, fmt.Errorf("fleet: %s: renewing the refused token: %w (after %w)", r.endpoint(), rerr, err)
	}
	rep, _, err = c.send(ctx, r)
	return rep, err
}

// send makes one attempt; token is the access token it carried ("" if none
// was had).
func (c *Client) send(ctx context.Context, r request) (reply, string, error) {
	endpoint := r.endpoint()
	if c.tokens == nil {
		return reply{}, "", fmt.Errorf("fleet: %s: no token source: %w", endpoint, ErrInvalidRequest)
	}
	token, err := c.tokens.AccessToken(ctx)
	if err != nil {
		return reply{}, "", fmt.Errorf("fleet: %s: access token: %w", endpoint, err)
	}
	if token == "" {
		return reply{}, "", fmt.Errorf("fleet: %s: empty access token: %w", endpoint, ErrInvalidRequest)
	}
	rep, err := c.exchange(ctx, r, token)
	return rep, token, err
}

// exchange sends r with token and reads the answer.
func (c *Client) exchange(ctx context.Context, r request, token string) (reply, error) {
	endpoint := r.endpoint()
	var body io.Reader
	if r.body != nil {
		payload, err := json.Marshal(r.body)
		if err != nil {
			return reply{}, fmt.Errorf("fleet: %s: encode body: %v: %w", endpoint, err, ErrInvalidRequest)
		}
		body = bytes.NewReader(payload)
	}
	target := r.base + r.path
	if r.rawQuery != "" {
		target += "?" + r.rawQuery
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return reply{}, fmt.Errorf("fleet: %s: %v: %w", endpoint, err, ErrInvalidRequest)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		var redirect *httpclient.RedirectError
		if errors.As(err, &redirect) {
			// Not followed, so the token went nowhere else; a moved API is a
			// configuration matter, not worth retrying.
			return reply{}, &APIError{Status: redirect.Status, Endpoint: endpoint, kind: ErrUnexpectedStatus,
				Message: redirect.Error()}
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The caller gave up (shutdown, its own deadline): not Tesla's
			// fault and not worth retrying inside the same context.
			return reply{}, fmt.Errorf("fleet: %s: %w: %w", endpoint, ctxErr, err)
		}
		return reply{}, &TransportError{Endpoint: endpoint, Err: err}
	}
	defer resp.Body.Close()

	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if ok {
		if readErr != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return reply{}, fmt.Errorf("fleet: %s: %w: %w", endpoint, ctxErr, readErr)
			}
			return reply{}, &TransportError{Endpoint: endpoint, Err: readErr}
		}
		if len(data) > maxBodyBytes {
			return reply{}, &APIError{Status: resp.StatusCode, Endpoint: endpoint, kind: ErrMalformed,
				Message: fmt.Sprintf("response body exceeds %d bytes", maxBodyBytes)}
		}
		return reply{status: resp.StatusCode, body: data, token: token}, nil
	}

	// An error answer: classify by status with whatever body arrived.
	kind := kindForStatus(resp.StatusCode, data)
	apiErr := &APIError{
		Status:   resp.StatusCode,
		Endpoint: endpoint,
		Message:  errorMessage(data, token),
		kind:     kind,
	}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now()); ok {
		apiErr.RetryAfter = d
	} else if errors.Is(kind, ErrRateLimited) {
		apiErr.RetryAfter = defaultRetryAfter
	}
	return reply{}, apiErr
}

// malformed builds the error for a 2xx answer that does not decode. The body
// itself is left out: a vehicle_data body carries the car's location.
func malformed(status int, endpoint, reason string) error {
	return &APIError{Status: status, Endpoint: endpoint, kind: ErrMalformed, Message: excerpt(reason, "")}
}

// vehiclePath returns /api/1/vehicles/{vin} with the VIN escaped.
func vehiclePath(vin string) (string, error) {
	if strings.TrimSpace(vin) == "" {
		return "", fmt.Errorf("fleet: empty VIN: %w", ErrInvalidRequest)
	}
	return "/api/1/vehicles/" + url.PathEscape(vin), nil
}

// envelope is Tesla's wrapper around every answer.
type envelope struct {
	Response json.RawMessage `json:"response"`
}

// decodeResponse unwraps {"response": …} and reports whether the response is
// the expected JSON kind ('{' for an object, '[' for an array).
func decodeResponse(body []byte, want byte) (json.RawMessage, string) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, err.Error()
	}
	r := bytes.TrimSpace(env.Response)
	if len(r) == 0 || r[0] != want {
		kind := "an object"
		if want == '[' {
			kind = "an array"
		}
		return nil, "\"response\" is missing or not " + kind
	}
	return r, ""
}
