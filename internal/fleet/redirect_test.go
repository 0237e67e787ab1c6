package fleet

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/httpclient/httpclienttest"
)

// A Fleet API (or proxy) URL that redirects: the bearer token goes nowhere
// else, whatever client the caller handed in, and the answer is a
// non-transient unexpected-status error.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{302, 307, 308} {
		trap := httpclienttest.NewTrap(t, status)
		for name, c := range map[string]*Client{
			"default client": New(trap.URL, staticToken(testToken)),
			"caller's client": New(trap.URL, staticToken(testToken), WithHTTPClient(&http.Client{
				CheckRedirect: func(*http.Request, []*http.Request) error { return nil }})),
		} {
			_, err := c.Vehicles(context.Background())
			var apiErr *APIError
			if !errors.Is(err, ErrUnexpectedStatus) || !errors.As(err, &apiErr) || apiErr.Status != status || IsTransient(err) {
				t.Errorf("%s, %d: GET: err = %v, want a non-transient ErrUnexpectedStatus with the status", name, status, err)
			}
			assertNoToken(t, err)
			_, err = c.WakeUp(context.Background(), testVIN)
			if !errors.Is(err, ErrUnexpectedStatus) {
				t.Errorf("%s, %d: POST: err = %v", name, status, err)
			}
		}
		trap.AssertNothingLeaked(t, testToken)
	}
}

// The partner token's default client follows no redirect either: a 307 or
// 308 would make Go post the form, client secret included, to the Location.
func TestPartnerTokenDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	const secret = "partner-client-secret-value"
	for _, status := range []int{302, 307, 308} {
		trap := httpclienttest.NewTrap(t, status)
		auth := PartnerAuth{TokenURL: trap.URL + "/oauth2/v3/token", ClientID: "client-id", ClientSecret: secret}
		_, err := auth.Token(context.Background(), RegionEU)
		if !errors.Is(err, httpclient.ErrRedirect) {
			t.Errorf("%d: err = %v, want the redirect refused", status, err)
		}
		trap.AssertNothingLeaked(t, secret)
	}
}
