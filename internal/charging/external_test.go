package charging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

const testAPIKey = "sekret-planner-key-0123456789"

// plannerServer imitates the OFF-Peak Charge API: X-API-Key, the request
// shape, and a canned answer.
type plannerServer struct {
	mu      sync.Mutex
	calls   int
	lastReq externalRequest
	status  int
	body    string
	block   bool
	srv     *httptest.Server
}

func newPlannerServer(t *testing.T) *plannerServer {
	t.Helper()
	ps := &plannerServer{status: http.StatusOK}
	ps.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		ps.calls++
		status, body, block := ps.status, ps.body, ps.block
		ps.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("X-API-Key") != testAPIKey {
			http.Error(w, `{"error":"Invalid API key"}`, http.StatusUnauthorized)
			return
		}
		var req externalRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"Validation error"}`, http.StatusBadRequest)
			return
		}
		ps.mu.Lock()
		ps.lastReq = req
		ps.mu.Unlock()
		if block {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *plannerServer) answer(status int, body string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.status, ps.body = status, body
}

func (ps *plannerServer) count() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.calls
}

// slotsBody writes an answer whose slots are given in Warsaw local time.
func slotsBody(t testing.TB, slots ...[2]string) string {
	var parts []string
	for _, s := range slots {
		parts = append(parts, fmt.Sprintf(`{"start_time":%q,"end_time":%q,"charge_amount":2.5,"avg_price":0.15,"cost":0.4,"is_emergency":false}`,
			lt(t, s[0]).UTC().Format("2006-01-02T15:04:05.000Z"), lt(t, s[1]).UTC().Format("2006-01-02T15:04:05.000Z")))
	}
	return `{"success":true,"data":{"chargingSchedule":[` + strings.Join(parts, ",") + `],"summary":{"totalEnergy":5}},"meta":{"version":"1.0.0"}}`
}

func newExternal(t *testing.T, ps *plannerServer, clk clock.Clock, quota int) *ExternalPlanner {
	t.Helper()
	p, err := NewExternalPlanner(ExternalPlannerConfig{
		URL: ps.srv.URL + "/api/external-calculate", APIKey: testAPIKey,
		Tariff: mustTariff(t, g12, "", ""), Clock: clk, DailyQuota: quota,
		Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExternalPlannerClipsToCheapTime(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	ps := newPlannerServer(t)
	ps.answer(http.StatusOK, slotsBody(t,
		[2]string{"2026-01-13 16:00", "2026-01-13 17:00"}, // past: dropped
		[2]string{"2026-01-13 21:00", "2026-01-13 23:00"}, // 21-22 expensive: clipped
		[2]string{"2026-01-14 05:00", "2026-01-14 08:00"}, // 06-07 expensive, 07-08 after the deadline
	))
	now := lt(t, "2026-01-13 18:00")
	p := newExternal(t, ps, clock.NewManual(now), 30)

	plan, err := p.Plan(context.Background(), planIn(now, 50, 80, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2026-01-13 22:00 → 2026-01-13 23:00", "2026-01-14 05:00 → 2026-01-14 06:00"}
	if got := fmtWindows(plan.Windows, loc); !reflect.DeepEqual(got, want) {
		t.Fatalf("windows %q, want %q", got, want)
	}
	if plan.Source != SourceExternal || plan.Shortfall != time.Hour {
		t.Fatalf("plan %+v", plan)
	}
	want0 := externalRequest{BatteryLevel: 50, BatteryCapacity: 60, Consumption: 18.5, DailyMileage: 50,
		ChargeLimits: externalLimits{OptimalUpper: 0.8, OptimalLower: 0, ChargingRate: 6}}
	if ps.lastReq != want0 {
		t.Fatalf("request %+v, want %+v", ps.lastReq, want0)
	}
}

func TestExternalPlannerKeepsExpensiveTimeOnlyUpToTheFloor(t *testing.T) {
	t.Parallel()
	ps := newPlannerServer(t)
	ps.answer(http.StatusOK, slotsBody(t, [2]string{"2026-01-13 18:00", "2026-01-13 23:00"}))
	now := lt(t, "2026-01-13 18:00")
	p := newExternal(t, ps, clock.NewManual(now), 30)
	plan, err := p.Plan(context.Background(), planIn(now, 20, 80, 50)) // floor needs 3 h
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2026-01-13 18:00 → 2026-01-13 21:00", "2026-01-13 22:00 → 2026-01-13 23:00"}
	if got := fmtWindows(plan.Windows, warsaw(t)); !reflect.DeepEqual(got, want) {
		t.Fatalf("windows %q, want %q", got, want)
	}
}

func TestExternalPlannerDailyQuota(t *testing.T) {
	t.Parallel()
	ps := newPlannerServer(t)
	ps.answer(http.StatusOK, slotsBody(t, [2]string{"2026-01-13 22:00", "2026-01-14 01:00"}))
	clk := clock.NewManual(lt(t, "2026-01-13 18:00"))
	p := newExternal(t, ps, clk, 2)
	ctx := context.Background()

	for i := range 2 {
		if _, err := p.Plan(ctx, planIn(clk.Now(), 50, 80, 0)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if _, err := p.Plan(ctx, planIn(clk.Now(), 50, 80, 0)); !errors.Is(err, ErrPlannerQuota) {
		t.Fatalf("third call: %v", err)
	}
	if n := ps.count(); n != 2 {
		t.Fatalf("server saw %d calls, want 2", n)
	}
	// The quota is per local day: 23:59 is still today, 00:00 is a new day.
	clk.Set(lt(t, "2026-01-13 23:59"))
	if _, err := p.Plan(ctx, planIn(clk.Now(), 50, 80, 0)); !errors.Is(err, ErrPlannerQuota) {
		t.Fatalf("late the same day: %v", err)
	}
	clk.Set(lt(t, "2026-01-14 00:00"))
	if _, err := p.Plan(ctx, planIn(clk.Now(), 50, 80, 0)); err != nil {
		t.Fatalf("next day: %v", err)
	}
	if n := ps.count(); n != 3 {
		t.Fatalf("server saw %d calls, want 3", n)
	}
}

func TestExternalPlannerTargetReachedSpendsNoCall(t *testing.T) {
	t.Parallel()
	ps := newPlannerServer(t)
	now := lt(t, "2026-01-13 18:00")
	p := newExternal(t, ps, clock.NewManual(now), 30)
	plan, err := p.Plan(context.Background(), planIn(now, 85, 80, 0))
	if err != nil || len(plan.Windows) != 0 || ps.count() != 0 {
		t.Fatalf("plan %+v err %v calls %d", plan, err, ps.count())
	}
}

func TestExternalPlannerFailuresFallBack(t *testing.T) {
	t.Parallel()
	loc := warsaw(t)
	now := lt(t, "2026-01-13 18:00")
	cases := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"not JSON", 200, `<html>oops</html>`, ErrPlannerResponse},
		{"success false", 200, `{"success":false,"error":"x"}`, ErrPlannerResponse},
		{"no success", 200, `{"data":{"chargingSchedule":[]}}`, ErrPlannerResponse},
		{"no schedule", 200, `{"success":true,"data":{}}`, ErrPlannerResponse},
		{"bad time", 200, `{"success":true,"data":{"chargingSchedule":[{"start_time":"tonight","end_time":"2026-01-13T23:00:00Z","charge_amount":1}]}}`, ErrPlannerResponse},
		{"ends before it starts", 200, `{"success":true,"data":{"chargingSchedule":[{"start_time":"2026-01-13T23:00:00Z","end_time":"2026-01-13T22:00:00Z","charge_amount":1}]}}`, ErrPlannerResponse},
		{"no charge_amount", 200, `{"success":true,"data":{"chargingSchedule":[{"start_time":"2026-01-13T21:00:00Z","end_time":"2026-01-13T22:00:00Z"}]}}`, ErrPlannerResponse},
		{"server error", 500, `{"error":"Internal server error"}`, ErrPlanner},
		{"rate limited", 429, `{"error":"Rate limit exceeded"}`, ErrPlannerQuota},
	}
	builtin := NewBuiltinPlanner(mustTariff(t, g12, "", ""))
	wantPlan, err := builtin.Plan(context.Background(), planIn(now, 50, 80, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := newPlannerServer(t)
			ps.answer(tc.status, tc.body)
			ext := newExternal(t, ps, clock.NewManual(now), 30)
			_, err := ext.Plan(context.Background(), planIn(now, 50, 80, 0))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), testAPIKey) {
				t.Fatal("the API key leaked into an error")
			}
			plan, err := FallbackPlanner{Primary: ext, Fallback: builtin}.Plan(context.Background(), planIn(now, 50, 80, 0))
			if err != nil {
				t.Fatal(err)
			}
			if plan.Source != SourceBuiltin || plan.FallbackReason == "" {
				t.Fatalf("plan %+v", plan)
			}
			if got, want := fmtWindows(plan.Windows, loc), fmtWindows(wantPlan.Windows, loc); !reflect.DeepEqual(got, want) {
				t.Fatalf("fallback windows %q, want %q", got, want)
			}
		})
	}
}

func TestExternalPlannerTimeout(t *testing.T) {
	t.Parallel()
	ps := newPlannerServer(t)
	ps.mu.Lock()
	ps.block = true
	ps.mu.Unlock()
	now := lt(t, "2026-01-13 18:00")
	p, err := NewExternalPlanner(ExternalPlannerConfig{
		URL: ps.srv.URL, APIKey: testAPIKey, Tariff: mustTariff(t, g12, "", ""),
		Clock: clock.NewManual(now), Timeout: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Plan(context.Background(), planIn(now, 50, 80, 0)); !errors.Is(err, ErrPlanner) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestCycleFallsBackWhenTheExternalPlannerFails(t *testing.T) {
	t.Parallel()
	ps := newPlannerServer(t)
	ps.answer(http.StatusBadGateway, "")
	r := newRig(t, nil)
	ext := newExternal(t, ps, r.clock, 30)
	c, err := NewCycle(r.car, FallbackPlanner{Primary: ext, Fallback: NewBuiltinPlanner(ext.cfg.Tariff)}, r.store, r.clock, r.cycle.cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Run(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	if res.PlannerUsed != SourceBuiltin || res.FallbackReason == "" || res.Added != 1 || ps.count() != 1 {
		t.Fatalf("res %+v calls %d", res, ps.count())
	}
}

func TestNewExternalPlannerChecksConfig(t *testing.T) {
	t.Parallel()
	tr := mustTariff(t, g12, "", "")
	clk := clock.NewManual(time.Unix(0, 0))
	for _, cfg := range []ExternalPlannerConfig{
		{APIKey: testAPIKey, Tariff: tr, Clock: clk},
		{URL: "http://127.0.0.1:1", Tariff: tr, Clock: clk},
		{URL: "http://127.0.0.1:1", APIKey: testAPIKey, Tariff: tr, Clock: clk, DailyQuota: -1},
	} {
		if _, err := NewExternalPlanner(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("url %q: %v", cfg.URL, err)
		}
	}
}
