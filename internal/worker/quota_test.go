package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

func fileStore(t *testing.T, dir string) state.Store {
	t.Helper()
	s, err := state.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func take(t *testing.T, q worker.PlannerQuota, day string, limit int) bool {
	t.Helper()
	ok, err := q.Take(context.Background(), day, limit)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// A new process (a new quota over a new store object on the same
// directory) sees what the last one spent; a new day starts from zero.
func TestPlannerQuotaSurvivesARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := worker.PlannerQuota{Store: fileStore(t, dir)}
	for i := range 3 {
		if !take(t, first, "2026-12-01", 4) {
			t.Fatalf("call %d refused under the quota", i+1)
		}
	}
	restarted := worker.PlannerQuota{Store: fileStore(t, dir)}
	if !take(t, restarted, "2026-12-01", 4) {
		t.Fatal("the 4th call of 4 refused after a restart")
	}
	if take(t, restarted, "2026-12-01", 4) {
		t.Fatal("a 5th call of 4 allowed after a restart: the count was lost")
	}
	if !take(t, restarted, "2026-12-02", 4) {
		t.Fatal("a new day did not start from zero")
	}
	// A caller whose clock is still on the day before counts against the
	// newer day: midnight cannot reset the count twice.
	for range 3 {
		take(t, first, "2026-12-01", 4)
	}
	if take(t, restarted, "2026-12-02", 4) {
		t.Error("a late clock stepped the count back to yesterday's")
	}
}

// Two instances (two store objects on one directory, like two Cloud Run
// instances on one bucket), each with many callers at once, never take
// more than the quota between them, and spend all of it.
func TestPlannerQuotaIsNeverExceededByConcurrentUsers(t *testing.T) {
	t.Parallel()
	const limit, callers = 30, 40
	dir := t.TempDir()
	instances := []worker.PlannerQuota{{Store: fileStore(t, dir)}, {Store: fileStore(t, dir)}}
	var granted, collided atomic.Int64
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := instances[i%len(instances)]
			for {
				ok, err := q.Take(context.Background(), "2026-12-01", limit)
				if errors.Is(err, state.ErrConflict) {
					// Lost the race too often: the planner would fall back;
					// here the caller asks again, to spend the whole quota.
					collided.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
				granted.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := granted.Load(); n != limit {
		t.Errorf("%d calls granted, want exactly %d (%d takes collided)", n, limit, collided.Load())
	}
	if take(t, instances[0], "2026-12-01", limit) {
		t.Error("a call granted after the quota was spent")
	}
}

// The worker wires the quota to its state store: with a quota of one call
// a day, a restarted worker (nothing in memory) falls back to the built-in
// planner instead of spending a second call.
func TestWorkerKeepsThePlannerQuotaAcrossRestarts(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	planner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		start := t0.Add(6 * time.Hour).Truncate(time.Hour) // 23:00 in Warsaw, cheap
		fmt.Fprintf(w, `{"success":true,"data":{"chargingSchedule":[{"start_time":%q,"end_time":%q,"charge_amount":5}]}}`,
			start.Format(time.RFC3339), start.Add(2*time.Hour).Format(time.RFC3339))
	}))
	t.Cleanup(planner.Close)
	e := newEnv(t, map[string]string{"PLANNER_DAILY_QUOTA": "1"}, fleetsim.Options{})
	if _, err := e.store.Add(context.Background(), "planner-api-key", []byte("planner-key")); err != nil {
		t.Fatal(err)
	}
	e.cfg.Charging.PlannerURL = planner.URL
	e.seed(8 * time.Hour)
	e.addCar(nil)
	for i, want := range []string{"external", "builtin"} {
		e.start() // a cold start before each cycle
		if a := e.cycle(); a.status != http.StatusOK || a.body["planner"] != want {
			t.Fatalf("cycle %d: %d %s, want planner %s", i+1, a.status, a.raw, want)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the planner was called %d times, want 1 (the day's quota)", n)
	}
}
