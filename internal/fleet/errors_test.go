package fleet

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

// signingRequiredBody is the error text Tesla answers an unsigned command to
// a car that needs signing with (github.com/alandtse/tesla issue 858).
const signingRequiredBody = "Tesla Vehicle Command Protocol required, please refer to the documentation here: https://developer.tesla.com/docs/fleet-api#2023-10-09-rest-api-vehicle-commands-endpoint-deprecation-warning"

var allKinds = []error{
	ErrAsleep, ErrUnauthorized, ErrForbidden, ErrSigningRequired, ErrNotFound, ErrBadRequest, ErrPrecondition,
	ErrWrongRegion, ErrRateLimited, ErrUpstream, ErrPrivacy, ErrVehicleError, ErrCommandFailed,
	ErrMalformed, ErrUnexpectedStatus, ErrInvalidRequest,
}

// kindsOf lists which of allKinds err matches: exactly one is expected.
func kindsOf(err error) []error {
	var out []error
	for _, k := range allKinds {
		if errors.Is(err, k) {
			out = append(out, k)
		}
	}
	return out
}

func TestStatusMapping(t *testing.T) {
	t.Parallel()
	proxyAsleep := teslaError("vehicle unavailable: vehicle is offline or asleep")
	tests := []struct {
		name      string
		status    int
		body      string
		want      error
		transient bool
		mention   []string // the message must name these
	}{
		{"400 bad parameter", 400, teslaError("invalid days_of_week param"), ErrBadRequest, false, []string{"invalid days_of_week param"}},
		{"401 token", 401, teslaError("invalid bearer token"), ErrUnauthorized, false, []string{"invalid bearer token"}},
		{"403 scopes", 403, teslaError("Unauthorized missing scopes"), ErrForbidden, false,
			[]string{"vehicle_device_data", "vehicle_location", "vehicle_charging_cmds", "offline_access"}},
		{"404", 404, teslaError("not_found"), ErrNotFound, false, nil},
		{"408 asleep", 408, proxyAsleep, ErrAsleep, false, []string{"offline or asleep"}},
		{"403 unsigned", 403, teslaError(signingRequiredBody), ErrSigningRequired, false,
			[]string{"signed commands", "Vehicle Command Protocol required"}},
		{"412 unregistered", 412, teslaError("Account sim-client-id must be registered in the current region"), ErrPrecondition, false,
			[]string{"fleetctl register", "registered in the current region"}},
		{"421 region", 421, teslaError("user out of region"), ErrWrongRegion, false,
			[]string{"TESLA_FLEET_API_URL", "GET /api/1/users/region"}},
		{"429", 429, teslaError("rate limited"), ErrRateLimited, true, []string{"retry after 1m0s"}},
		{"451 privacy", 451, teslaError("privacy"), ErrPrivacy, false, nil},
		{"500 proxy asleep", 500, proxyAsleep, ErrAsleep, false, nil},
		{"503 offline", 503, teslaError("vehicle is offline"), ErrAsleep, false, nil},
		{"503 plain text asleep", 503, "vehicle unavailable", ErrAsleep, false, nil},
		{"503 load balancer", 503, "Service Unavailable", ErrUpstream, true, nil},
		{"500 internal", 500, teslaError("internal error"), ErrUpstream, true, nil},
		{"502", 502, "<html>bad gateway</html>", ErrUpstream, true, []string{"bad gateway"}},
		{"504", 504, "", ErrUpstream, true, nil},
		{"540 vehicle", 540, teslaError("vehicle rejected the request"), ErrVehicleError, false, nil},
		{"402 billing", 402, teslaError("payment required"), ErrUnexpectedStatus, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, tc.status, tc.body) })
			c := New(fake.URL(), staticToken(testToken))
			_, err := c.VehicleData(context.Background(), testVIN, EndpointChargeState)
			if got := kindsOf(err); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("err = %v, kinds %v, want exactly %v", err, got, tc.want)
			}
			if IsTransient(err) != tc.transient {
				t.Errorf("IsTransient = %v, want %v", IsTransient(err), tc.transient)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err %T is not *APIError", err)
			}
			if apiErr.Status != tc.status {
				t.Errorf("Status = %d, want %d", apiErr.Status, tc.status)
			}
			if want := "GET /api/1/vehicles/" + testVIN + "/vehicle_data"; apiErr.Endpoint != want {
				t.Errorf("Endpoint = %q, want %q", apiErr.Endpoint, want)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if n := len(fake.requests()); n != 1 {
				t.Errorf("%d requests, want 1 (the client never retries)", n)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 15, 22, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		status int
		header string
		want   time.Duration
	}{
		{"seconds", 429, "7200", 2 * time.Hour},
		{"seconds with spaces", 429, " 30 ", 30 * time.Second},
		{"http date", 429, now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"date already past", 429, now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"absent", 429, "", defaultRetryAfter},
		{"garbage", 429, "soon", defaultRetryAfter},
		{"negative", 429, "-5", defaultRetryAfter},
		{"absurd", 429, "99999999999999", maxRetryAfter},
		{"503 carries it too", 503, "120", 2 * time.Minute},
		{"503 without it", 503, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				answer(w, tc.status, teslaError("slow down"))
			})
			c := New(fake.URL(), staticToken(testToken), WithClock(clock.NewManual(now)))
			_, err := c.Vehicle(context.Background(), testVIN)
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if apiErr.RetryAfter != tc.want {
				t.Errorf("RetryAfter = %v, want %v", apiErr.RetryAfter, tc.want)
			}
			d, ok := RetryAfter(err)
			if ok != (tc.want > 0) || d != tc.want {
				t.Errorf("RetryAfter(err) = %v, %v; want %v", d, ok, tc.want)
			}
		})
	}
}

// TestTokenNeverInErrors makes every kind of failure while the server echoes
// the bearer token back in its body, in every position the excerpt could cut.
func TestTokenNeverInErrors(t *testing.T) {
	t.Parallel()
	statuses := []int{400, 401, 403, 404, 408, 412, 421, 429, 451, 500, 502, 503, 540, 418}
	for _, status := range statuses {
		for _, pad := range []int{0, 150, 190, 199, 400} {
			fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
				echoed := strings.Repeat("x", pad) + r.Header.Get("Authorization") + " tail " + r.Header.Get("Authorization")
				answer(w, status, teslaError(echoed))
			})
			c := New(fake.URL(), staticToken(testToken))
			_, err := c.VehicleData(context.Background(), testVIN)
			if err == nil {
				t.Fatalf("status %d: no error", status)
			}
			assertNoToken(t, err)
			var apiErr *APIError
			if errors.As(err, &apiErr) && len(apiErr.Message) > maxExcerptBytes+len("…") {
				t.Errorf("status %d pad %d: message is %d bytes, want ≤ %d", status, pad, len(apiErr.Message), maxExcerptBytes)
			}
		}
	}

	// A command refused with a reason that echoes the token.
	proxy := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"response":{"result":false,"reason":"bad `+r.Header.Get("Authorization")+`"}}`)
	})
	c := New(proxy.URL(), staticToken(testToken))
	err := c.RemoveChargeSchedule(context.Background(), testVIN, 7)
	if !errors.Is(err, ErrCommandFailed) {
		t.Fatalf("err = %v, want ErrCommandFailed", err)
	}
	assertNoToken(t, err)

	// No answer at all.
	closed := newFakeTesla(t, func(http.ResponseWriter, *http.Request) {})
	closed.srv.Close()
	_, err = New(closed.URL(), staticToken(testToken)).Vehicle(context.Background(), testVIN)
	if err == nil {
		t.Fatal("closed server: no error")
	}
	assertNoToken(t, err)
}

func TestBodyExcerptIsBounded(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("é", 3<<20) // 6 MiB of two-byte runes
	fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 500, huge) })
	_, err := New(fake.URL(), staticToken(testToken)).Vehicle(context.Background(), testVIN)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, ErrUpstream) {
		t.Fatalf("err = %v, want ErrUpstream APIError", err)
	}
	if len(apiErr.Message) > maxExcerptBytes+len("…") || !strings.HasPrefix(apiErr.Message, "éé") {
		t.Errorf("message is %d bytes (%q…), want a valid excerpt ≤ %d", len(apiErr.Message), apiErr.Message[:8], maxExcerptBytes)
	}
	if strings.Contains(apiErr.Message, "\uFFFD") || strings.Contains(apiErr.Message, "?") {
		t.Errorf("message cut inside a rune: %q", apiErr.Message)
	}
}

func TestTransportErrors(t *testing.T) {
	t.Parallel()

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		fake := newFakeTesla(t, func(http.ResponseWriter, *http.Request) {})
		fake.srv.Close()
		_, err := New(fake.URL(), staticToken(testToken)).Vehicle(context.Background(), testVIN)
		if !errors.Is(err, ErrUpstream) || !IsTransient(err) {
			t.Fatalf("err = %v, want transient ErrUpstream", err)
		}
		var te *TransportError
		var opErr *net.OpError
		if !errors.As(err, &te) || !errors.As(err, &opErr) {
			t.Errorf("err = %v does not expose the TransportError and its *net.OpError", err)
		}
	})

	t.Run("client timeout", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		c := New(fake.URL(), staticToken(testToken), WithHTTPClient(&http.Client{Timeout: 20 * time.Millisecond}))
		_, err := c.VehicleData(context.Background(), testVIN, EndpointChargeState)
		if !errors.Is(err, ErrUpstream) || !IsTransient(err) {
			t.Fatalf("err = %v, want transient ErrUpstream", err)
		}
		var netErr net.Error
		if !errors.As(err, &netErr) || !netErr.Timeout() {
			t.Errorf("err = %v, want a net.Error that says Timeout", err)
		}
	})

	t.Run("caller cancelled", func(t *testing.T) {
		t.Parallel()
		fake := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 200, `{"response":{}}`) })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := New(fake.URL(), staticToken(testToken)).Vehicle(ctx, testVIN)
		if !errors.Is(err, context.Canceled) || IsTransient(err) || errors.Is(err, ErrUpstream) {
			t.Fatalf("err = %v, want context.Canceled and not transient", err)
		}
	})
}

func TestAPIErrorText(t *testing.T) {
	t.Parallel()
	err := &APIError{Status: 429, Endpoint: "GET /api/1/vehicles", Message: "slow down", RetryAfter: time.Minute, kind: ErrRateLimited}
	want := "fleet: GET /api/1/vehicles: HTTP 429: rate limited (429) (retry after 1m0s): slow down"
	if err.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", err.Error(), want)
	}
	if !errors.Is(err, ErrRateLimited) || errors.Is(err, ErrUpstream) {
		t.Error("Unwrap does not return exactly the kind")
	}
}
