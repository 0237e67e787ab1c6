package fleet

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kinds of failure, tested with errors.Is. Every HTTP answer other than 2xx
// comes back as an *APIError that unwraps to exactly one of these; the text of
// each kind says what to do about it, because that text reaches operators.
var (
	// ErrAsleep: the car is asleep or offline (408, or 500/503 whose body says
	// so, which is how tesla-http-proxy answers). Not transient: the scout
	// records the state, and only the charging cycle may decide to wake.
	ErrAsleep = errors.New("vehicle asleep or offline")
	// ErrUnauthorized: the access token is invalid or expired. The caller
	// re-reads the current token (it may have been rotated) and retries once.
	ErrUnauthorized = errors.New("access token rejected (401): re-read the current token and retry once")
	// ErrForbidden: the token lacks a scope the call needs.
	ErrForbidden = errors.New("forbidden (403): the token lacks scopes; this project needs " +
		"openid offline_access user_data vehicle_device_data vehicle_location vehicle_charging_cmds " +
		"(or vehicle_cmds); log in again granting them")
	// ErrSigningRequired: an unsigned REST command reached a car that only
	// takes commands signed with the Vehicle Command Protocol. Tesla answers
	// 403 "Tesla Vehicle Command Protocol required" (github.com/alandtse/tesla
	// issue 858) or, on some cars, 200 result:false "unsigned_cmds_hardlocked"
	// (teslamotors/vehicle-command issue 76); both mean this.
	ErrSigningRequired = errors.New("the car only accepts signed commands (Vehicle Command Protocol)")
	// ErrNotFound: no such vehicle (or endpoint) for this account.
	ErrNotFound = errors.New("not found (404)")
	// ErrBadRequest: Tesla or the proxy rejected a parameter.
	ErrBadRequest = errors.New("bad request (400)")
	// ErrPrecondition: 412, the developer app is not registered in this
	// region ("Account … must be registered in the current region";
	// evcc-io/evcc issue 19886).
	ErrPrecondition = errors.New("precondition failed (412): the Tesla developer app is not registered " +
		"in this Fleet API region; run `fleetctl register --domain <your domain>`")
	// ErrWrongRegion: the account lives in another Fleet API region.
	ErrWrongRegion = errors.New("wrong Fleet API region (421): set TESLA_FLEET_API_URL to the " +
		"fleet_api_base_url that GET /api/1/users/region returns")
	// ErrRateLimited: 429; APIError.RetryAfter says how long to stay away.
	ErrRateLimited = errors.New("rate limited (429)")
	// ErrUpstream: a 5xx that does not mean "asleep", a timeout, or a
	// connection failure. Transient: the same call may succeed later.
	ErrUpstream = errors.New("upstream unavailable (Fleet API or proxy)")
	// ErrPrivacy: 451, the owner's privacy settings forbid the query.
	ErrPrivacy = errors.New("refused by the owner's privacy settings (451)")
	// ErrVehicleError: 540, the car itself answered with an error.
	ErrVehicleError = errors.New("the vehicle answered with an error (540)")
	// ErrCommandFailed: HTTP 200 with result:false; the car refused the
	// command. APIError.Message carries Tesla's reason.
	ErrCommandFailed = errors.New("command refused by the vehicle")
	// ErrMalformed: a 2xx answer whose body does not decode as expected.
	ErrMalformed = errors.New("malformed response")
	// ErrUnexpectedStatus: an HTTP status this client has no meaning for.
	ErrUnexpectedStatus = errors.New("unexpected HTTP status")
	// ErrInvalidRequest: the client refused to send a request it knows is
	// wrong (empty VIN, a day name the proxy rejects, a schedule id of 0, …).
	// Nothing was sent.
	ErrInvalidRequest = errors.New("invalid request, not sent")
)

// APIError is an answer from the Fleet API or the signing proxy that is not a
// success. It unwraps to one of the kinds above.
type APIError struct {
	Status     int           // HTTP status (200 for ErrCommandFailed and most ErrMalformed)
	Endpoint   string        // method and path, e.g. "GET /api/1/vehicles/VIN/vehicle_data"
	Message    string        // Tesla's own words, at most ~200 bytes, the access token removed
	RetryAfter time.Duration // for 429 (and any answer carrying Retry-After)
	kind       error
}

// Error says where, what kind, and what Tesla said.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("fleet: ")
	b.WriteString(e.Endpoint)
	if e.Status != 0 {
		b.WriteString(": HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.kind != nil {
		b.WriteString(": ")
		b.WriteString(e.kind.Error())
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after ")
		b.WriteString(e.RetryAfter.String())
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns the kind, so errors.Is(err, fleet.ErrAsleep) works.
func (e *APIError) Unwrap() error { return e.kind }

// TransportError is a request that got no HTTP answer: a timeout, a refused
// or dropped connection, a TLS failure. It is ErrUpstream (transient) and also
// unwraps to the underlying network error for errors.As.
type TransportError struct {
	Endpoint string
	Err      error
}

func (e *TransportError) Error() string {
	return "fleet: " + e.Endpoint + ": " + ErrUpstream.Error() + ": " + e.Err.Error()
}

// Unwrap returns both ErrUpstream and the network error.
func (e *TransportError) Unwrap() []error { return []error{ErrUpstream, e.Err} }

// IsTransient reports whether the same call may succeed if tried again later:
// 5xx answers not meaning "asleep", timeouts, connection failures and 429
// (after RetryAfter). A cancelled context is not transient.
func IsTransient(err error) bool {
	return errors.Is(err, ErrUpstream) || errors.Is(err, ErrRateLimited)
}

// RetryAfter returns how long to wait before retrying, as Tesla said in
// Retry-After (ok is false when err carries no such advice).
func RetryAfter(err error) (d time.Duration, ok bool) {
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
		return apiErr.RetryAfter, true
	}
	return 0, false
}

const (
	// defaultRetryAfter is used for a 429 without a usable Retry-After.
	defaultRetryAfter = 60 * time.Second
	// maxRetryAfter bounds absurd values (and keeps Duration from overflowing);
	// Tesla has been seen asking for hours, never for weeks.
	maxRetryAfter = 7 * 24 * time.Hour
	// maxExcerptBytes bounds how much of a response body reaches an error.
	maxExcerptBytes = 200
)

// kindForStatus maps a non-2xx HTTP status (and, for 500/503, the body) onto
// a kind.
func kindForStatus(status int, body []byte) error {
	switch status {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		if saysSigningRequired(body) {
			return ErrSigningRequired
		}
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusRequestTimeout:
		return ErrAsleep
	case http.StatusPreconditionFailed:
		return ErrPrecondition
	case http.StatusMisdirectedRequest:
		return ErrWrongRegion
	case http.StatusTooManyRequests:
		return ErrRateLimited
	case http.StatusUnavailableForLegalReasons:
		return ErrPrivacy
	case 540:
		return ErrVehicleError
	case http.StatusInternalServerError, http.StatusServiceUnavailable:
		if saysAsleep(body) {
			return ErrAsleep
		}
		return ErrUpstream
	}
	if status >= 500 {
		return ErrUpstream
	}
	return ErrUnexpectedStatus
}

// saysAsleep reports whether a 500/503 body is Tesla's (or the proxy's) way of
// saying the car cannot be reached: "vehicle unavailable: vehicle is offline
// or asleep". A bare "Service Unavailable" from a load balancer does not
// count: that is an outage, and must stay transient.
func saysAsleep(body []byte) bool {
	s := strings.ToLower(string(body))
	for _, w := range []string{"asleep", "offline", "vehicle unavailable", "vehicle is unavailable", "vehicle_unavailable"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// saysSigningRequired reports whether an answer is Tesla's refusal of an
// unsigned command: the 403 body "Tesla Vehicle Command Protocol required"
// or the reason "unsigned_cmds_hardlocked" (see ErrSigningRequired).
func saysSigningRequired(body []byte) bool {
	s := strings.ToLower(string(body))
	return strings.Contains(s, "vehicle command protocol required") || strings.Contains(s, "unsigned_cmds_hardlocked")
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		switch {
		case d < 0:
			d = 0 // the date has passed: retrying now is what Tesla asked for
		case d > maxRetryAfter:
			d = maxRetryAfter
		}
		return d, true
	}
	return 0, false
}

// errorMessage extracts what Tesla said from an error body: the "error" and
// "error_description" fields when the body is Tesla's JSON envelope, the raw
// text otherwise. The token is removed before the text is cut, so no part
// of it can survive, and the result is at most maxExcerptBytes long.
func errorMessage(body []byte, token string) string {
	var env struct {
		Error            any `json:"error"`
		ErrorDescription any `json:"error_description"`
		Response         *struct {
			Reason any `json:"reason"`
		} `json:"response"`
	}
	text := ""
	if json.Unmarshal(body, &env) == nil {
		parts := make([]string, 0, 2)
		for _, v := range []any{env.Error, env.ErrorDescription} {
			if s, ok := v.(string); ok && strings.TrimSpace(s) != "" {
				parts = append(parts, strings.TrimSpace(s))
			}
		}
		if len(parts) == 0 && env.Response != nil {
			if s, ok := env.Response.Reason.(string); ok {
				parts = append(parts, s)
			}
		}
		text = strings.Join(parts, ": ")
	}
	if text == "" {
		text = string(body)
	}
	return excerpt(text, token)
}

// excerpt redacts the token, flattens whitespace and cuts s to
// maxExcerptBytes on a UTF-8 boundary.
func excerpt(s, token string) string {
	if token != "" {
		s = strings.ReplaceAll(s, token, "[redacted]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxExcerptBytes {
		return strings.ToValidUTF8(s, "?")
	}
	cut := maxExcerptBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "?") + "…"
}
