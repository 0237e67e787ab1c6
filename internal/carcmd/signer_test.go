package carcmd_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/charging"
	"github.com/offpeak-charging/offpeak/internal/clock"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

const (
	vin3      = "5YJ3E7EB0KF000001" // a Model 3: signed commands only
	vinLegacy = "5YJSA1E2XJF000002" // a 2018 Model S: REST only
	homeLat   = 52.231838
	homeLon   = 21.005995
)

// rig is the real library's signer, over our connector and Fleet client,
// against the simulator's cars on loopback.
type rig struct {
	t        *testing.T
	clock    *clock.Manual
	sim      *fleetsim.Sim
	client   *fleet.Client
	key      *carcmd.PrivateKey
	keyPEM   []byte
	sessions *memStore
}

type staticToken string

func (s staticToken) AccessToken(context.Context) (string, error) { return string(s), nil }

func newRig(t *testing.T) *rig {
	t.Helper()
	clk := clock.NewManual(time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC))
	sim := fleetsim.New(fleetsim.Options{Clock: clk})
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	key, pemBytes, err := carcmd.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []fleetsim.CarState{
		{VIN: vin3, Latitude: homeLat, Longitude: homeLon, BatteryLevel: 40},
		{VIN: vinLegacy, Latitude: homeLat, Longitude: homeLon, BatteryLevel: 40, CommandSigning: fleetsim.CommandSigningOff},
	} {
		sim.AddCar(c)
	}
	if err := sim.PairKey(vin3, key.Public); err != nil {
		t.Fatal(err)
	}
	client := fleet.New(url, staticToken(sim.Login().AccessToken), fleet.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
	return &rig{t: t, clock: clk, sim: sim, client: client, key: key, keyPEM: pemBytes, sessions: newMemStore()}
}

func (r *rig) signer(keyPEM []byte) *carcmd.Signer {
	return carcmd.NewSigner(carcmd.SignerConfig{
		Transport: r.client, Sessions: r.sessions, Clock: r.clock, RetryInterval: 25 * time.Millisecond,
		Key: func(context.Context) ([]byte, error) {
			if keyPEM == nil {
				return nil, carcmd.ErrNoKey
			}
			return keyPEM, nil
		},
	})
}

func (r *rig) router(mode carcmd.Mode, sg *carcmd.Signer) *carcmd.Router {
	rt, err := carcmd.NewRouter(carcmd.RouterConfig{Mode: mode, Signer: sg, REST: r.client, Status: r.client, Paths: r.sessions})
	if err != nil {
		r.t.Fatal(err)
	}
	return rt
}

// memStore is a SessionStore and PathStore in memory (the worker's is the
// state store, tested in internal/worker).
type memStore struct {
	mu       sync.Mutex
	sessions map[string][]byte
	paths    map[string]carcmd.Path
}

func newMemStore() *memStore {
	return &memStore{sessions: map[string][]byte{}, paths: map[string]carcmd.Path{}}
}

func (m *memStore) LoadSessions(_ context.Context, vin string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[vin], nil
}

func (m *memStore) SaveSessions(_ context.Context, vin string, blob []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[vin] = append([]byte(nil), blob...)
	return nil
}

func (m *memStore) LoadPath(_ context.Context, vin string) (carcmd.Path, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paths[vin], nil
}

func (m *memStore) SavePath(_ context.Context, vin string, p carcmd.Path, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paths[vin] = p
	return nil
}

func schedule(id int64) charging.Schedule {
	return charging.Schedule{ID: id, DaysMask: charging.Tuesday, StartMin: 22 * 60, EndMin: 60, Enabled: true,
		StartEnabled: true, EndEnabled: true, OneTime: true, Lat: homeLat, Lon: homeLon}
}

func TestSignedCommandsColdThenWarm(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	sg := r.signer(r.keyPEM)
	ctx := context.Background()
	if err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_001)); err != nil {
		t.Fatal(err)
	}
	if st := sg.Stats(); st.Handshakes != 1 || st.Commands != 1 {
		t.Fatalf("cold command: %+v, want 1 handshake and 1 command", st)
	}
	if err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_002)); err != nil {
		t.Fatal(err)
	}
	if err := sg.RemoveChargeSchedule(ctx, vin3, 1_020_000_001); err != nil {
		t.Fatal(err)
	}
	if st := sg.Stats(); st.Handshakes != 1 || st.Commands != 3 || st.Requests != 4 {
		t.Fatalf("warm commands: %+v, want exactly one request each", st)
	}
	list := r.sim.Schedules(vin3)
	if len(list) != 1 || list[0].ID != 1_020_000_002 || list[0].DaysOfWeek != charging.Tuesday || list[0].StartTime != 1320 ||
		list[0].EndTime != 60 || !list[0].OneTime || !list[0].Enabled {
		t.Fatalf("car has %+v", list)
	}
	c := r.sim.SignedRequests(vin3)
	if c.Outcomes[fleetsim.OutcomeVerified] != 4 || c.Handshakes != 1 || c.Commands != 3 {
		t.Errorf("car counted %+v", c)
	}

	// A new process with the stored sessions needs no handshake.
	sg2 := r.signer(r.keyPEM)
	if err := sg2.AddChargeSchedule(ctx, vin3, schedule(1_020_000_003)); err != nil {
		t.Fatal(err)
	}
	if st := sg2.Stats(); st.Handshakes != 0 || st.Requests != 1 {
		t.Errorf("after a restart: %+v, want 1 request and no handshake", st)
	}
	// The stored blob holds no key material.
	for vin, blob := range r.sessions.sessions {
		if strings.Contains(string(blob), "PRIVATE") || strings.Contains(string(blob), string(r.keyPEM[40:80])) {
			t.Errorf("session blob for %s carries key material", vin)
		}
	}
}

func TestKeyProblemsAreNamed(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()

	none := r.signer(nil)
	err := none.AddChargeSchedule(ctx, vin3, schedule(1_020_000_001))
	if !errors.Is(err, carcmd.ErrNoKey) || !strings.Contains(err.Error(), "fleetctl keygen") || none.KeyState() != carcmd.KeyMissing {
		t.Errorf("no key: %v (state %s)", err, none.KeyState())
	}
	bad := r.signer([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	if err := bad.LoadKey(ctx); !errors.Is(err, carcmd.ErrKeyInvalid) || bad.KeyState() != carcmd.KeyInvalid {
		t.Errorf("bad key: %v (state %s)", err, bad.KeyState())
	}

	// A key the car has never seen: the handshake says so, nothing retries.
	_, otherPEM, _ := carcmd.GenerateKey()
	other := r.signer(otherPEM)
	err = other.AddChargeSchedule(ctx, vin3, schedule(1_020_000_001))
	if !errors.Is(err, carcmd.ErrKeyNotPaired) || !strings.Contains(err.Error(), "tesla.com/_ak/") {
		t.Fatalf("unpaired key: %v", err)
	}
	if st := other.Stats(); st.Requests != 1 {
		t.Errorf("unpaired key cost %d requests, want 1", st.Requests)
	}
	// The owner removes our key in the car: the warm session is refused.
	sg := r.signer(r.keyPEM)
	if err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_001)); err != nil {
		t.Fatal(err)
	}
	if err := r.sim.UnpairKey(vin3, r.key.Public); err != nil {
		t.Fatal(err)
	}
	if err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_002)); !errors.Is(err, carcmd.ErrKeyNotPaired) {
		t.Errorf("after unpairing: %v", err)
	}
	if n := len(r.sim.Schedules(vin3)); n != 1 {
		t.Errorf("car has %d schedules, want the 1 sent while paired", n)
	}

	// The owner stores a new key and pairs it while this signer still holds
	// the old one: it notices at the refusal and carries on with the new key.
	newKey, newPEM, _ := carcmd.GenerateKey()
	current := r.keyPEM
	var mu sync.Mutex
	rotating := carcmd.NewSigner(carcmd.SignerConfig{Transport: r.client, Sessions: newMemStore(), RetryInterval: 25 * time.Millisecond,
		Key: func(context.Context) ([]byte, error) { mu.Lock(); defer mu.Unlock(); return current, nil }})
	if err := r.sim.PairKey(vin3, r.key.Public); err != nil {
		t.Fatal(err)
	}
	if err := rotating.AddChargeSchedule(ctx, vin3, schedule(1_020_000_003)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	current = newPEM
	mu.Unlock()
	if err := r.sim.UnpairKey(vin3, r.key.Public); err != nil {
		t.Fatal(err)
	}
	if err := r.sim.PairKey(vin3, newKey.Public); err != nil {
		t.Fatal(err)
	}
	if err := rotating.AddChargeSchedule(ctx, vin3, schedule(1_020_000_004)); err != nil {
		t.Fatalf("after a key rotation: %v", err)
	}
	if rotating.PublicKey().Fingerprint != newKey.Fingerprint {
		t.Error("the signer kept the old key")
	}
}

func TestStaleSessionsHeal(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	sg := r.signer(r.keyPEM)
	ctx := context.Background()
	if err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_001)); err != nil {
		t.Fatal(err)
	}
	// The car reboots: a new epoch. The car's fault carries fresh session
	// info; the library adopts it and resends once.
	if err := r.sim.RebootCar(vin3); err != nil {
		t.Fatal(err)
	}
	before := sg.Stats()
	if err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_002)); err != nil {
		t.Fatal(err)
	}
	if d := sg.Stats().Requests - before.Requests; d < 2 || d > 3 {
		t.Errorf("after a reboot the command cost %d requests, want 2 (resend) or 3 (new handshake)", d)
	}
	if n := len(r.sim.Schedules(vin3)); n != 2 {
		t.Errorf("car has %d schedules, want 2", n)
	}

	// A car that keeps rejecting our session: one new handshake, then a
	// named error, with a bounded number of requests.
	r.sim.InjectFault(fleetsim.EndpointSignedCommand, fleetsim.Fault{CarFault: "INVALID_SIGNATURE", Times: 50})
	before = sg.Stats()
	err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_003))
	if !errors.Is(err, carcmd.ErrSessionRejected) || !strings.Contains(err.Error(), "INVALID_SIGNATURE") {
		t.Fatalf("persistent bad signature: %v", err)
	}
	if d := sg.Stats().Requests - before.Requests; d > 5 {
		t.Errorf("a rejected session cost %d requests, want at most 5", d)
	}
	r.sim.ClearFaults()

	// Busy for the whole attempt: a named, retryable error, bounded too.
	r.sim.InjectFault(fleetsim.EndpointSignedCommand, fleetsim.Fault{CarFault: "BUSY", Times: 50})
	before = sg.Stats()
	if err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_003)); !errors.Is(err, carcmd.ErrCarBusy) {
		t.Fatalf("busy car: %v", err)
	}
	if d := sg.Stats().Requests - before.Requests; d > 2 {
		t.Errorf("a busy car cost %d requests, want at most 2", d)
	}
	r.sim.ClearFaults()

	// Mobile access turned off: the car refuses the key.
	r.sim.InjectFault(fleetsim.EndpointSignedCommand, fleetsim.Fault{CarFault: "REMOTE_ACCESS_DISABLED"})
	if err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_003)); !errors.Is(err, carcmd.ErrKeyRejected) {
		t.Fatalf("remote access disabled: %v", err)
	}
}

func TestAsleepCarAndRefusedAction(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	sg := r.signer(r.keyPEM)
	ctx := context.Background()
	if err := r.sim.SetCar(vin3, func(c *fleetsim.CarState) { c.State = fleetsim.StateAsleep }); err != nil {
		t.Fatal(err)
	}
	err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_001))
	if !errors.Is(err, charging.ErrAsleep) || !errors.Is(err, fleet.ErrAsleep) {
		t.Fatalf("asleep: %v", err)
	}
	if err := r.sim.SetCar(vin3, func(c *fleetsim.CarState) { c.State = fleetsim.StateOnline; c.MaxNumChargeSchedules = 1 }); err != nil {
		t.Fatal(err)
	}
	if err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_001)); err != nil {
		t.Fatal(err)
	}
	// The car authenticates the command and refuses it: the cycle's kind.
	if err := sg.AddChargeSchedule(ctx, vin3, schedule(1_020_000_002)); !errors.Is(err, charging.ErrCommandRejected) {
		t.Fatalf("full car: %v", err)
	}
}

func TestRouterPicksThePathPerCar(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	sg := r.signer(r.keyPEM)
	rt := r.router(carcmd.ModeSign, sg)
	ctx := context.Background()
	for _, vin := range []string{vin3, vinLegacy} {
		if err := rt.AddChargeSchedule(ctx, vin, schedule(1_020_000_001)); err != nil {
			t.Fatalf("%s: %v", vin, err)
		}
		if n := len(r.sim.Schedules(vin)); n != 1 {
			t.Errorf("%s has %d schedules", vin, n)
		}
	}
	if rt.LastPath(vin3) != carcmd.PathSigned || rt.LastPath(vinLegacy) != carcmd.PathREST {
		t.Errorf("paths: %s %s", rt.LastPath(vin3), rt.LastPath(vinLegacy))
	}
	if c := r.sim.SignedRequests(vinLegacy); c.Handshakes+c.Commands != 0 {
		t.Errorf("the legacy car got signed messages: %+v", c)
	}
	statusCalls := r.sim.FleetRequests("", fleetsim.CategoryOther)
	// Learned once: a new router over the same store asks Tesla nothing.
	rt2 := r.router(carcmd.ModeSign, r.signer(r.keyPEM))
	if err := rt2.RemoveChargeSchedule(ctx, vinLegacy, 1_020_000_001); err != nil {
		t.Fatal(err)
	}
	if n := r.sim.FleetRequests("", fleetsim.CategoryOther); n != statusCalls {
		t.Errorf("fleet_status asked again (%d → %d)", statusCalls, n)
	}

	// A car fleet_status calls legacy that answers REST with 403: signed from then on.
	r.sessions.SavePath(ctx, vin3, carcmd.PathREST, "test: a wrong fleet_status")
	rt3 := r.router(carcmd.ModeSign, sg)
	if err := rt3.AddChargeSchedule(ctx, vin3, schedule(1_020_000_002)); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.sessions.LoadPath(ctx, vin3); p != carcmd.PathSigned {
		t.Errorf("path after the 403: %s", p)
	}

	// Set not to sign: a car that needs signing gets a named error.
	rest := r.router(carcmd.ModeREST, nil)
	if err := rest.AddChargeSchedule(ctx, vin3, schedule(1_020_000_009)); !errors.Is(err, carcmd.ErrSigningDisabled) {
		t.Errorf("rest mode: %v", err)
	}
}

// TestChargeLimitByEitherPath: a charge need raises the limit and puts it
// back; the signed car verifies it, the legacy car takes it over REST, and
// both cars then report the new limit.
func TestChargeLimitByEitherPath(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	rt := r.router(carcmd.ModeSign, r.signer(r.keyPEM))
	ctx := context.Background()
	for _, vin := range []string{vin3, vinLegacy} {
		if err := rt.SetChargeLimit(ctx, vin, 90); err != nil {
			t.Fatalf("%s: %v", vin, err)
		}
		if c, _ := r.sim.Car(vin); c.ChargeLimitSOC != 90 {
			t.Errorf("%s: limit %d, want 90", vin, c.ChargeLimitSOC)
		}
	}
	if c := r.sim.SignedRequests(vin3); c.CommandOutcomes[fleetsim.OutcomeVerified] != 1 {
		t.Errorf("signed car: %+v, want one verified command", c)
	}
	// Out of the car's range: refused before anything is sent.
	if err := rt.SetChargeLimit(ctx, vinLegacy, 30); !errors.Is(err, fleet.ErrInvalidRequest) {
		t.Errorf("limit 30 over REST: %v, want ErrInvalidRequest", err)
	}
}

func TestExternalSignerStillWorks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		got = append(got, req.URL.Path)
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"response": map[string]any{"result": true, "reason": ""}})
	}))
	t.Cleanup(proxy.Close)
	rt, err := carcmd.NewRouter(carcmd.RouterConfig{Mode: carcmd.ModeProxy, Proxy: fleet.New(proxy.URL, staticToken("t"))})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.AddChargeSchedule(context.Background(), vin3, schedule(1_020_000_001)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "/api/1/vehicles/"+vin3+"/command/add_charge_schedule" || rt.LastPath(vin3) != carcmd.PathProxy {
		t.Errorf("proxy saw %v", got)
	}
}

func TestTwoCarsAtOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	second := "5YJ3E7EB0KF000003"
	r.sim.AddCar(fleetsim.CarState{VIN: second, Latitude: homeLat, Longitude: homeLon})
	if err := r.sim.PairKey(second, r.key.Public); err != nil {
		t.Fatal(err)
	}
	sg := r.signer(r.keyPEM)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 5 {
		for _, vin := range []string{vin3, second} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- sg.AddChargeSchedule(context.Background(), vin, schedule(1_020_000_100+int64(i)))
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, vin := range []string{vin3, second} {
		if n := len(r.sim.Schedules(vin)); n != 5 {
			t.Errorf("%s has %d schedules", vin, n)
		}
	}
	// One handshake per car; commands to one car take turns, so none was
	// replayed or resent.
	if st := sg.Stats(); st.Handshakes != 2 || st.Commands != 10 {
		t.Errorf("stats %+v, want 2 handshakes and 10 commands", st)
	}
}
