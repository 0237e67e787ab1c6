package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/contract"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/geo"
	"github.com/offpeak-charging/offpeak/internal/needs"
	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/scout/patrol"
	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

const stateBucket = project + "-offpeak-state"

// stateCondition is the --condition iam.sh gives a binding on the state
// bucket: the objects under the prefixes, and nothing else.
func stateCondition(title string, prefixes ...string) string {
	terms := make([]string, len(prefixes))
	for i, p := range prefixes {
		terms[i] = `resource.name.startsWith("projects/_/buckets/` + stateBucket + `/objects/` + p + `")`
	}
	return "expression=" + strings.Join(terms, " || ") + ",title=" + title +
		",description=objects under " + strings.Join(prefixes, " ") + " only"
}

var startsWithTerm = regexp.MustCompile(`^resource\.name\.startsWith\("projects/_/buckets/` + regexp.QuoteMeta(stateBucket) + `/objects/([A-Za-z0-9._/-]+)"\)$`)

// statePrefixes reads, from the dry run, the object prefixes each account
// may use in the state bucket, by role (objectUser: read and write;
// objectViewer: read only), checking on the way that every binding there
// is conditional and that the condition is nothing but a list of
// object-name prefixes in this bucket.
func statePrefixes(t *testing.T, s script) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	for _, b := range bindings(t, s) {
		if b.on != "storage buckets gs://"+stateBucket {
			continue
		}
		if b.role != "roles/storage.objectUser" && b.role != "roles/storage.objectViewer" {
			t.Errorf("%s holds %s on the state bucket; objectUser (or objectViewer, to read) is what the state store needs", b.member, b.role)
		}
		if b.cond == "" {
			t.Errorf("%s holds %s on the whole state bucket, without a condition", b.member, b.role)
			continue
		}
		// gcloud splits --condition at commas: exactly three fields.
		fields := strings.Split(b.cond, ",")
		if len(fields) != 3 || !strings.HasPrefix(fields[0], "expression=") || !strings.HasPrefix(fields[1], "title=") ||
			!strings.HasPrefix(fields[2], "description=") {
			t.Errorf("%s: condition %q is not expression=…,title=…,description=… (gcloud splits it at commas)", b.member, b.cond)
			continue
		}
		if _, dup := out[b.member][b.role]; dup {
			t.Errorf("%s has two %s bindings on the state bucket", b.member, b.role)
		}
		var prefixes []string
		for _, term := range strings.Split(strings.TrimPrefix(fields[0], "expression="), " || ") {
			m := startsWithTerm.FindStringSubmatch(term)
			if m == nil {
				t.Errorf("%s: condition term %q is not an object-name prefix in %s", b.member, term, stateBucket)
				continue
			}
			prefixes = append(prefixes, m[1])
		}
		if out[b.member] == nil {
			out[b.member] = map[string][]string{}
		}
		out[b.member][b.role] = prefixes
	}
	return out
}

// errDenied is what Cloud Storage answers a request the conditions refuse.
var errDenied = errors.New("403: the IAM condition does not grant this object")

// prefixStore is a state store that grants what an IAM condition with the
// given prefixes would: objects whose names start with one of them. It
// records every key asked for. A list is checked against the bucket, which
// no condition grants.
type prefixStore struct {
	inner    state.Store
	prefixes []string
	reads    []string // read-only prefixes (objectViewer)

	mu     sync.Mutex
	keys   map[string]bool
	denied []string
	lists  int
}

func newPrefixStore(prefixes []string) *prefixStore {
	return &prefixStore{inner: state.NewMemory(), prefixes: prefixes, keys: map[string]bool{}}
}

func (p *prefixStore) allow(op, key string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[key] = true
	granted := p.prefixes
	if op == "get" {
		granted = append(slices.Clone(p.prefixes), p.reads...)
	}
	for _, pre := range granted {
		if strings.HasPrefix(key, pre) {
			return nil
		}
	}
	p.denied = append(p.denied, op+" "+key)
	return fmt.Errorf("%s %s: %w", op, key, errDenied)
}

func (p *prefixStore) Get(ctx context.Context, key string) (state.Object, error) {
	if err := p.allow("get", key); err != nil {
		return state.Object{}, err
	}
	return p.inner.Get(ctx, key)
}

func (p *prefixStore) Put(ctx context.Context, key string, data []byte, ifGeneration int64) (int64, error) {
	if err := p.allow("put", key); err != nil {
		return 0, err
	}
	return p.inner.Put(ctx, key, data, ifGeneration)
}

func (p *prefixStore) Delete(ctx context.Context, key string, ifGeneration int64) error {
	if err := p.allow("delete", key); err != nil {
		return err
	}
	return p.inner.Delete(ctx, key, ifGeneration)
}

func (p *prefixStore) List(context.Context, string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lists++
	return nil, fmt.Errorf("list: %w", errDenied)
}

// check fails on a refused request or a list, and on a granted prefix the
// code never used (a grant wider than the code).
func (p *prefixStore) check(t *testing.T, who string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.denied) > 0 {
		t.Errorf("%s touched objects outside its prefixes %q: %q", who, p.prefixes, p.denied)
	}
	if p.lists > 0 {
		t.Errorf("%s lists objects, which its conditional binding does not grant", who)
	}
	for _, pre := range append(slices.Clone(p.prefixes), p.reads...) {
		used := false
		for k := range p.keys {
			used = used || strings.HasPrefix(k, pre)
		}
		if !used {
			t.Errorf("%s is granted %q but its code used no key there (keys: %q)", who, pre, slices.Sorted(maps.Keys(p.keys)))
		}
	}
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// stateFleet answers the scout: listed cars, one at home and plugged in,
// one asleep; a rate limit on the account's list or on one car's state
// when told to.
type stateFleet struct {
	cars          []fleet.Vehicle
	listLimited   bool
	vehicleLimits bool
	home          geo.Home
}

func rateLimited() error {
	return fmt.Errorf("%w: %w", fleet.ErrRateLimited, &fleet.APIError{Status: 429, RetryAfter: time.Minute})
}

func (f *stateFleet) Vehicles(context.Context) ([]fleet.Vehicle, error) {
	if f.listLimited {
		return nil, rateLimited()
	}
	return f.cars, nil
}

func (f *stateFleet) Vehicle(_ context.Context, vin string) (fleet.Vehicle, error) {
	if f.vehicleLimits {
		return fleet.Vehicle{}, rateLimited()
	}
	return fleet.Vehicle{VIN: vin, State: fleet.StateOnline}, nil
}

func (f *stateFleet) VehicleData(_ context.Context, vin string, _ ...string) (fleet.VehicleData, error) {
	return fleet.VehicleData{VIN: vin, State: fleet.StateOnline,
		Location: &fleet.Location{Latitude: f.home.Lat, Longitude: f.home.Lon},
		Charge:   &fleet.ChargeState{BatteryLevel: 50, ChargingState: "Stopped", ConnChargeCable: "IEC"}}, nil
}

type noRejecter struct{}

func (noRejecter) Rejected(context.Context) error { return nil }

type okWorker struct{ calls int }

func (w *okWorker) RunCycle(context.Context, contract.CycleRequest) (contract.CycleResponse, error) {
	w.calls++
	return contract.CycleResponse{Status: "ok"}, nil
}

// The scout and the worker each write only their own prefixes of the state
// bucket, by IAM conditions on the object name, so neither can overwrite
// the other's records, leases or plan hashes. The dry run shows the
// conditions; the services' own code, run against a store that grants
// just what the conditions grant, needs nothing outside them and uses
// every prefix it is granted; and a deploy removes the unconditional
// grants earlier deploys made.
func TestStateBucketIsSplitByPrefix(t *testing.T) {
	t.Parallel()
	s := dryRun(t, nil)
	sa := func(id string) string { return "serviceAccount:" + id + "@" + project + ".iam.gserviceaccount.com" }
	grants := statePrefixes(t, s)
	const rw, ro = "roles/storage.objectUser", "roles/storage.objectViewer"
	scoutPrefixes, workerPrefixes := grants[sa("offpeak-scout")][rw], grants[sa("offpeak-worker")][rw]
	scoutReads := grants[sa("offpeak-scout")][ro]
	if len(grants) != 2 || len(scoutPrefixes) == 0 || len(workerPrefixes) == 0 || len(grants[sa("offpeak-worker")]) != 1 {
		t.Fatalf("state bucket grants %v; want the scout and the worker, each writing its own prefixes", grants)
	}
	// The scout reads the worker's charge needs, and nothing else of it.
	if !slices.Equal(scoutReads, []string{"needs/"}) {
		t.Errorf("the scout may read %q of the worker's objects; want needs/ only", scoutReads)
	}
	// No object name can fall under both.
	for _, a := range scoutPrefixes {
		for _, b := range workerPrefixes {
			if strings.HasPrefix(a, b) || strings.HasPrefix(b, a) {
				t.Errorf("the scout's %q and the worker's %q overlap", a, b)
			}
		}
	}
	// Conditions need uniform bucket-level access: the bucket is created
	// with it, and checked before the bindings.
	created := s.find("gcloud", "storage", "buckets", "create", "gs://"+stateBucket)
	if len(created) != 1 || !slices.Contains(created[0], "--uniform-bucket-level-access") {
		t.Errorf("the state bucket is not created with uniform bucket-level access: %q", created)
	}
	ubla, ok := s.queries["STATE_UBLA"]
	if !ok || !slices.Equal(ubla[:5], []string{"gcloud", "storage", "buckets", "describe", "gs://" + stateBucket}) {
		t.Errorf("the deploy does not check the state bucket's uniform bucket-level access: %q", ubla)
	}
	if i, j := strings.Index(s.out, "STATE_UBLA="), strings.Index(s.out, "add-iam-policy-binding gs://"+stateBucket); i < 0 || i > j {
		t.Error("uniform bucket-level access is checked after the conditional bindings")
	}

	ctx := context.Background()
	clk := fixedClock{time.Date(2026, 3, 2, 22, 0, 0, 0, time.UTC)}

	// The scout: a tick that records two cars and triggers the worker for
	// one, a tick the account's rate limit stops (and the next one that
	// honours it), and a car's own rate limit.
	home := geo.Home{Lat: 52.2297, Lon: 21.0122, RadiusM: 100}
	ss := newPrefixStore(scoutPrefixes)
	ss.reads = scoutReads
	f := &stateFleet{home: home, cars: []fleet.Vehicle{
		{VIN: "5YJ3E7EB0KF000001", State: fleet.StateOnline}, {VIN: "5YJ3E7EB0KF000002", State: fleet.StateAsleep}}}
	w := &okWorker{}
	sc := scout.New(f, noRejecter{}, w, ss, clk, patrol.Settings{Home: home}, nil)
	if _, err := sc.Tick(ctx); err != nil {
		t.Fatalf("scout tick: %v", err)
	}
	if w.calls != 1 {
		t.Errorf("the scout triggered the worker %d times, want 1 (the car at home and plugged in)", w.calls)
	}
	f.listLimited = true
	if _, err := sc.Tick(ctx); err == nil {
		t.Error("a rate-limited tick succeeded")
	}
	f.listLimited = false
	if _, err := sc.Tick(ctx); err == nil {
		t.Error("the tick after a rate limit did not honour it")
	}
	f.vehicleLimits = true
	one := scout.New(f, noRejecter{}, w, ss, clk, patrol.Settings{Home: home, VINs: []string{"5YJ3E7EB0KF000003"}}, nil)
	_, _ = one.Tick(ctx)
	ss.check(t, "the scout")

	// The worker: every state object it keeps (internal/worker/adapters.go).
	ws := newPrefixStore(workerPrefixes)
	const vin = "5YJ3E7EB0KF000001"
	plans := worker.PlanStore{Store: ws, Clock: clk, Holder: "test"}
	if err := plans.SavePlanHash(ctx, vin, "hash"); err != nil {
		t.Errorf("save plan hash: %v", err)
	}
	if h, err := plans.LoadPlanHash(ctx, vin); err != nil || h != "hash" {
		t.Errorf("load plan hash: %q, %v", h, err)
	}
	release, err := plans.AcquireCycle(ctx, vin, time.Minute)
	if err != nil {
		t.Fatalf("cycle lease: %v", err)
	}
	release()
	cmds := worker.CommandStore{Store: ws, Clock: clk}
	if err := cmds.SaveSessions(ctx, vin, []byte(`{"sessions":[]}`)); err != nil {
		t.Errorf("save sessions: %v", err)
	}
	if _, err := cmds.LoadSessions(ctx, vin); err != nil {
		t.Errorf("load sessions: %v", err)
	}
	if err := cmds.SavePath(ctx, vin, carcmd.PathSigned, "test"); err != nil {
		t.Errorf("save path: %v", err)
	}
	if p, err := cmds.LoadPath(ctx, vin); err != nil || p != carcmd.PathSigned {
		t.Errorf("load path: %q, %v", p, err)
	}
	// The charge needs (internal/needs): add, list all (by the index, not
	// a bucket list), delete.
	book, err := needs.NewBook(ws, needs.VINList{vin}, clk, needs.Config{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := book.Add(ctx, needs.Request{VIN: vin, TargetPercent: 90, By: "2026-03-05 08:00"})
	if err != nil {
		t.Errorf("add a charge need: %v", err)
	}
	if all, err := book.List(ctx); err != nil || len(all) != 1 {
		t.Errorf("list charge needs: %v, %v", all, err)
	}
	if _, err := book.Delete(ctx, n.ID); err != nil {
		t.Errorf("delete a charge need: %v", err)
	}
	if ok, err := (worker.PlannerQuota{Store: ws}).Take(ctx, "2026-03-02", 30); err != nil || !ok {
		t.Errorf("planner quota: %v, %v", ok, err)
	}
	ws.check(t, "the worker")

	// No object is used by both.
	for k := range ss.keys {
		if ws.keys[k] {
			t.Errorf("both services use %s", k)
		}
	}

	// A project an earlier deploy set up: its unconditional grants to the
	// two accounts go, nothing else does. Without uniform bucket-level
	// access the deploy stops before binding.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "gcloud"), []byte(fakeGcloud), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		env     map[string]string
		removed []string // members whose unconditional grant is removed
		fails   string
	}{
		"new":          {nil, nil, ""},
		"legacy":       {map[string]string{"FAKE_LEGACY_STATE": "1"}, []string{sa("offpeak-scout"), sa("offpeak-worker")}, ""},
		"without UBLA": {map[string]string{"FAKE_NO_UBLA": "1"}, nil, "uniform bucket-level access"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			log := filepath.Join(t.TempDir(), "calls")
			env := map[string]string{"FAKE_LOG": log, "RENDER_DIR": t.TempDir(), "VERSION": "v-test", "BIND_RETRY_SLEEP": "0",
				"FAKE_EXISTS": "1"}
			for _, m := range []map[string]string{baseEnv, tc.env} {
				for k, v := range m {
					env[k] = v
				}
			}
			_, stderr, err := deploySh(t, bin, env)
			calls, _ := os.ReadFile(log)
			got := parseScript(t, string(calls))
			if tc.fails != "" {
				if err == nil || !strings.Contains(stderr, tc.fails) {
					t.Errorf("deploy: %v, stderr %s; want it to stop naming %q", err, stderr, tc.fails)
				}
				if n := len(got.find("gcloud", "storage", "buckets", "add-iam-policy-binding", "gs://"+stateBucket)); n != 0 {
					t.Errorf("%d bindings on the state bucket after the check failed", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("deploy.sh: %v\n%s", err, stderr)
			}
			var removed []string
			for _, c := range got.find("gcloud", "storage", "buckets", "remove-iam-policy-binding", "gs://"+stateBucket) {
				if flag(c, "--condition") != "None" || flag(c, "--role") != "roles/storage.objectUser" {
					t.Errorf("removes a binding other than the unconditional objectUser: %q", c)
				}
				removed = append(removed, flag(c, "--member"))
			}
			sort.Strings(removed)
			if !slices.Equal(removed, tc.removed) {
				t.Errorf("removed the unconditional grants of %q, want %q", removed, tc.removed)
			}
			// Removed only after the conditional bindings exist.
			lines := strings.Split(string(calls), "\n")
			lastAdd, firstRemove := -1, len(lines)
			for i, l := range lines {
				if strings.Contains(l, "add-iam-policy-binding gs://"+stateBucket) {
					lastAdd = i
				}
				if strings.Contains(l, "remove-iam-policy-binding") && i < firstRemove {
					firstRemove = i
				}
			}
			if tc.removed != nil && firstRemove < lastAdd {
				t.Error("an unconditional grant is removed before the conditional ones are in place")
			}
		})
	}
}
