package contract_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/httpclient"
	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
	"github.com/offpeak-charging/offpeak/internal/svcauth"
	"github.com/offpeak-charging/offpeak/internal/tokens"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

// The worker's real routes answering the scout's real client over
// loopback, with the worker's domain replaced by fakes that record what
// arrived: every field the scout sends reaches the worker, every field the
// worker answers reaches the scout, and every error the worker maps lands
// on the kind the scout acts on.

const bearer = "round-trip-bearer-0123456789"

type fakeTokens struct {
	mu  sync.Mutex
	got []tokens.EnsureOptions
	res tokens.Result
	err error
}

func (f *fakeTokens) Ensure(_ context.Context, o tokens.EnsureOptions) (tokens.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, o)
	return f.res, f.err
}

func (f *fakeTokens) Migrate(context.Context) (tokens.Result, error) { return f.res, f.err }

func (f *fakeTokens) Status() tokens.Status                        { return tokens.Status{} }
func (f *fakeTokens) Check(context.Context) (tokens.Status, error) { return tokens.Status{}, nil }

type fakeCycle struct {
	mu   sync.Mutex
	vins []string
	res  charging.Result
	err  error
}

func (f *fakeCycle) Run(_ context.Context, vin string) (charging.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vins = append(f.vins, vin)
	return f.res, f.err
}

func startWorker(t *testing.T, tm *fakeTokens, cy *fakeCycle) *scout.WorkerClient {
	t.Helper()
	srv := httptest.NewServer(worker.NewHandler(worker.Deps{
		Tokens: tm, Cycle: cy, Auth: svcauth.Policy{Mode: svcauth.ModeToken, Token: bearer},
	}))
	t.Cleanup(srv.Close)
	hc, err := svcauth.NewClient(context.Background(), svcauth.Policy{Mode: svcauth.ModeToken, Token: bearer}, srv.URL, httpclient.New(0))
	if err != nil {
		t.Fatal(err)
	}
	return &scout.WorkerClient{BaseURL: srv.URL, HTTP: hc, RefreshTimeout: 10 * time.Second, CycleTimeout: 10 * time.Second}
}

func TestRefreshTokensRoundTrip(t *testing.T) {
	t.Parallel()
	tm := &fakeTokens{res: tokens.Result{Action: tokens.ActionRefreshed, Version: "8", Rotated: true, ExpiresAt: time.Now().Add(8 * time.Hour)}}
	wc := startWorker(t, tm, &fakeCycle{})
	version, err := wc.RefreshTokens(context.Background(), contract.RefreshRequest{Reason: "fleet api answered 401", Force: true, RejectedVersion: "7"})
	if err != nil || version != "8" {
		t.Fatalf("RefreshTokens = %q, %v; want the version the worker stored", version, err)
	}
	if want := []tokens.EnsureOptions{{Force: true, RejectedVersion: "7"}}; !reflect.DeepEqual(tm.got, want) {
		t.Errorf("the worker was asked %+v, want %+v", tm.got, want)
	}
}

func TestRunCycleRoundTrip(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	cy := &fakeCycle{res: charging.Result{
		Plan:  []charging.Window{{Start: start, End: start.Add(2 * time.Hour)}},
		Added: 2, Removed: 1, Woke: true, Changed: true, AtHome: true, LocationMissing: true,
		Shortfall: 29*time.Minute + 40*time.Second, PlannerUsed: "builtin",
	}}
	wc := startWorker(t, &fakeTokens{}, cy)
	const vin = "5YJ3E7EB0KF000001"
	ans, err := wc.RunCycle(context.Background(), contract.CycleRequest{VIN: vin, Reason: patrol.ReasonArrivedHomeReady})
	if err != nil {
		t.Fatal(err)
	}
	want := contract.CycleResponse{
		Status: contract.StatusOK, VIN: vin, Plan: []contract.PlanWindow{{Start: start, End: start.Add(2 * time.Hour)}},
		Commands: contract.CommandCounts{Added: 2, Removed: 1}, Woke: true, Changed: true, AtHome: true,
		LocationMissing: true, Planner: "builtin", Shortfall: "30m0s", Note: contract.NoteLocationMissing,
	}
	if !reflect.DeepEqual(ans, want) {
		t.Errorf("answer = %+v\nwant     %+v", ans, want)
	}
	if !reflect.DeepEqual(cy.vins, []string{vin}) {
		t.Errorf("cycles run for %q", cy.vins)
	}

	// A scout of the previous release still sent its own reading: the
	// worker takes the request (and ignores the reading).
	old := contract.CycleRequest{VIN: vin, Reason: patrol.ReasonFirstSeen, Observed: map[string]any{"at_home": false, "battery_level": 41}}
	if _, err := wc.RunCycle(context.Background(), old); err != nil {
		t.Errorf("a request with observed: %v", err)
	}
}

// Each error the worker maps reaches the scout as the kind it acts on:
// retry later, wait for a person (a few tries, then give up), log in again,
// or stop because the request itself is wrong.
func TestErrorsRoundTrip(t *testing.T) {
	t.Parallel()
	const vin = "5YJ3E7EB0KF000001"
	cases := []struct {
		name string
		err  error  // what the worker's domain returns
		vin  string // "" : vin
		want error  // the scout's kind
	}{
		{"key not paired", carcmd.ErrKeyNotPaired, "", patrol.ErrNeedsOperator},
		{"no key", carcmd.ErrNoKey, "", patrol.ErrNeedsOperator},
		{"key invalid", carcmd.ErrKeyInvalid, "", patrol.ErrNeedsOperator},
		{"key rejected", carcmd.ErrKeyRejected, "", patrol.ErrNeedsOperator},
		{"signing disabled", carcmd.ErrSigningDisabled, "", patrol.ErrNeedsOperator},
		{"app not registered", fmt.Errorf("%w: 412", fleet.ErrPrecondition), "", patrol.ErrNeedsOperator},
		{"new login needed", tokens.ErrReauthRequired, "", scout.ErrReauthRequired},
		{"cycle busy", charging.ErrCycleBusy, "", scout.ErrWorkerUnavailable},
		{"session rejected", carcmd.ErrSessionRejected, "", scout.ErrWorkerUnavailable},
		{"car busy", carcmd.ErrCarBusy, "", scout.ErrWorkerUnavailable},
		{"vehicle read", charging.ErrVehicleRead, "", scout.ErrWorkerUnavailable},
		{"plan store", charging.ErrPlanStore, "", scout.ErrWorkerUnavailable},
		{"token store", tokens.ErrStoreUnavailable, "", scout.ErrWorkerUnavailable},
		{"unknown", errors.New("boom"), "", scout.ErrWorkerUnavailable},
		{"not a VIN", nil, "5YJ3E7EB0KF00000I", scout.ErrWorkerRejected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wc := startWorker(t, &fakeTokens{}, &fakeCycle{err: tc.err})
			v := vin
			if tc.vin != "" {
				v = tc.vin
			}
			_, err := wc.RunCycle(context.Background(), contract.CycleRequest{VIN: v, Reason: patrol.ReasonFirstSeen})
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			for _, other := range []error{patrol.ErrNeedsOperator, scout.ErrReauthRequired, scout.ErrWorkerUnavailable, scout.ErrWorkerRejected} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err = %v is also %v", err, other)
				}
			}
		})
	}
	// The token routes answer in the same shape.
	wc := startWorker(t, &fakeTokens{err: tokens.ErrReauthRequired}, &fakeCycle{})
	if _, err := wc.RefreshTokens(context.Background(), contract.RefreshRequest{Reason: "token expiring"}); !errors.Is(err, scout.ErrReauthRequired) {
		t.Errorf("refresh: err = %v, want %v", err, scout.ErrReauthRequired)
	}
}
