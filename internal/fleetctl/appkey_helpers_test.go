package fleetctl

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/carcmd"
	"github.com/offpeak-charging/offpeak/internal/fleet"
	"github.com/offpeak-charging/offpeak/internal/fleetsim"
)

const (
	appDomain = "app.example.com"
	// signVIN needs signed commands; restVIN is a 2018 Model S that takes REST.
	signVIN = "5YJ3E7EB0KF000001"
	restVIN = "5YJSA1E2XJF000002"
)

// keyHost is the app's domain on loopback: it serves a PEM at the
// well-known path, as the deployment's public-key service does. serve, when
// set, picks the answer per request (n counts from 1).
type keyHost struct {
	srv   *httptest.Server
	mu    sync.Mutex
	pem   []byte
	serve func(n int, w http.ResponseWriter)
	n     int
}

func newKeyHost(t *testing.T) *keyHost {
	t.Helper()
	kh := &keyHost{}
	kh.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kh.mu.Lock()
		kh.n++
		n, serve, body := kh.n, kh.serve, kh.pem
		kh.mu.Unlock()
		if r.URL.Path != fleet.PublicKeyPath {
			http.NotFound(w, r)
			return
		}
		if serve != nil {
			serve(n, w)
			return
		}
		if body == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(body)
	}))
	t.Cleanup(kh.srv.Close)
	return kh
}

func (kh *keyHost) set(pem []byte) {
	kh.mu.Lock()
	defer kh.mu.Unlock()
	kh.pem, kh.serve = pem, nil
}

func (kh *keyHost) setServe(f func(n int, w http.ResponseWriter)) {
	kh.mu.Lock()
	defer kh.mu.Unlock()
	kh.serve, kh.n = f, 0
}

// appHarness is a harness whose simulator and CLI both reach the app's
// domain on loopback.
type appHarness struct {
	*harness
	host *keyHost
	key  *carcmd.PrivateKey // the last storeKey's
	// others are the public PEMs otherKey made, named in transcripts.
	others [][]byte
}

// newAppHarness starts the simulator with opts (DomainBaseURL pointed at
// the key host unless set) and two cars: one that needs signed commands and
// a legacy one.
func newAppHarness(t *testing.T, opts fleetsim.Options) *appHarness {
	t.Helper()
	kh := newKeyHost(t)
	if opts.DomainBaseURL == nil {
		opts.DomainBaseURL = func(string) string { return kh.srv.URL }
	}
	h := newHarnessWith(t, opts)
	h.runner.DomainBaseURL = func(string) string { return kh.srv.URL }
	h.sim.AddCar(fleetsim.CarState{VIN: signVIN, State: fleetsim.StateOnline, Latitude: 52.2297, Longitude: 21.0122, BatteryLevel: 60})
	h.sim.AddCar(fleetsim.CarState{VIN: restVIN, State: fleetsim.StateOnline, Latitude: 52.2297, Longitude: 21.0122, BatteryLevel: 60,
		CommandSigning: fleetsim.CommandSigningOff})
	return &appHarness{harness: h, host: kh}
}

// storeKey stores a new command key (as keygen would) and serves its
// public half; it returns the key and its private PEM.
func (h *appHarness) storeKey() (*carcmd.PrivateKey, []byte) {
	h.t.Helper()
	k, private, err := carcmd.GenerateKey()
	if err != nil {
		h.t.Fatal(err)
	}
	h.put("tesla-private-key", string(private))
	h.host.set(k.PublicPEM())
	h.key = k
	return k, private
}

// otherKey is the public PEM of a key that is not ours; transcripts call
// it "<another key>".
func (h *appHarness) otherKey() []byte {
	h.t.Helper()
	pem := otherKeyPEM(h.t)
	h.others = append(h.others, pem)
	return pem
}

// otherKeyPEM is the public PEM of a key that is not ours.
func otherKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, _, err := carcmd.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicPEM()
}

// noPrivateKey fails if an output shows the private key: a PEM private
// block, the first line of its base64 body (which holds the scalar; the
// last lines hold the public point, which may be shown), or the scalar in
// hex or base64.
func noPrivateKey(t *testing.T, private []byte, outputs ...string) {
	t.Helper()
	block, _ := pem.Decode(private)
	if block == nil {
		t.Fatal("noPrivateKey: not a PEM key")
	}
	k, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	scalar, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Split(strings.TrimSpace(string(private)), "\n")
	needles := []string{"PRIVATE KEY", body[1], hex.EncodeToString(scalar), base64.StdEncoding.EncodeToString(scalar),
		base64.RawURLEncoding.EncodeToString(scalar)}
	for _, o := range outputs {
		for _, n := range needles {
			if strings.Contains(o, n) {
				t.Fatalf("output shows the private key (%q):\n%s", n, o)
			}
		}
	}
}

// latestValue is the trimmed latest payload of a secret ("" if none).
func (h *harness) latestValue(name string) string {
	h.t.Helper()
	v, err := h.store.Latest(context.Background(), name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(v.Payload))
}
