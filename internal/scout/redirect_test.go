package scout

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/httpclient/httpclienttest"
	"github.com/offpeak-charging/offpeak/internal/svcauth"
)

// A WORKER_URL that redirects: the bearer (or ID token) the client's
// transport adds goes nowhere else, and the trigger is rejected, not
// retried for hours.
func TestWorkerClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	const bearer = "scout-to-worker-token-0123456789"
	for _, status := range []int{302, 307, 308} {
		trap := httpclienttest.NewTrap(t, status)
		hc, err := svcauth.NewClient(context.Background(), svcauth.Policy{Mode: svcauth.ModeToken, Token: bearer}, trap.URL, httpclient.New(0))
		if err != nil {
			t.Fatal(err)
		}
		// Also a client built by hand, as tests and other callers do.
		plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
		for name, c := range map[string]*http.Client{"svcauth client": hc, "plain client": plain} {
			wc := &WorkerClient{BaseURL: trap.URL, HTTP: c, RefreshTimeout: 5 * time.Second, CycleTimeout: 5 * time.Second}
			_, err := wc.RefreshTokens(context.Background(), contract.RefreshRequest{Reason: "test"})
			if !errors.Is(err, ErrWorkerRejected) || !errors.Is(err, httpclient.ErrRedirect) {
				t.Errorf("%s, %d: RefreshTokens err = %v, want a rejection naming the refused redirect", name, status, err)
			}
			if _, err := wc.RunCycle(context.Background(), contract.CycleRequest{VIN: "5YJ3E7EB0KF000001", Reason: "test"}); !errors.Is(err, ErrWorkerRejected) {
				t.Errorf("%s, %d: RunCycle err = %v", name, status, err)
			}
		}
		trap.AssertNothingLeaked(t, bearer)
	}
}
