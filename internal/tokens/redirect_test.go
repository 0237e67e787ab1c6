package tokens_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/httpclient/httpclienttest"
	"github.com/offpeak-charging/offpeak/internal/tokens"
)

// A token endpoint that redirects (seen: a 307 made the CLI re-post the
// client secret and refresh token to a third host): nothing reaches the
// Location, whatever client the caller handed in, and the caller is told.
func TestExchangerDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	client := tokens.Client{ID: "client-id-1", Secret: "client-secret-XYZ"}
	const refresh, code, verifier = "refresh-token-ABC", "auth-code-DEF", "verifier-0123456789-0123456789-0123456789-abc"
	for _, status := range []int{302, 307, 308} {
		for name, hc := range map[string]*http.Client{
			"default":         nil,
			"caller's client": {CheckRedirect: func(*http.Request, []*http.Request) error { return nil }},
		} {
			trap := httpclienttest.NewTrap(t, status)
			e := &tokens.Exchanger{TokenURL: trap.URL + "/oauth2/v3/token", HTTPClient: hc}
			_, err := e.Refresh(context.Background(), client, refresh)
			if !errors.Is(err, tokens.ErrUpstreamUnavailable) || !errors.Is(err, httpclient.ErrRedirect) ||
				!strings.Contains(err.Error(), "TESLA_AUTH_URL") {
				t.Errorf("%s, %d: Refresh err = %v, want upstream-unavailable naming the refused redirect", name, status, err)
			}
			_, err = e.ExchangeCode(context.Background(), client, code, "http://localhost:8765/callback", "https://fleet-api.example", verifier)
			if !errors.Is(err, httpclient.ErrRedirect) {
				t.Errorf("%s, %d: ExchangeCode err = %v", name, status, err)
			}
			for _, secret := range []string{client.Secret, refresh, code} {
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("%s, %d: the error carries a credential: %v", name, status, err)
				}
			}
			trap.AssertNothingLeaked(t, client.Secret, refresh, code, verifier)
		}
	}
}
