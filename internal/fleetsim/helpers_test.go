package fleetsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/offpeak-charging/offpeak/internal/clock"
)

var simStart = time.Date(2025, 1, 6, 10, 0, 0, 0, time.UTC) // a Monday

const (
	testVIN  = "5YJ3E7EB0KF000001"
	testVIN2 = "5YJ3E7EB0KF000002"
	// legacyVIN is a 2018 Model S: REST commands, no Vehicle Command Protocol.
	legacyVIN = "5YJSA1E2XJF000002"
)

type harness struct {
	t      *testing.T
	sim    *Sim
	clk    *clock.Manual
	url    string
	client *http.Client
}

// newHarness starts a simulator on loopback with a manual clock.
func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	clk := clock.NewManual(simStart)
	if opts.Clock == nil {
		opts.Clock = clk
	}
	sim := New(opts)
	base, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &harness{t: t, sim: sim, clk: clk, url: base, client: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (h *harness) do(req *http.Request) (*http.Response, []byte) {
	h.t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("read body: %v", err)
	}
	return resp, data
}

func (h *harness) postForm(path string, form url.Values) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, data := h.do(req)
	return resp.StatusCode, decodeObject(h.t, data)
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID}, "refresh_token": {rt}}
}

// refresh performs a refresh_token grant and returns the status and body.
func (h *harness) refresh(rt string) (int, map[string]any) {
	h.t.Helper()
	return h.postForm("/oauth2/v3/token", refreshForm(rt))
}

// mustRefresh refreshes and fails the test unless it succeeds.
func (h *harness) mustRefresh(rt string) (access, refresh string) {
	h.t.Helper()
	status, body := h.refresh(rt)
	if status != http.StatusOK {
		h.t.Fatalf("refresh: status %d body %v", status, body)
	}
	return body["access_token"].(string), body["refresh_token"].(string)
}

// api calls the Fleet API (or admin API) with an optional bearer token and JSON body.
func (h *harness) api(method, path, token string, body any) (int, map[string]any) {
	h.t.Helper()
	status, data := h.apiRaw(method, path, token, body)
	return status, decodeObject(h.t, data)
}

func (h *harness) apiRaw(method, path, token string, body any) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, h.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, data := h.do(req)
	return resp.StatusCode, data
}

func decodeObject(t *testing.T, data []byte) map[string]any {
	t.Helper()
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
	return m
}

// obj walks nested JSON objects: obj(m, "response", "charge_state").
func obj(t *testing.T, m map[string]any, keys ...string) map[string]any {
	t.Helper()
	cur := m
	for _, k := range keys {
		next, ok := cur[k].(map[string]any)
		if !ok {
			t.Fatalf("no object at %q in %v", k, cur)
		}
		cur = next
	}
	return cur
}

// token returns a valid access token from a fresh login.
func (h *harness) token() string { return h.sim.Login().AccessToken }

// addCar adds an online, unplugged car at home in Warsaw (it requires signed commands).
func (h *harness) addCar(vin string) {
	h.sim.AddCar(CarState{VIN: vin, State: StateOnline, Latitude: 52.2297, Longitude: 21.0122, BatteryLevel: 55})
}

// addLegacyCar adds a car like addCar that takes REST commands (CommandSigning "off").
func (h *harness) addLegacyCar(vin string) {
	h.sim.AddCar(CarState{VIN: vin, State: StateOnline, Latitude: 52.2297, Longitude: 21.0122, BatteryLevel: 55, CommandSigning: CommandSigningOff})
}

func jsonReader(s string) io.Reader { return strings.NewReader(s) }
