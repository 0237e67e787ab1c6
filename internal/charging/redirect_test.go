package charging

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/httpclient/httpclienttest"
)

// A planner URL that redirects: the X-API-Key (which Go would forward to any
// host) goes nowhere else, and the plan falls back as on any planner error.
func TestExternalPlannerDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{302, 307, 308} {
		trap := httpclienttest.NewTrap(t, status)
		now := lt(t, "2026-01-13 18:00")
		p, err := NewExternalPlanner(ExternalPlannerConfig{
			URL: trap.URL + "/api/external-calculate", APIKey: testAPIKey, Tariff: mustTariff(t, g12, "", ""),
			Clock: clock.NewManual(now), Timeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Plan(context.Background(), planIn(now, 50, 80, 0))
		if !errors.Is(err, ErrPlanner) || !errors.Is(err, httpclient.ErrRedirect) || !strings.Contains(err.Error(), "PLANNER_URL") {
			t.Errorf("%d: err = %v, want ErrPlanner naming the refused redirect", status, err)
		}
		if err != nil && strings.Contains(err.Error(), testAPIKey) {
			t.Errorf("%d: the error carries the API key", status)
		}
		trap.AssertNothingLeaked(t, testAPIKey)
	}
}
