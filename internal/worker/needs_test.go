package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
	"github.com/offpeak-charging/offpeak/internal/needs"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/svcauth"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

// t0 is 2026-12-01 17:00 in Warsaw (CET).
const needBody = `{"vin":"` + testVIN + `","target_percent":90,"by":"2026-12-05 08:00","note":"trip"}`

func newNeedsEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, nil, fleetsim.Options{})
	e.seed(8 * time.Hour)
	e.addCar(nil)
	return e
}

func needsOf(t *testing.T, a answer) []map[string]any {
	t.Helper()
	if a.status != http.StatusOK || a.body["status"] != "ok" {
		t.Fatalf("list: %d %s", a.status, a.raw)
	}
	raw, ok := a.body["needs"].([]any)
	if !ok {
		t.Fatalf("list without a needs array: %s", a.raw)
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i], _ = r.(map[string]any)
	}
	return out
}

func TestChargeNeedsAddListDelete(t *testing.T) {
	t.Parallel()
	e := newNeedsEnv(t)
	a := e.do(http.MethodPost, "/charge-needs", needBody, nil)
	if a.status != http.StatusCreated || a.body["created"] != true {
		t.Fatalf("add: %d %s", a.status, a.raw)
	}
	need, _ := a.body["need"].(map[string]any)
	id, _ := need["id"].(string)
	if id != testVIN+"-20261205T0700Z-90" || need["by"] != "2026-12-05T08:00:00+01:00" || need["state"] != "pending" ||
		need["note"] != "trip" || need["target_percent"] != 90.0 {
		t.Fatalf("need %v", need)
	}

	// The same need again, written as RFC 3339 in UTC: one need, 200.
	again := e.do(http.MethodPost, "/charge-needs", `{"vin":"`+testVIN+`","target_percent":90,"by":"2026-12-05T07:00:00Z"}`, nil)
	if again.status != http.StatusOK || again.body["created"] != nil {
		t.Fatalf("add again: %d %s", again.status, again.raw)
	}
	if n, _ := again.body["need"].(map[string]any); n["id"] != id || n["note"] != "trip" {
		t.Fatalf("add again gave %v", n)
	}

	if got := needsOf(t, e.do(http.MethodGet, "/charge-needs", "", nil)); len(got) != 1 || got[0]["id"] != id {
		t.Fatalf("list: %v", got)
	}
	if got := needsOf(t, e.do(http.MethodGet, "/charge-needs?vin="+testVIN, "", nil)); len(got) != 1 {
		t.Fatalf("list by vin: %v", got)
	}
	if got := needsOf(t, e.do(http.MethodGet, "/charge-needs?vin=5YJ3E7EB0KF000009", "", nil)); len(got) != 0 {
		t.Fatalf("list of another car: %v", got)
	}

	// A restarted worker reads the same needs from the state store.
	e.start()
	if got := needsOf(t, e.do(http.MethodGet, "/charge-needs", "", nil)); len(got) != 1 {
		t.Fatalf("after a restart: %v", got)
	}

	d := e.do(http.MethodDelete, "/charge-needs/"+id, "", nil)
	if n, _ := d.body["need"].(map[string]any); d.status != http.StatusOK || n["id"] != id {
		t.Fatalf("delete: %d %s", d.status, d.raw)
	}
	if d := e.do(http.MethodDelete, "/charge-needs/"+id, "", nil); d.status != http.StatusNotFound || errCode(d) != "not_found" {
		t.Fatalf("second delete: %d %s", d.status, d.raw)
	}
	if got := needsOf(t, e.do(http.MethodGet, "/charge-needs", "", nil)); len(got) != 0 {
		t.Fatalf("list after delete: %v", got)
	}
}

// Every bad input gets the error shape with its status, and loses nothing:
// the need stored before is still the only one.
func TestChargeNeedsBadInput(t *testing.T) {
	t.Parallel()
	e := newNeedsEnv(t)
	if a := e.do(http.MethodPost, "/charge-needs", needBody, nil); a.status != http.StatusCreated {
		t.Fatalf("seed need: %d %s", a.status, a.raw)
	}
	body := func(fields string) string { return `{"vin":"` + testVIN + `",` + fields + `}` }
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, message            string
	}{
		{"malformed JSON", "POST", "/charge-needs", `{"vin":`, 400, "bad_request", "malformed JSON"},
		{"not an object", "POST", "/charge-needs", `[1]`, 400, "bad_request", "malformed JSON"},
		{"trailing data", "POST", "/charge-needs", needBody + `{}`, 400, "bad_request", "after the JSON value"},
		{"empty body", "POST", "/charge-needs", ``, 400, "bad_request", "empty"},
		{"unknown field", "POST", "/charge-needs", body(`"target_percent":90,"by":"2026-12-05 08:00","when":"now"`), 400, "bad_request", "unknown field"},
		{"target as a string", "POST", "/charge-needs", body(`"target_percent":"90","by":"2026-12-05 08:00"`), 400, "bad_request", "malformed JSON"},
		{"target with a fraction", "POST", "/charge-needs", body(`"target_percent":90.5,"by":"2026-12-05 08:00"`), 400, "bad_request", "malformed JSON"},
		{"target missing", "POST", "/charge-needs", body(`"by":"2026-12-05 08:00"`), 400, "bad_request", "target_percent"},
		{"target 101", "POST", "/charge-needs", body(`"target_percent":101,"by":"2026-12-05 08:00"`), 400, "bad_request", "between 50 and 100"},
		{"target 49", "POST", "/charge-needs", body(`"target_percent":49,"by":"2026-12-05 08:00"`), 400, "bad_request", "between 50 and 100"},
		{"past time", "POST", "/charge-needs", body(`"target_percent":90,"by":"2026-12-01 08:00"`), 400, "bad_request", "not after now"},
		{"too far", "POST", "/charge-needs", body(`"target_percent":90,"by":"2026-12-16 08:00"`), 400, "bad_request", "14 days"},
		{"no time", "POST", "/charge-needs", body(`"target_percent":90`), 400, "bad_request", "by is required"},
		{"not a time", "POST", "/charge-needs", body(`"target_percent":90,"by":"Saturday 8am"`), 400, "bad_request", "RFC 3339"},
		{"unknown VIN", "POST", "/charge-needs", `{"vin":"5YJ3E7EB0KF000009","target_percent":90,"by":"2026-12-05 08:00"}`, 400, "bad_request", "not a car of this account"},
		{"malformed VIN", "POST", "/charge-needs", `{"vin":"../../etc","target_percent":90,"by":"2026-12-05 08:00"}`, 400, "bad_request", "not a car of this account"},
		{"no VIN", "POST", "/charge-needs", `{"target_percent":90,"by":"2026-12-05 08:00"}`, 400, "bad_request", "vin is required"},
		{"note too long", "POST", "/charge-needs", body(`"target_percent":90,"by":"2026-12-05 08:00","note":"` + strings.Repeat("x", 201) + `"`), 400, "bad_request", "at most 200"},
		{"not JSON content", "POST", "/charge-needs", needBody, 415, "unsupported_media_type", "Content-Type"},
		{"delete unknown id", "DELETE", "/charge-needs/" + testVIN + "-20261205T0700Z-91", "", 404, "not_found", "not found"},
		{"delete garbage id", "DELETE", "/charge-needs/nope", "", 404, "not_found", "not found"},
		{"delete without id", "DELETE", "/charge-needs/", "", 404, "not_found", ""},
		{"wrong method", "PUT", "/charge-needs", needBody, 405, "method_not_allowed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{"Content-Type": "application/json"}
			if tc.code == "unsupported_media_type" {
				headers["Content-Type"] = "text/plain"
			}
			a := e.do(tc.method, tc.path, tc.body, headers)
			if a.status != tc.status || errCode(a) != tc.code {
				t.Fatalf("%d %s, want %d %s", a.status, a.raw, tc.status, tc.code)
			}
			if msg := a.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.message) {
				t.Fatalf("message %q does not say %q", msg, tc.message)
			}
		})
	}
	if got := needsOf(t, e.do(http.MethodGet, "/charge-needs", "", nil)); len(got) != 1 || got[0]["note"] != "trip" {
		t.Fatalf("after the bad requests: %v", got)
	}
}

func TestChargeNeedsNeedAnAuthenticatedCaller(t *testing.T) {
	t.Parallel()
	e := newNeedsEnv(t)
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/charge-needs", needBody}, {"GET", "/charge-needs", ""}, {"DELETE", "/charge-needs/" + testVIN + "-20261205T0700Z-90", ""},
	} {
		for _, auth := range []string{"", "Bearer wrong-token-wrong-token-00"} {
			a := e.do(r.method, r.path, r.body, map[string]string{"Authorization": auth})
			if a.status != http.StatusUnauthorized || errCode(a) != "unauthorized" {
				t.Errorf("%s %s with %q: %d %s", r.method, r.path, auth, a.status, a.raw)
			}
		}
	}
	if got := needsOf(t, e.do(http.MethodGet, "/charge-needs", "", nil)); len(got) != 0 {
		t.Fatalf("an unauthenticated add stored a need: %v", got)
	}
}

func TestChargeNeedsBoundPerCar(t *testing.T) {
	t.Parallel()
	e := newNeedsEnv(t)
	for i := range 20 {
		b := fmt.Sprintf(`{"vin":"%s","target_percent":%d,"by":"2026-12-05 08:00"}`, testVIN, 50+i)
		if a := e.do(http.MethodPost, "/charge-needs", b, nil); a.status != http.StatusCreated {
			t.Fatalf("need %d: %d %s", i, a.status, a.raw)
		}
	}
	a := e.do(http.MethodPost, "/charge-needs", needBody, nil)
	if a.status != http.StatusConflict || errCode(a) != "too_many_needs" || !strings.Contains(a.raw, "at most 20") {
		t.Fatalf("21st need: %d %s", a.status, a.raw)
	}
}

// When Tesla cannot list the cars, an add is a retryable 503, not a 400:
// the VIN may be fine.
func TestChargeNeedsWhenTheCarListFails(t *testing.T) {
	t.Parallel()
	e := newNeedsEnv(t)
	e.sim.InjectFault(fleetsim.EndpointVehicles, fleetsim.Fault{Status: http.StatusServiceUnavailable, Times: 10})
	a := e.do(http.MethodPost, "/charge-needs", needBody, nil)
	if a.status != http.StatusServiceUnavailable || errCode(a) != "upstream_unavailable" || a.header.Get("Retry-After") == "" {
		t.Fatalf("add while Tesla fails: %d %s", a.status, a.raw)
	}
	e.sim.ClearFaults()
	if a := e.do(http.MethodPost, "/charge-needs", needBody, nil); a.status != http.StatusCreated {
		t.Fatalf("add after Tesla is back: %d %s", a.status, a.raw)
	}
}

type fakeLister struct {
	mu    sync.Mutex
	calls int
	cars  []fleet.Vehicle
	err   error
}

func (f *fakeLister) Vehicles(context.Context) ([]fleet.Vehicle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.cars, f.err
}

func TestAccountCarsCachesAndFilters(t *testing.T) {
	t.Parallel()
	clk := clock.NewManual(t0)
	l := &fakeLister{cars: []fleet.Vehicle{{VIN: testVIN}, {VIN: "not-a-vin"}, {VIN: "5YJ3E7EB0KF00000I"}}}
	cars := &worker.AccountCars{Lister: l, Clock: clk, TTL: time.Minute}
	ctx := context.Background()
	for range 3 {
		vins, err := cars.VINs(ctx)
		if err != nil || len(vins) != 1 || vins[0] != testVIN {
			t.Fatalf("vins %v %v", vins, err)
		}
	}
	if l.calls != 1 {
		t.Fatalf("%d list calls within the TTL", l.calls)
	}
	clk.Advance(time.Minute)
	l.err = errors.New("down")
	if _, err := cars.VINs(ctx); !errors.Is(err, l.err) {
		t.Fatalf("err %v", err)
	}
	l.err = nil
	if _, err := cars.VINs(ctx); err != nil || l.calls != 3 {
		t.Fatalf("a failure was cached: %v, %d calls", err, l.calls)
	}
}

// FuzzChargeNeedRequest feeds arbitrary bytes to POST /charge-needs through
// the worker's real routes and a real book on a memory store: no panic, no
// undocumented status, every error in the error shape.
func FuzzChargeNeedRequest(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, needBody, needBody + `x`, `{"vin":1}`, `{"target_percent":1e400}`,
		`{"vin":"` + testVIN + `","target_percent":90,"by":"2026-03-29 02:30"}`,
		`{"vin":"` + testVIN + `","target_percent":-90,"by":"2026-12-05T08:00:00+14:00"}`,
		`{"vin":"` + testVIN + `","target_percent":90,"by":"2026-12-05 08:00","note":"\u0000"}`,
		`{"vin":"\ud800","target_percent":90,"by":"\ud800"}`, strings.Repeat(`{"a":`, 5000),
	} {
		f.Add([]byte(seed))
	}
	clk := clock.NewManual(t0)
	book, err := needs.NewBook(state.NewMemory(), needs.VINList{testVIN}, clk, needs.Config{Location: time.UTC})
	if err != nil {
		f.Fatal(err)
	}
	handler := worker.NewHandler(worker.Deps{Needs: book, Auth: svcauth.Policy{Mode: svcauth.ModeToken, Token: fuzzBearer}})
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/charge-needs", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+fuzzBearer)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code == http.StatusConflict { // the bound, after many adds
			return
		}
		checkAnswer(t, "/charge-needs", body, rec)
	})
}
